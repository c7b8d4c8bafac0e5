"""Per-minute counters of the limits on tokens and requests, taken all or nothing.

A window is one clock minute of one limit (a person's tokens, a grant's share of a deployment).
`take` adds every amount only if each fits its limit, in one atomic operation: a Lua script on
Redis when Switchyard has one (every web process sees the same counters), otherwise conditional
upserts in the caller's database transaction (the embedded default, where SQLite serialises
writers). `give_back` returns what a settled call did not use.
"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from money.models import AdmissionWindow

WINDOW_SECONDS = 60
# A counter outlives its minute a little, so a late give-back never recreates it.
KEEP_SECONDS = WINDOW_SECONDS + 30


@dataclass(frozen=True)
class Take:
    key: str
    amount: int
    limit: int


@dataclass(frozen=True)
class Full:
    """The first window that had no room: its index in the takes and how much it had used."""

    index: int
    used: int


def window_number(moment: datetime) -> int:
    return int(moment.timestamp() // WINDOW_SECONDS)


def seconds_left(moment: datetime) -> int:
    """Whole seconds until the minute of `moment` ends (at least 1)."""
    end = (window_number(moment) + 1) * WINDOW_SECONDS
    return max(1, math.ceil(end - moment.timestamp()))


def uses_redis() -> bool:
    return bool(settings.REDIS_URL)


@functools.cache
def _redis() -> redis.Redis:
    # One client (and connection pool) per process; it is thread-safe.
    return redis.Redis.from_url(settings.REDIS_URL)


_TAKE = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + tonumber(ARGV[2 * i - 1]) > tonumber(ARGV[2 * i]) then
    return {i, used}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[2 * i - 1])
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[#ARGV]) end
end
return {0, 0}
"""
_GIVE_BACK = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECRBY', KEYS[i], ARGV[i]) end
end
return 1
"""


@functools.cache
def _scripts() -> "tuple[redis.commands.core.Script, redis.commands.core.Script]":
    client = _redis()
    return client.register_script(_TAKE), client.register_script(_GIVE_BACK)


def _redis_key(key: str) -> str:
    return f"switchyard:admission:{key}"


def take(takes: Sequence[Take], *, now: datetime) -> Full | None:
    """Add every amount, or none if one would pass its limit (then say which). In the database,
    inside the caller's transaction, which must roll back when this answers Full."""
    for index, item in enumerate(takes):
        if item.amount > item.limit:
            return Full(index, 0)
    if not takes:
        return None
    if uses_redis():
        script, _ = _scripts()
        args: list[int] = []
        for item in takes:
            args += [item.amount, item.limit]
        found, used = script(keys=[_redis_key(item.key) for item in takes], args=[*args, KEEP_SECONDS])
        return Full(int(found) - 1, int(used)) if found else None
    return _take_in_database(takes, now=now)


def _take_in_database(takes: Sequence[Take], *, now: datetime) -> Full | None:
    table, key, used = _names()
    cap = connection.ops.quote_name("cap")
    expires_at = now + timedelta(seconds=KEEP_SECONDS)
    # One statement for every window: a row is created with its amount, or the amount is added
    # only while it fits the limit that comes with it (an upsert whose update has a condition
    # changes no row otherwise). Fewer rows changed than asked: one had no room.
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(takes))
    sql = (
        f"INSERT INTO {table} ({key}, {used}, {cap}, expires_at) VALUES {rows} "  # noqa: S608 (names from _meta)
        f"ON CONFLICT ({key}) DO UPDATE "
        f"SET {used} = {table}.{used} + excluded.{used}, {cap} = excluded.{cap} "
        f"WHERE {table}.{used} + excluded.{used} <= excluded.{cap}"
    )
    params: list[Any] = []
    for item in takes:
        params += [item.key, item.amount, item.limit, expires_at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount == len(takes):
            return None
    # What the statement did add is rolled back with the caller's transaction (or savepoint).
    found = dict(
        AdmissionWindow.objects.filter(key__in=[item.key for item in takes]).values_list("key", "used")
    )
    for index, item in enumerate(takes):
        if found.get(item.key, 0) + item.amount > item.limit:
            return Full(index, found.get(item.key, 0))
    return Full(0, found.get(takes[0].key, 0))  # taken meanwhile by a call that has since settled


def give_back(amounts: Sequence[tuple[str, int]], *, once: str) -> None:
    """Return unused amounts to their windows (a window that has ended is left alone), once
    for the given name: in the database the caller's transaction makes it so."""
    amounts = [(key, amount) for key, amount in amounts if amount > 0]
    if not amounts:
        return
    if uses_redis():
        _, script = _scripts()
        script(
            keys=[_redis_key(f"given-back:{once}"), *[_redis_key(key) for key, _ in amounts]],
            args=[KEEP_SECONDS, *[amount for _, amount in amounts]],
        )
        return
    table, key_column, used = _names()
    with connection.cursor() as cursor:
        for amount in sorted({amount for _, amount in amounts}):
            keys = [key for key, given in amounts if given == amount]
            cursor.execute(
                f"UPDATE {table} SET {used} = {used} - %s "  # noqa: S608
                f"WHERE {key_column} IN ({', '.join(['%s'] * len(keys))})",
                [amount, *keys],
            )


def _names() -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    return quote(AdmissionWindow._meta.db_table), quote("key"), quote("used")


def windows_forget_ended(*, now: datetime) -> int:
    deleted, _ = AdmissionWindow.objects.filter(expires_at__lt=now).delete()
    return deleted


def windows_used(keys: Sequence[str]) -> list[int]:
    """What each window has used (for pages and tests)."""
    if uses_redis():
        values = _redis().mget([_redis_key(key) for key in keys])
        return [int(value or 0) for value in values]
    found = dict(AdmissionWindow.objects.filter(key__in=list(keys)).values_list("key", "used"))
    return [int(found.get(key, 0)) for key in keys]
