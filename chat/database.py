"""The chat's database work, on one long-lived thread that keeps its connection open.

Under ASGI Django runs each request's synchronous code on a thread of its own, so every answer
would open a database connection before its model call (SQLite reads the schema again; a
PostgreSQL server starts a process for it) and hold it while the answer streams: 300 answers,
300 connections. Each answer does its database work in two jobs instead, before the call
(`urgent`: the person is waiting for the first token) and after it, and they run here, in that
order of urgency, on one connection per web process. One thread is enough: the GIL lets only
one thread run Python at a time anyway, and SQLite then never makes two writers wait for each
other.

The connection stays open from one job to the next and is closed after a quiet spell
(`IDLE_SECONDS` without a job), so a quiet process holds none. Opening it again costs the next
question milliseconds on its way to the model (SQLite reads the schema; PostgreSQL starts a
server process): closing it whenever no answer was under way put that on every question of a
person chatting alone.
"""

import asyncio
import contextlib
import contextvars
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# The connection is closed after this long without a job.
IDLE_SECONDS = 30.0

URGENT, LATER = 0, 1


class DatabaseThread:
    def __init__(self) -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._work, name="chat-database", daemon=True)
                    self._thread.start()

    async def run(self, function: Callable[..., R], args: Any, kwargs: Any, *, urgency: int) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        # Like sync_to_async: the job sees the caller's context variables.
        context = contextvars.copy_context()
        self._ensure_started()
        self._jobs.put((urgency, next(self._order), (context, function, args, kwargs, loop, future)))
        return await future

    def _work(self) -> None:
        holding = False  # a job ran since the connection was last closed
        while True:
            try:
                _, _, job = self._jobs.get(timeout=IDLE_SECONDS if holding else None)
            except queue.Empty:
                _close_connections()
                holding = False
                continue
            holding = True
            context, function, args, kwargs, loop, future = job
            try:
                # What Django does between two requests: drop a connection that broke.
                for connection in connections.all(initialized_only=True):
                    if connection.connection is not None and connection.errors_occurred:
                        connection.close_if_unusable_or_obsolete()
                result = context.run(function, *args, **kwargs)
            except BaseException as error:  # handed to the caller, as sync_to_async does
                _hand_back(loop, _set_exception, future, error)
            else:
                _hand_back(loop, _set_result, future, result)


def _close_connections() -> None:
    try:
        connections.close_all()
    except Exception:  # a broken connection is dropped all the same; the thread must go on
        logger.exception("Closing the chat's database connection failed")


def _hand_back(loop: asyncio.AbstractEventLoop, setter: Callable[..., None], *args: Any) -> None:
    # RuntimeError: the caller's event loop has closed (its server stopped); nobody waits.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(setter, *args)


def _set_result(future: "asyncio.Future[Any]", result: Any) -> None:
    if not future.done():  # the caller may have been cancelled (the person left)
        future.set_result(result)


def _set_exception(future: "asyncio.Future[Any]", error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


_thread = DatabaseThread()


async def database_job(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `function` on the chat's database thread, before any job queued with `database_later`.

    With CHAT_DATABASE_THREAD off (the tests, whose data lives in the test's own transaction on
    its own connection) it runs as Django would run it, via sync_to_async."""
    if not settings.CHAT_DATABASE_THREAD:
        return await sync_to_async(function)(*args, **kwargs)
    return await _thread.run(function, args, kwargs, urgency=URGENT)


async def database_later(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Like `database_job`, for work nobody is waiting on (saving a finished answer)."""
    if not settings.CHAT_DATABASE_THREAD:
        return await sync_to_async(function)(*args, **kwargs)
    return await _thread.run(function, args, kwargs, urgency=LATER)


async def close_connection() -> None:
    """Close the thread's connection now, after the jobs queued before (before its database is
    dropped, say); the next job opens it again."""
    if _thread.started:
        await _thread.run(_close_connections, (), {}, urgency=LATER)
