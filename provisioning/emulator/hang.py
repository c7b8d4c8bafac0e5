"""The "hang" fault: accept a call and answer nothing until the caller gives up."""

import asyncio

from starlette.types import Receive

# Past this the emulator stops waiting and answers a timeout, as Azure's front door would.
HANG_LIMIT_SECONDS = 300


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_caller_leaves(receive: Receive, *, limit_seconds: float = HANG_LIMIT_SECONDS) -> bool:
    """True when the caller disconnected, False when the limit passed first."""
    try:
        await asyncio.wait_for(wait_for_disconnect(receive), limit_seconds)
    except TimeoutError:
        return False
    return True
