"""Claims: which worker is on a run's step (or talking to Azure about an account) right now.

A step waits for Azure with no database transaction open: on SQLite an open write transaction
holds the whole database, and on PostgreSQL it would hold the row and a connection for as long
as Azure takes to answer. So a row lock can no longer say "a worker is on it"; a claim does.
A claim belongs to the worker process, not to a transaction: on PostgreSQL it is an advisory
lock of the worker's database session, on SQLite (whose processes share one machine) a lock on
a file next to the database. Either is freed the moment the process dies, so a run whose worker
was killed can be taken up again at once, while a run whose step is only slow is left alone.

A claim is taken with no transaction open, before any row lock, so a worker never waits for a
claim while it holds a lock that another worker waits for.
"""

import enum
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection


class Claim(enum.IntEnum):
    """What is claimed; with the object's id it names one claim."""

    RUN = 1  # a deployment's run: one step at a time
    ACCOUNT = 2  # an Azure OpenAI account: one run at a time talks to Azure about it
    LEFTOVER_REMOVAL = 3  # a leftover's removal: one step at a time
    SEARCH_SERVICE = 4  # a landing zone's search service: one provisioning step at a time


@contextmanager
def claimed(claim: Claim, object_id: int) -> Iterator[None]:
    """Hold the claim for the block, waiting while another worker holds it."""
    held = _acquire(claim, object_id, wait=True)
    try:
        yield
    finally:
        _release(claim, object_id, held)


@contextmanager
def claimed_if_free(claim: Claim, object_id: int) -> Iterator[bool]:
    """Hold the claim for the block if nobody holds it (True); False at once if someone does."""
    held = _acquire(claim, object_id, wait=False)
    try:
        yield held is not None
    finally:
        if held is not None:
            _release(claim, object_id, held)


def _acquire(claim: Claim, object_id: int, *, wait: bool) -> int | None:
    """What holds the claim: the lock file's descriptor on SQLite, nothing to keep (0) on
    PostgreSQL, whose session holds it. None when it is taken and `wait` is false."""
    if connection.vendor == "postgresql":
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [_advisory_key(claim, object_id)])
            (row,) = cursor.fetchall()
        return 0 if wait or row[0] else None
    return _lock_file(_claim_file(claim, object_id), wait=wait)


def _release(claim: Claim, object_id: int, held: int | None) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_advisory_key(claim, object_id)])
        return
    assert held is not None
    # Removed while still locked: whoever waits on this file finds it gone and locks a new one.
    _claim_file(claim, object_id).unlink(missing_ok=True)
    os.close(held)


def _advisory_key(claim: Claim, object_id: int) -> int:
    # One bigint per claim: the kind in the top byte, the id below it.
    return (claim.value << 56) | object_id


def _claim_file(claim: Claim, object_id: int) -> Path:
    database = str(connection.settings_dict["NAME"])
    if database == ":memory:" or database.startswith("file:"):
        # A database in memory has one process: any folder of its own will do.
        database = str(Path(tempfile.gettempdir()) / f"switchyard-{os.getpid()}")
    folder = Path(f"{database}-claims")
    folder.mkdir(exist_ok=True)
    return folder / f"{claim.name.lower()}-{object_id}"


def _lock_file(path: Path, *, wait: bool) -> int | None:
    """An open descriptor holding an exclusive lock on `path` (None when another holds it and
    `wait` is false). The OS lets go of it when the process ends, however it ends."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(descriptor)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        # The previous holder removed the file as it let go: lock the one that is there now.
        os.close(descriptor)
