"""One thread for the emulator's batch work: the passages a worker sends to be embedded or
indexed, and their bodies read.

Azure embeds and indexes on other machines than the ones that stream chat answers; here both
share one interpreter. The batch work is Python that holds the GIL (hashing words, checking and
indexing fields), so running several batches at once on several threads makes none of them
faster, and each busy thread is one more that the event loop, streaming answers, queues behind for
the GIL. On one thread, batches wait for one another and the loop competes with one thread only.
"""

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")

# One limiter per event loop (a test process runs several emulators, each on a loop of its own).
_limiters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]" = (
    weakref.WeakKeyDictionary()
)


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(1)
    return limiter


async def in_batch_thread(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)` on the batch thread, once the batches before it are done."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs), limiter=_limiter())
