"""Claims keep two workers off the same run without a transaction: held by one connection (a
process), refused to another until it lets go, and waited for when asked to wait."""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from provisioning.claims import Claim, claimed, claimed_if_free

pytestmark = pytest.mark.django_db(transaction=True)


def elsewhere(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` on a database connection of its own, as another worker would."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def free_elsewhere(claim: Claim, object_id: int) -> bool:
    def look() -> bool:
        with claimed_if_free(claim, object_id) as free:
            return free

    thread, result = elsewhere(look)
    thread.join(timeout=10)
    return bool(result[0])


def test_a_claim_held_here_is_refused_elsewhere_and_free_once_let_go():
    with claimed(Claim.RUN, 7):
        assert not free_elsewhere(Claim.RUN, 7)
        assert free_elsewhere(Claim.RUN, 8)  # another run
        assert free_elsewhere(Claim.ACCOUNT, 7)  # another kind of thing with the same id

    assert free_elsewhere(Claim.RUN, 7)


def test_a_worker_that_asks_to_wait_takes_the_claim_once_it_is_let_go():
    def take() -> float:
        with claimed(Claim.RUN, 7):
            return time.monotonic()

    with claimed(Claim.RUN, 7):
        thread, taken = elsewhere(take)
        time.sleep(0.3)
        assert taken == []  # still waiting
        let_go = time.monotonic()
    thread.join(timeout=10)

    assert taken[0] >= let_go
