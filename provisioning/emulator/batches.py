"""Where the emulator's batch work runs: the passages a worker sends to be embedded or indexed.

Azure embeds and indexes on other machines than the ones that stream chat answers; here they share
one machine. A batch is Python that holds the GIL for tens of milliseconds (reading megabytes of
JSON, hashing words, checking and analysing fields), and every thread of the emulator that does it
is one more the event loop, streaming answers, queues behind for the GIL. So:

- the part of a batch that needs nothing of the emulator's state (its body read, its fields checked
  and analysed, its passages counted and embedded) runs in the **batch process**, a child at a
  lower priority (`in_batch_process`): it holds another interpreter's GIL, and the kernel lets the
  process that streams answers go first;
- what changes the state (the analysed passages put into their index) runs on the **batch
  thread** (`in_batch_thread`), one batch after another.
"""

import asyncio
import contextlib
import functools
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")

# As the Procfile runs the Celery worker (and base/priority.py gives its session): background work
# yields to what answers people.
BATCH_PROCESS_NICENESS = 10

# One limiter per event loop (a test process runs several emulators, each on a loop of its own).
_limiters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]" = (
    weakref.WeakKeyDictionary()
)
# One batch process per emulator process, started by the first batch.
_process: ProcessPoolExecutor | None = None
_process_lock = threading.Lock()


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(1)
    return limiter


async def in_batch_thread(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` on the batch thread, once the batches before it are done."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs), limiter=_limiter())


async def in_batch_process(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` in the batch process, once the batches before it are done. `work` is
    a module's function; it sees nothing of this process's state, only its arguments (pickled, as
    its result and its exceptions are)."""
    call = functools.partial(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    process = _batch_process()
    try:
        return await loop.run_in_executor(process, call)
    except BrokenProcessPool:
        # The process was killed (out of memory, a signal): this batch goes to a new one.
        _discard(process)
        return await loop.run_in_executor(_batch_process(), call)


async def in_batch_process_unless(small: bool, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` here and at once when the batch is `small` (a question, an index's
    definition: the trip to the batch process and back would cost more than it saves), else in the
    batch process."""
    return work(*args, **kwargs) if small else await in_batch_process(work, *args, **kwargs)


def _batch_process() -> ProcessPoolExecutor:
    global _process
    with _process_lock:
        if _process is None:
            # Spawned, not forked: a fork would copy this process's threads' locks mid-use.
            _process = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_started
            )
        return _process


def _discard(process: ProcessPoolExecutor) -> None:
    global _process
    with _process_lock:
        if _process is process:
            _process = None
    process.shutdown(wait=False, cancel_futures=True)


def _started() -> None:
    _lowered()
    threading.Thread(target=_ends_with, args=(os.getppid(),), name="emulator-watch", daemon=True).start()


def _ends_with(emulator: int) -> None:
    """The batch process ends when the emulator has gone without telling it (killed)."""
    while os.getppid() == emulator:
        time.sleep(1)
    os._exit(0)


def _lowered() -> None:
    """The batch process's priority, lowered. Linux shares a busy CPU between sessions before it
    shares it between their processes (autogroups): in the emulator's session, the batch process
    would take as much of the CPU as the portal's whole session. It leads a session of its own, and
    the session takes its nice value."""
    os.setsid()
    os.nice(BATCH_PROCESS_NICENESS)
    with contextlib.suppress(OSError):  # not Linux, or autogroups turned off
        Path("/proc/self/autogroup").write_text(f"{BATCH_PROCESS_NICENESS}\n")
    # And it runs on CPU time nothing else wants: the emulator's loop, or the portal, take the CPU
    # from it as soon as they wake, where a nice value would let it finish its slice first.
    with contextlib.suppress(OSError, AttributeError):  # not Linux
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
