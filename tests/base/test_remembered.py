"""A version the shared cache holds, as a hot path reads it: at once after a change made in this
process, within the trusted time after one made in another."""

import pytest
from django.core.cache import cache

from base.remembered import _read_lately, current_version, version_changed

KEY = "tests:remembered-version"


@pytest.fixture
def clock(monkeypatch):
    """The monotonic clock, moved by hand."""
    moment = {"now": 1000.0}
    monkeypatch.setattr("base.remembered.time.monotonic", lambda: moment["now"])
    yield moment
    _read_lately.pop(KEY, None)
    cache.delete(KEY)


def test_a_change_in_another_process_is_seen_once_the_trusted_time_has_passed(clock):
    first = current_version(KEY, trust_seconds=1.0)

    cache.set(KEY, "changed-by-another-process")  # as version_changed does there
    clock["now"] += 0.5
    assert current_version(KEY, trust_seconds=1.0) == first
    assert current_version(KEY) == "changed-by-another-process"  # a caller that trusts nothing

    clock["now"] += 0.6
    assert current_version(KEY, trust_seconds=1.0) == "changed-by-another-process"


def test_a_change_in_this_process_is_seen_at_once(clock):
    first = current_version(KEY, trust_seconds=1.0)

    version_changed(KEY)

    assert current_version(KEY, trust_seconds=1.0) != first
    assert current_version(KEY, trust_seconds=1.0) == current_version(KEY)
