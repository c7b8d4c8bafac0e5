"""The chat's database work, on one long-lived thread that keeps its connection open (the rest of
the chat's hot path: calls/transport.py, chat/streaming.py).

Under ASGI Django runs each request's synchronous code on a thread of its own, so every answer
would open a database connection before its model call (SQLite reads the schema again; a
PostgreSQL server starts a process for it) and hold it while the answer streams: 300 answers,
300 connections. Each answer does its database work in two jobs instead, before the call
(`urgent`: the person is waiting for the first token) and after it (`later`), and they run
here, on a connection per thread. Urgent jobs have a thread of their own. On PostgreSQL the later
jobs have another, so a new call's admission never waits for the settlement of one that ended
just before (a commit, and the rollups: several round trips); on SQLite, which takes one writer
at a time, they queue behind the urgent ones on the same thread. More threads would not help:
the GIL lets only one run Python at a time anyway.

The connection stays open from one job to the next and is closed after a quiet spell
(`IDLE_SECONDS` without a job), so a quiet process holds none. Opening it again delays the next
question on its way to the model (SQLite reads the schema; PostgreSQL starts a server process):
closing it whenever no answer was under way put that on every question of a person chatting alone.

Jobs queued at the same time with the same urgency run together, in one transaction with a
savepoint each (group commit): fifty calls admitted at once cost one commit, not fifty, and none
is told its result before that commit. A job that fails on the database rolls back only its own
savepoint; one that raises anything else keeps what it wrote, as it did when it committed alone.
A job alone in the queue, or queued with `database_job_alone`, runs as Django would run it, in
autocommit.

A test may lend the thread the connection that holds its transaction (`use_connections`), as
Django's LiveServerThread borrows a test's connections: the jobs then see the test's data, and
run as in production otherwise.
"""

import asyncio
import contextlib
import contextvars
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from base.loop_database import loop_database

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# The connection is closed after this long without a job.
IDLE_SECONDS = 30.0

URGENT, LATER = 0, 1
# Jobs run in one transaction at most: a group waits for its commit, so it must stay short.
GROUP_MAX = 32


class _Job:
    __slots__ = ("args", "context", "function", "future", "grouped", "kwargs", "loop")

    def __init__(
        self,
        context: contextvars.Context,
        function: Callable[..., Any],
        args: Any,
        kwargs: Any,
        loop: asyncio.AbstractEventLoop,
        future: "asyncio.Future[Any]",
        *,
        grouped: bool,
    ) -> None:
        self.context = context
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.loop = loop
        self.future = future
        # False: never in a group; the thread's own housekeeping (closing, lending connections),
        # and jobs whose one write commits on its own (`database_job_alone`).
        self.grouped = grouped

    def __call__(self) -> Any:
        return self.context.run(self.function, *self.args, **self.kwargs)


class DatabaseThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Another thread's connections, by alias, used instead of the thread's own (`use`); only
        # the thread itself reads or changes this.
        self._lent: dict[str, BaseDatabaseWrapper] = {}

    @property
    def started(self) -> bool:
        return self._thread is not None

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                    self._thread.start()

    async def run(
        self,
        function: Callable[..., R],
        args: Any,
        kwargs: Any,
        *,
        urgency: int,
        grouped: bool = True,
    ) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        # Like sync_to_async: the job sees the caller's context variables.
        job = _Job(contextvars.copy_context(), function, args, kwargs, loop, future, grouped=grouped)
        self._ensure_started()
        self._jobs.put((urgency, next(self._order), job))
        return await future

    def _work(self) -> None:
        holding = False  # a job ran since the connection was last closed
        while True:
            try:
                urgency, _, job = self._jobs.get(timeout=IDLE_SECONDS if holding else None)
            except queue.Empty:
                self.close_connections()
                holding = False
                continue
            holding = True
            group = [job]
            while job.grouped and len(group) < GROUP_MAX:
                try:
                    queued = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if queued[0] != urgency or not queued[2].grouped:
                    self._jobs.put(queued)  # keeps its place: (urgency, order) orders the queue
                    break
                group.append(queued[2])
            try:
                self._drop_broken_connections()
            except BaseException as error:
                for each in group:
                    _hand_back(each.loop, _set_exception, each.future, error)
                continue
            if len(group) == 1:
                _run_alone(job)
            else:
                _run_together(group)

    def _own_connections(self) -> list[BaseDatabaseWrapper]:
        return [
            connection
            for connection in connections.all(initialized_only=True)
            if connection.alias not in self._lent
        ]

    def _drop_broken_connections(self) -> None:
        # What Django does between two requests: drop a connection that broke.
        for connection in self._own_connections():
            if connection.connection is not None and connection.errors_occurred:
                connection.close_if_unusable_or_obsolete()

    def close_connections(self) -> None:
        """Close the thread's own connections (one that another thread lent it is that thread's to
        close)."""
        try:
            for connection in self._own_connections():
                connection.close()
        except Exception:  # a broken connection is dropped all the same; the thread must go on
            logger.exception("Closing the chat's database connection failed")

    def use(self, lent: Mapping[str, BaseDatabaseWrapper]) -> None:
        """From now on, run the jobs on these connections of another thread instead of the
        thread's own, which are closed (an empty `lent`: on the thread's own again)."""
        for alias in self._lent:
            del connections[alias]  # the thread opens its own again when a job needs it
        self._lent = {}
        if lent:
            self.close_connections()
        for alias, connection in lent.items():
            connections[alias] = connection
        self._lent = dict(lent)


class _RolledBack(DatabaseError):
    pass


def _run_alone(job: _Job) -> None:
    try:
        result = job()
    except BaseException as error:  # handed to the caller, as sync_to_async does
        _hand_back(job.loop, _set_exception, job.future, error)
    else:
        _hand_back(job.loop, _set_result, job.future, result)


def _run_together(group: list[_Job]) -> None:
    """Run the jobs in one transaction, each in a savepoint, and tell each its outcome once the
    transaction has committed."""
    outcomes: list[tuple[bool, Any]] = []
    try:
        with transaction.atomic():
            for job in group:
                outcomes.append(_run_in_savepoint(job))
            if transaction.get_rollback():
                # A savepoint could not be rolled back (the connection broke): the transaction
                # rolls back whole, and no job may be told that its work was kept.
                raise _RolledBack("The jobs' transaction was rolled back.")
    except DatabaseError as error:
        if not outcomes:
            # The transaction did not begin (SQLite's write lock stayed taken): nothing ran, so
            # each job runs on its own, as it would have without the others.
            for job in group:
                _run_alone(job)
            return
        # The commit failed: nothing of theirs was kept (a job's own failure is its to report).
        outcomes = [(False, error if succeeded else value) for succeeded, value in outcomes]
        outcomes += [(False, error)] * (len(group) - len(outcomes))
    except BaseException as error:
        outcomes = [(False, error)] * len(group)
    # One wake-up of each caller's event loop for all its jobs' outcomes.
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, (succeeded, value) in zip(group, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, succeeded, value))
    for loop, told in by_loop.items():
        _hand_back(loop, _set_outcomes, told)


def _run_in_savepoint(job: _Job) -> tuple[bool, Any]:
    """(True, result) or (False, error). A database error rolls the job's savepoint back; any other
    error keeps its writes, as autocommit did (its own atomic blocks have rolled back their part)."""
    try:
        with transaction.atomic():
            try:
                return True, job()
            except DatabaseError:
                raise
            except BaseException as error:
                return False, error
    except DatabaseError as error:
        return False, error


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


def _set_outcomes(told: "list[tuple[asyncio.Future[Any], bool, Any]]") -> None:
    for future, succeeded, value in told:
        if succeeded:
            _set_result(future, value)
        else:
            _set_exception(future, value)


_thread = DatabaseThread("chat-database")
# The work nobody waits on (`database_later`), on a connection of its own where the database takes
# two writers at once (PostgreSQL): a new call's admission never waits for settlements under way.
# SQLite takes one writer at a time, so there it queues behind the urgent jobs on the one thread.
_later_thread = DatabaseThread("chat-database-later")
# Connections lent by a test (`use_connections`): every job runs on them, so on the one thread.
_lending = False


def _thread_for_later() -> DatabaseThread:
    if _lending or connections["default"].vendor == "sqlite":
        return _thread
    return _later_thread


def on_own_connections() -> bool:
    """Whether the calls' database work runs on the process's own connections, which see what
    others have committed: on the database thread (CHAT_DATABASE_THREAD) and no test's connection
    lent to it. Work that opens connections of its own (`base.loop_database`) is right only then."""
    return bool(settings.CHAT_DATABASE_THREAD) and not _lending


async def database_job(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `function` on the chat's database thread, before any job queued with `database_later`
    on that thread.

    With CHAT_DATABASE_THREAD off it runs as Django would run it, via sync_to_async."""
    if not settings.CHAT_DATABASE_THREAD:
        return await sync_to_async(function)(*args, **kwargs)
    return await _thread.run(function, args, kwargs, urgency=URGENT)


async def database_rows(query: "QuerySet[Any, tuple[Any, ...]]") -> list[tuple[Any, ...]]:
    """The rows of a read-only `values_list` query that a call waits for. On PostgreSQL the query,
    compiled by the ORM, is sent from the event loop (`base.loop_database`), where as a job it
    would queue behind the jobs under way on the thread; elsewhere it is a job. The rows are as the
    database returns them (Django's converters do not run): name plain columns only."""
    if on_own_connections() and connections[query.db].vendor == "postgresql":
        sql, params = query.query.sql_with_params()
        return await loop_database().fetchall(sql, params)
    return await database_job(list, query)


async def database_job_alone(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Like `database_job`, never in a group's transaction: for a job that reads, then writes in
    one statement that commits on its own (a gateway call's admission, which does not wait for
    the disk), to which a group would only add its BEGIN, savepoints and a commit that does."""
    if not settings.CHAT_DATABASE_THREAD:
        return await sync_to_async(function)(*args, **kwargs)
    return await _thread.run(function, args, kwargs, urgency=URGENT, grouped=False)


async def database_later(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Like `database_job`, for work nobody is waiting on (saving a finished answer, settling a
    call): after the urgent jobs, or beside them on a connection of its own (PostgreSQL)."""
    if not settings.CHAT_DATABASE_THREAD:
        return await sync_to_async(function)(*args, **kwargs)
    return await _thread_for_later().run(function, args, kwargs, urgency=LATER)


async def close_connection() -> None:
    """Close the threads' connections now, after the jobs queued before (before its database is
    dropped, say); the next job opens them again."""
    for thread in (_thread, _later_thread):
        if thread.started:
            await thread.run(thread.close_connections, (), {}, urgency=LATER, grouped=False)


async def use_connections(lent: Mapping[str, BaseDatabaseWrapper]) -> None:
    """After the jobs queued before, run the jobs on these connections instead of the thread's own
    (`{}`: on its own again), as Django's LiveServerThread runs a test's requests on the test's
    connections. They belong to the caller's thread, which keeps them open and allows them to be
    shared (`inc_thread_sharing`): a test's, whose data lives in the test's transaction. Meanwhile
    every job runs on the one thread, which the connections are lent to."""
    global _lending
    if lent and _later_thread.started:
        await _later_thread.run(_later_thread.close_connections, (), {}, urgency=LATER, grouped=False)
    _lending = bool(lent)
    await _thread.run(_thread.use, (lent,), {}, urgency=LATER, grouped=False)
