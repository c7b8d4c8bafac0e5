"""Hourly rollups: the finished hours' minutes folded into hour rows that add up to the same,
replaced whole when folded again, a worker that was down catching up, old minutes dropped; and the
operations page's figures the same before and after a fold."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from calls.hours import MINUTES_KEPT_DAYS, call_hours_fold
from calls.latency import bucket_index, empty_buckets
from calls.models import CallHour, CallMinute
from calls.tasks import fold_call_hours_task
from org.models import PlatformGroup
from tests.factories import make_department, make_deployment, make_user
from tests.operations.conftest import PAGE, row_of, tables

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 4, 12, 20, 30, tzinfo=UTC)


def buckets(*milliseconds: float) -> list[int]:
    counts = empty_buckets()
    for duration in milliseconds:
        counts[bucket_index(duration)] += 1
    return counts


@pytest.fixture
def where(db):
    marketing = make_department(name="Marketing")
    return make_deployment(department=marketing, display_name="Copy assistant"), marketing


def minute(where, at: datetime, **counters) -> CallMinute:
    deployment, department = where
    return CallMinute.objects.create(
        minute=at, deployment=deployment, department=department, source="chat", **counters
    )


def test_an_hours_minutes_fold_into_one_row_that_adds_up_to_them(where):
    minute(where, datetime(2026, 12, 4, 9, 5, tzinfo=UTC), calls=3, answered=2, upstream_errors=1,
           throttled=2, input_tokens=300, output_tokens=30, first_token_ms=buckets(40, 40, 400),
           answer_ms=buckets(900, 900))  # fmt: skip
    minute(where, datetime(2026, 12, 4, 9, 59, tzinfo=UTC), calls=1, answered=1, failovers=1,
           first_token_ms=buckets(40), answer_ms=[])  # fmt: skip
    minute(where, datetime(2026, 12, 4, 12, 10, tzinfo=UTC), calls=7, answered=7)  # the hour still running

    assert call_hours_fold(now=NOW) == 1

    hour = CallHour.objects.get()
    assert hour.hour == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert (hour.calls, hour.answered, hour.upstream_errors, hour.throttled, hour.failovers) == (
        4,
        3,
        1,
        2,
        1,
    )
    assert (hour.input_tokens, hour.output_tokens) == (300, 30)
    assert hour.first_token_ms == buckets(40, 40, 40, 400)
    assert hour.answer_ms == buckets(900, 900)


def test_folding_again_replaces_an_hour_with_a_late_minute_counted_once(where):
    minute(where, datetime(2026, 12, 4, 11, 58, tzinfo=UTC), calls=2, answered=2)
    call_hours_fold(now=NOW)
    # A call that ended at 11:59:59 settles a moment after the hour: the next fold counts it.
    minute(where, datetime(2026, 12, 4, 11, 59, tzinfo=UTC), calls=1, answered=1)

    call_hours_fold(now=NOW + timedelta(minutes=5))
    call_hours_fold(now=NOW + timedelta(minutes=10))

    assert list(CallHour.objects.values_list("hour", "calls")) == [(datetime(2026, 12, 4, 11, tzinfo=UTC), 3)]


def test_a_fold_after_the_worker_was_down_catches_up_every_hour_since_the_last(where):
    minute(where, datetime(2026, 12, 4, 1, 30, tzinfo=UTC), calls=1)
    call_hours_fold(now=datetime(2026, 12, 4, 2, 1, tzinfo=UTC))
    for hour in (2, 5, 9):
        minute(where, datetime(2026, 12, 4, hour, 30, tzinfo=UTC), calls=hour)

    fold_call_hours_task.delay()  # the beat's task, run the way the worker runs it (now is real)
    call_hours_fold(now=NOW)

    assert dict(CallHour.objects.values_list("hour__hour", "calls")) == {1: 1, 2: 2, 5: 5, 9: 9}


def test_minutes_older_than_kept_go_and_their_hours_stay(where):
    old = NOW - timedelta(days=MINUTES_KEPT_DAYS, hours=2)
    minute(where, old, calls=4)

    call_hours_fold(now=NOW)

    assert not CallMinute.objects.exists()
    assert CallHour.objects.get().calls == 4


def test_nothing_to_fold_writes_nothing(db):
    assert call_hours_fold(now=NOW) == 0
    assert not CallHour.objects.exists()


def test_the_operations_page_shows_the_same_week_whether_the_last_hour_is_folded_or_not(
    where, client, monkeypatch
):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    client.force_login(make_user(email="admin@example.com", platform_group=PlatformGroup.ADMINS))
    # The window's first, partial hour; whole hours; the hours a fold may not have reached yet.
    for at, first_token in (
        (NOW - timedelta(days=7) + timedelta(minutes=2), 40),
        (NOW - timedelta(days=3), 120),
        (NOW - timedelta(hours=1, minutes=10), 400),
        (NOW - timedelta(minutes=3), 1200),
    ):
        minute(where, at.replace(second=0, microsecond=0), calls=5, answered=5,
               first_token_ms=buckets(*[first_token] * 5))  # fmt: skip
    # Older than the week: in no window, folded or not.
    minute(where, (NOW - timedelta(days=7, minutes=1)).replace(second=0, microsecond=0), calls=100)

    def week_row() -> list[str]:
        response = client.get(PAGE + "?window=week")
        assert response.status_code == 200
        return row_of(tables(response.content.decode())["deployments-table"], "Copy assistant")

    call_hours_fold(now=NOW - timedelta(hours=1), since=NOW - timedelta(days=8))  # the beat, an hour ago
    before = week_row()
    call_hours_fold(now=NOW)
    after = week_row()

    assert CallHour.objects.exists()
    assert after == before
    assert after[1] == "20", after
