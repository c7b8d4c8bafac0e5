"""One admitted call relayed to Azure OpenAI and its answer passed back as Azure wrote it.

The call goes out through the SDK client of `calls.transport` to the deployment, or to its
fallbacks when Azure answers 429 or 503 first (`calls.failover`). A streamed answer's server-sent
events are passed on as they arrive, whole events at a time, untouched (the prompt's and the
content's filter results included): Azure is always asked for the usage chunk, which is read
for the meter and dropped when the application did not ask for it. Nothing else of a chunk is
parsed. A complete answer is passed on as Azure's JSON.

What the call cost is settled after the answer went out (`gateway.metering`), however it ended:
answered, abandoned by the application half-way (what was delivered is metered), broken, or
refused by Azure (the reservation is given back).
"""

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx2
import openai

from calls.failover import Failover, Target
from calls.observe import upstream_status_of
from calls.transport import openai_client, relayed_call, rest_between_reads
from gateway.errors import GatewayError, from_azure
from gateway.metering import CallOutcome, GatewayCall

logger = logging.getLogger(__name__)

Send = Callable[[Mapping[str, Any]], Awaitable[None]]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]
# Streams relayed by this process now. Each read of Azure's stream and write to the application
# costs the process about as much as the rest of a call: while many stream at once, the chunks
# that arrive within an interval (after the first token, which always goes at once) go out in one
# write, so that all streams together make at most WRITES_PER_SECOND; with a few streaming, every
# chunk goes as it arrives. The chunks themselves are Azure's, unchanged.
_streaming = 0
WRITES_PER_SECOND = 2000
RELAY_INTERVAL_MAX_SECONDS = 0.05
RELAY_INTERVAL_MIN_SECONDS = 0.005


def relay_interval() -> float:
    interval = min(RELAY_INTERVAL_MAX_SECONDS, _streaming / WRITES_PER_SECOND)
    return interval if interval >= RELAY_INTERVAL_MIN_SECONDS else 0.0


_USAGE = b'"usage":{'
_CONTENT = b'"content":"'
_EMPTY_CONTENT = b'"content":""'
# A chunk with a choice, however its JSON is spaced.
_CHOICE = re.compile(rb'"choices"\s*:\s*\[\s*\{')


async def send_error(send: Send, error: GatewayError, *, close: bool = False) -> None:
    body = error.body()
    headers = [*error.headers(), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Relay:
    """One call to Azure and its answer to the application; `outcome` says how it ended."""

    def __init__(
        self,
        call: GatewayCall,
        body: dict[str, Any],
        *,
        stream: bool,
        include_usage: bool,
        start: Send,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.call = call
        # A grounded call's citations, added to the answer's message as Azure's "on your data"
        # answers carry them (a stream's first chunk with a choice: `delta.context`).
        self.context = context
        self.start = start  # sends the answer's first message
        self.stream = stream
        self.include_usage = include_usage
        upstream = dict(body)
        if stream:
            # Always: every streamed call is metered on Azure's own count.
            options = body.get("stream_options")
            upstream["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        self.upstream = upstream
        self.failover = Failover(call.routed.targets)
        self.outcome = CallOutcome(attempts=self.failover.attempts)
        self.response: httpx2.Response | None = None
        self.opening = True  # no answer from Azure yet: the call may be on its way
        self.started = time.monotonic()
        self.finished = False  # the last of the response is being sent

    async def _start(self, target: Target, last: bool) -> httpx2.Response:
        body = dict(self.upstream)
        body["model"] = target.name
        return await relayed_call(
            openai_client(target.endpoint), operation=self.call.operation, body=body, stream=self.stream
        )

    async def run(self, send: Send) -> None:
        try:
            response = await self.failover.open(self._start)
        except openai.APIError as error:
            self.opening = False
            self.finished = True
            self.outcome.upstream_status = upstream_status_of(error)
            await send_error(
                self.start, from_azure(error, deployment_name=self.call.routed.deployment.gateway_name)
            )
            return
        self.opening = False
        self.response = response
        self.outcome.metered = True
        self.outcome.served_deployment_id = (
            self.failover.served.deployment_id if self.failover.served else None
        )
        try:
            if self.stream:
                await self._pass_stream(response, send)
            else:
                await self._pass_body(response, send)
        finally:
            await response.aclose()

    def left_on_the_way(self) -> None:
        """The application went away before Azure answered: the call may have reached Azure,
        which then bills its prompt, so it is metered on an estimate."""
        if self.opening:
            self.outcome.metered = True
            self.outcome.served_deployment_id = self.failover.primary.deployment_id

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def _pass_body(self, response: httpx2.Response, send: Send) -> None:
        body = await response.aread()
        self.outcome.first_token_ms = self.outcome.answer_ms = self._elapsed_ms()
        try:
            usage = json.loads(body).get("usage")
        except (ValueError, AttributeError):
            usage = None
        self.outcome.usage = usage if isinstance(usage, dict) else None
        if self.context is not None:
            body = with_context(body, self.context)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        self.finished = True
        await self.start({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _pass_stream(self, response: httpx2.Response, send: Send) -> None:
        global _streaming
        await self.start({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        pending = b""
        rest = rest_between_reads(response)
        _streaming += 1
        try:
            # Raw, without httpx's decoder layers, unless Azure compressed the stream.
            chunks = (
                response.aiter_bytes() if "content-encoding" in response.headers else response.aiter_raw()
            )
            async for received in chunks:
                data = pending + received if pending else received
                end = _events_end(data)
                if end == 0:
                    pending = data
                    continue
                events, pending = data[:end], data[end:]
                content = events.count(_CONTENT) - events.count(_EMPTY_CONTENT)
                if content and self.outcome.first_token_ms is None:
                    self.outcome.first_token_ms = self._elapsed_ms()
                self.outcome.delivered_chunks += content
                if _USAGE in events:
                    events = self._take_usage(events)
                if self.context is not None and _CHOICE.search(events):
                    events = self._add_context(events)
                if events:
                    await send({"type": "http.response.body", "body": events, "more_body": True})
                interval = relay_interval()
                if content and interval:
                    # After the first token: what arrives meanwhile goes out with the next write.
                    await rest(interval)
        except httpx2.HTTPError as error:
            # Azure's stream broke after the answer began: the application hears it as the SDKs
            # report an error inside a stream, and what arrived is metered.
            logger.warning("Azure's stream broke for %s: %r", self.call.caller.label, error)
            self.outcome.upstream_status = "stream"
            failure = GatewayError(
                502, "The connection to Azure OpenAI broke during the answer.", type="server_error"
            )
            pending += b"data: " + failure.body() + b"\n\n"
        finally:
            _streaming -= 1
        self.outcome.answer_ms = self._elapsed_ms()
        self.finished = True
        await send({"type": "http.response.body", "body": pending, "more_body": False})

    def _add_context(self, events: bytes) -> bytes:
        """Put the citations in the first chunk that has a choice (the rest pass untouched)."""
        assert self.context is not None
        events, added = with_stream_context(events, self.context)
        if added:
            self.context = None
        return events

    def _take_usage(self, events: bytes) -> bytes:
        """Note the usage chunk's counts; keep it only when the application asked for it."""
        kept = []
        for event in events.split(b"\n\n"):
            if _USAGE in event:
                chunk = _chunk(event)
                usage = chunk.get("usage") if chunk is not None else None
                if isinstance(usage, dict):
                    self.outcome.usage = usage
                    if not self.include_usage and not chunk.get("choices"):  # type: ignore[union-attr]
                        continue
            kept.append(event)
        return b"\n\n".join(kept)


def with_stream_context(events: bytes, context: dict[str, Any]) -> tuple[bytes, bool]:
    """`events` with `context` in the `delta` of the first chunk that has a choice, and whether
    one had."""
    kept = []
    added = False
    for event in events.split(b"\n\n"):
        chunk = _chunk(event) if not added and _CHOICE.search(event) else None
        choices = chunk.get("choices") if chunk is not None else None
        if chunk is not None and isinstance(choices, list) and choices and isinstance(choices[0], dict):
            delta = choices[0].setdefault("delta", {})
            if isinstance(delta, dict):
                delta["context"] = context
                added = True
                event = b"data: " + json.dumps(chunk, separators=(",", ":")).encode()
        kept.append(event)
    return b"\n\n".join(kept), added


def with_context(body: bytes, context: dict[str, Any]) -> bytes:
    """A complete answer's JSON with `context` in every choice's message."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list):
        return body
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            message["context"] = context
    return json.dumps(answer).encode()


def _events_end(data: bytes) -> int:
    """Where the last complete server-sent event in `data` ends (0: none is complete)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _chunk(event: bytes) -> dict[str, Any] | None:
    lines = [
        line[5:].strip() for line in event.replace(b"\r\n", b"\n").split(b"\n") if line.startswith(b"data:")
    ]
    try:
        chunk = json.loads(b"\n".join(lines))
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None
