"""Server-sent events as Azure OpenAI streams them: the `data:` payloads of a byte stream."""

from collections.abc import AsyncIterator


async def sse_payloads(received: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The `data:` payloads of the server-sent events in a byte stream, grouped by the read
    that completed them."""
    pending = b""
    async for data in received:
        pending += data
        cut = pending.rfind(b"\n\n")
        if cut < 0:
            continue
        complete, pending = pending[:cut], pending[cut + 2 :]
        if b"\r" in complete:
            complete = complete.replace(b"\r\n", b"\n")
        payloads = []
        for event in complete.split(b"\n\n"):
            data_lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if data_lines:
                payloads.append(b"\n".join(data_lines))
        yield payloads
