"""An answer as server-sent events, paced as the emulator's settings say, that stop when the
caller leaves and report how many content tokens were delivered."""

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from provisioning.emulator.dataplane.answer import Answer, Call, Completion, Pacing
from provisioning.emulator.dataplane.content_filter import PROMPT_FILTER_RESULTS, filter_results
from provisioning.emulator.hang import wait_for_disconnect

# Tokens per write when there is no per-token delay: the same events, fewer system calls.
STREAM_BATCH = 50


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# Azure's first event: no choices, only the prompt's filter verdict.
PROMPT_FILTER_EVENT = (
    b"data: "
    + _dumps(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTER_RESULTS,
        }
    )
    + b"\n\n"
)
DONE_EVENT = b"data: [DONE]\n\n"
ROLE_CHOICE = {
    "content_filter_results": {},
    "delta": {"content": "", "refusal": None, "role": "assistant"},
    "finish_reason": None,
    "index": 0,
    "logprobs": None,
}


class ChunkWriter:
    """The server-sent events of one completion. The parts of a content chunk that do not change
    are serialised once: a stream is mostly content chunks, and a thousand of them run at once."""

    def __init__(self, completion: Completion) -> None:
        identity = _dumps(
            {
                "created": completion.created,
                "id": completion.id,
                "model": completion.model,
                "object": "chat.completion.chunk",
                "system_fingerprint": completion.fingerprint,
            }
        )[1:-1]
        self._identity = identity
        self._content_head = (
            b'data: {"choices":[{"content_filter_results":'
            + _dumps(filter_results())
            + b',"delta":{"content":'
        )
        self._content_tail = b'},"finish_reason":null,"index":0,"logprobs":null}],' + identity + b"}\n\n"

    def content(self, tokens: tuple[str, ...]) -> bytes:
        head, tail = self._content_head, self._content_tail
        return b"".join([head + _json_string(token) + tail for token in tokens])

    def choice(self, choice: dict[str, Any]) -> bytes:
        return b'data: {"choices":[' + _dumps(choice) + b"]," + self._identity + b"}\n\n"

    def usage(self, usage: dict[str, Any]) -> bytes:
        return b'data: {"choices":[],' + self._identity + b',"usage":' + _dumps(usage) + b"}\n\n"


_json_strings: dict[str, bytes] = {}


def _json_string(token: str) -> bytes:
    # Answers are made of a small vocabulary: keep each token's JSON once.
    encoded = _json_strings.get(token)
    if encoded is None:
        encoded = json.dumps(token).encode()
        if len(_json_strings) < 50_000:
            _json_strings[token] = encoded
    return encoded


class StreamDropped(Exception):
    """Raised in a stream to make the server cut the connection (the drop_stream fault)."""


class _HideDroppedStreams(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


# ASGI has no way to abort a response but raising; uvicorn then closes the connection and logs the
# exception, which for an injected fault is noise.
logging.getLogger("uvicorn.error").addFilter(_HideDroppedStreams())


def stream_answer(
    call: Call, answer: Answer, pacing: Pacing, *, include_usage: bool, drop_after: int | None
) -> Response:
    writer = ChunkWriter(Completion.new(call.deployment))
    final_choice = {
        "content_filter_results": answer.choice_filter_results() if answer.filtered else {},
        "delta": {},
        "finish_reason": answer.finish_reason,
        "index": 0,
        "logprobs": None,
    }
    closing = writer.choice(final_choice)
    if include_usage:
        closing += writer.usage(call.usage(len(answer.tokens)))
    events = _events(writer, answer.tokens, pacing, closing + DONE_EVENT, drop_after)
    return EventStreamResponse(events, headers=call.headers, on_close=call.delivered)


async def _events(
    writer: ChunkWriter, tokens: tuple[str, ...], pacing: Pacing, closing: bytes, drop_after: int | None
) -> AsyncGenerator[tuple[bytes, int], None]:
    """(bytes to send, content tokens in them): the opening, the paced content, the closing."""
    yield PROMPT_FILTER_EVENT + writer.choice(ROLE_CHOICE), 0
    count = len(tokens) if drop_after is None else min(drop_after, len(tokens))
    async for start, stop in _paced(count, pacing):
        yield writer.content(tokens[start:stop]), stop - start
    if drop_after is not None:
        raise StreamDropped
    yield closing, 0


async def _paced(count: int, pacing: Pacing) -> AsyncIterator[tuple[int, int]]:
    """Slices of the content, released on the pacing's schedule (measured from the start, so
    per-token delays do not drift)."""
    if pacing.per_token_seconds <= 0:
        if pacing.first_token_seconds > 0:
            await asyncio.sleep(pacing.first_token_seconds)
        for start in range(0, count, STREAM_BATCH):
            if start:
                await asyncio.sleep(0)  # let the other streams have their turn
            yield start, min(count, start + STREAM_BATCH)
        return
    loop = asyncio.get_running_loop()
    first_due = loop.time() + pacing.first_token_seconds
    index = 0
    while index < count:
        delay = first_due + index * pacing.per_token_seconds - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # A busy emulator catches up by sending every token whose time has come in one write.
        due = int((loop.time() - first_due) / pacing.per_token_seconds) + 1
        stop = min(count, max(index + 1, due))
        yield index, stop
        index = stop


class EventStreamResponse(Response):
    """Server-sent events that stop when the caller leaves, and report how many content tokens
    were sent (`on_close`), whether the stream ended, was dropped or was abandoned."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[tuple[bytes, int], None],
        *,
        headers: dict[str, str],
        on_close: Callable[[int], None],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.events = events
        self.on_close = on_close
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn silently drops writes to a closed connection, so listen for the disconnect.
        caller_left = asyncio.create_task(wait_for_disconnect(receive))
        sent_tokens = 0
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for data, tokens in self.events:
                if caller_left.done():
                    return
                await send({"type": "http.response.body", "body": data, "more_body": True})
                sent_tokens += tokens
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            caller_left.cancel()
            await self.events.aclose()
            self.on_close(sent_tokens)
