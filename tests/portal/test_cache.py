"""The Redis cache (CI and production): connections are shared by the process's requests."""

import contextvars
import os

import pytest
import redis
from asgiref.sync import async_to_sync
from django.core.cache import cache

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="the Redis cache is configured by REDIS_URL (as in CI)"
)


def connections_accepted() -> int:
    return int(redis.Redis.from_url(os.environ["REDIS_URL"]).info("stats")["total_connections_received"])


def test_requests_do_not_connect_to_redis_each_time():
    async def a_request(number: int) -> None:
        # Each ASGI request runs in a context of its own, and Django gives it a cache object of
        # its own there.
        cache.set(f"cache-test:{number}", number, 10)
        assert cache.get(f"cache-test:{number}") == number

    def serve(number: int) -> None:
        # As the server does: each request's context starts from the server's, not the last one's.
        contextvars.Context().run(async_to_sync(a_request), number)

    serve(0)  # the process's first connection
    before = connections_accepted()
    for number in range(1, 21):
        serve(number)

    assert connections_accepted() - before <= 1  # the counting itself connects once
