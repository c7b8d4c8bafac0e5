"""Streaming one answer from Azure OpenAI to the browser as server-sent events.

The hot path: the answer's text goes out as small `delta` events, the first token the moment it
arrives and then whatever arrived in each interval (50 ms; wider while many answers stream at
once), read from the SDK's raw response with nothing re-encoded but the text. The database is
touched once before the call (`chat_turn_prepare`, in the view) and once after
(`chat_turn_finish`), both on the chat's database thread (`chat.database`), however the stream
ends: answered, stopped by the user (the client went away), cut by the content filter, or
broken.
"""

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import httpx2
import openai
from django.db import OperationalError
from openai import AsyncAzureOpenAI
from openai._constants import RAW_RESPONSE_HEADER
from openai._vendor.httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from chat.database import database_later
from chat.turns import FinishedTurn, Outcome, Refusal, Turn, chat_turn_finish
from provisioning.azure import data_plane_token_provider, is_emulator

logger = logging.getLogger(__name__)

API_VERSION = "2025-04-01-preview"
# Azure's own 429s are retried by the SDK (honouring retry-after) before the user hears of them.
MAX_RETRIES = 2
SAVE_ATTEMPTS = 3
# Between two chunks, not for the whole answer: a long answer may stream for minutes.
READ_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
# After the first token, text goes out in batches: smooth to the eye, and a fraction of the writes
# of one event per token. Relaying a batch (a read from Azure, a write to the browser) is most of
# what an answer costs the process, and the process also has new questions to send on at once:
# so the batches of all the answers streaming in it add up to at most BATCHES_PER_SECOND, each
# answer's at least DELTA_INTERVAL_SECONDS and at most DELTA_INTERVAL_MAX_SECONDS apart. Up to 25
# answers at once, 50 ms; 50 at once, 100 ms.
DELTA_INTERVAL_SECONDS = 0.05
DELTA_INTERVAL_MAX_SECONDS = 0.25
BATCHES_PER_SECOND = 500
# A call started for a response that nobody reads within this time (the person left before it
# began to stream) is closed and metered.
UNCLAIMED_SECONDS = 30.0

FINISH_NOTES = {
    "content_filter": (
        "Azure's content filter stopped this answer{categories}. The part written before is kept."
    ),
    "length": "The answer reached its length limit.",
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


_DELTA_HEAD = b'event: delta\ndata: {"text":'
_DELTA_TAIL = b"}\n\n"


def delta_event(text: str) -> bytes:
    # The one event sent per token: built from constant bytes around the encoded text.
    return _DELTA_HEAD + json.dumps(text).encode() + _DELTA_TAIL


# Answers streaming in this process now.
_streaming = 0


def delta_interval() -> float:
    return min(DELTA_INTERVAL_MAX_SECONDS, max(DELTA_INTERVAL_SECONDS, _streaming / BATCHES_PER_SECOND))


# Calls closed because nobody read their answer, kept until done (the loop holds tasks weakly).
_abandoned: set["asyncio.Task[None]"] = set()


# Clients ---------------------------------------------------------------------------------------

# An SDK client holds a connection pool bound to the event loop that made it, and building one
# costs milliseconds (it sets up TLS), so each loop keeps one client per account endpoint.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncAzureOpenAI]]" = (
    weakref.WeakKeyDictionary()
)


def _token_provider() -> Callable[[], str | Awaitable[str]]:
    if is_emulator():
        # The emulator's credential only encodes a JWT: cheap and non-blocking.
        provider: Callable[[], str] = data_plane_token_provider()
        return provider
    # Real Entra ID: the async credential, so a token refresh never blocks the event loop.
    from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

    from provisioning.azure import COGNITIVE_SERVICES_SCOPE

    return get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)


# Built once, when the process starts: loading the trusted certificates takes tens of
# milliseconds, which a client made on the event loop would take from every answer streaming.
TLS_CONTEXT = httpx2.create_ssl_context()


# Where an answer's response keeps its body (`AnswerBody`), in `httpx2.Response.extensions`.
ANSWER_BODY = "switchyard.answer_body"


class AnswerTransport(AiohttpTransport):
    """The SDK's aiohttp transport (`openai[aiohttp]`): aiohttp parses the answer's chunks in C,
    for a fraction of the CPU the default transport spends on each, which decides how many
    answers one web process streams without delaying their first tokens. Each response's body
    is an `AnswerBody`."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        if isinstance(stream, AiohttpResponseStream):
            response.stream = response.extensions[ANSWER_BODY] = AnswerBody(stream)
        return response


class AnswerBody(httpx2.AsyncByteStream):
    """An answer's body as aiohttp receives it, with two changes.

    - When the connection breaks mid-answer, aiohttp raises at once and drops what it had
      received but nobody had read yet (a burst of tokens that came with the break). Here that
      part is handed over first, so the person keeps it and it is metered.
    - `rest` waits without reading, and without the event loop waking for every token that
      arrives meanwhile (Azure sends each in a packet of its own): the socket is left alone and
      the next read takes what the kernel kept. Between two batches of an answer's text this
      saves most of the process's wake-ups, for every answer streaming.
    """

    def __init__(self, stream: AiohttpResponseStream) -> None:
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.stream:
                yield chunk
        except httpx2.ReadError:
            # aiohttp keeps the received bytes in its reader's buffer, which it no longer
            # returns once the connection has failed.
            content = self.stream._aiohttp_response.content
            buffered = b"".join(getattr(content, "_buffer", ()))[getattr(content, "_buffer_offset", 0) :]
            if buffered:
                yield buffered
            raise

    async def rest(self, seconds: float) -> None:
        connection = self.stream._aiohttp_response.connection
        transport = connection.transport if connection is not None else None
        if transport is None or not transport.is_reading():
            # Done (the connection went back to the pool) or held by aiohttp's own flow control.
            await asyncio.sleep(seconds)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    async def aclose(self) -> None:
        await self.stream.aclose()


def openai_client(endpoint: str) -> AsyncAzureOpenAI:
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    client = clients.get(endpoint)
    if client is None:
        client = AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=API_VERSION,
            azure_ad_token_provider=_token_provider(),
            max_retries=MAX_RETRIES,
            timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            http_client=openai.DefaultAioHttpClient(transport=AnswerTransport(verify=TLS_CONTEXT)),
        )
        clients[endpoint] = client
    return client


async def close_clients() -> None:
    """Close the running event loop's clients and their connections (when the process stops)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


async def chat_completion_stream(
    client: AsyncAzureOpenAI, *, deployment: str, messages: list[dict[str, str]], max_output_tokens: int
) -> httpx2.Response:
    """Start a streamed chat completion, with its usage at the end; returns the response with its
    headers read and its body (server-sent events) not yet.

    The SDK makes the call: the deployment's URL, the API version, the token, retries on 429
    honouring retry-after, and errors raised as `openai.APIError`s. It is made with the client's
    `post` rather than the typed `chat.completions.create`, which sends the same request but first
    checks every message of the conversation against each of the six kinds of message to
    transform it: for text messages that changes nothing, and it cost the event loop 1.5 to 3 ms
    per answer (more, the longer the conversation) before the call went out. The answer is read
    from the raw response, not parsed into one pydantic object per token, which at 50 answers
    streaming cost a whole CPU core."""
    answer = await client.post(
        "/chat/completions",
        body={
            "model": deployment,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # The answer's length bounds what the call may cost: admission reserved for it.
            "max_completion_tokens": max_output_tokens,
        },
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
        # The raw response, body unread, as `with_streaming_response` asks for it.
        options={"headers": {RAW_RESPONSE_HEADER: "stream"}},
    )
    return cast("openai.AsyncAPIResponse[Any]", answer).http_response


# Errors, in words for the person chatting --------------------------------------------------------


def _filtered_categories(results: Any) -> list[str]:
    if not isinstance(results, dict):
        return []
    return [
        category.replace("_", " ")
        for category, verdict in results.items()
        if isinstance(verdict, dict) and verdict.get("filtered")
    ]


def _retry_after(error: openai.APIStatusError) -> int | None:
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value:
            try:
                return max(1, int(-(-float(value) // scale)))
            except ValueError:
                continue
    return None


def _prompt_filter_verdict(error: openai.BadRequestError) -> dict[str, Any] | None:
    body = error.body if isinstance(error.body, dict) else {}
    body = body.get("error", body) if isinstance(body.get("error"), dict) else body
    if body.get("code") != "content_filter":
        return None
    inner = body.get("innererror") or {}
    verdict = inner.get("content_filter_result") if isinstance(inner, dict) else None
    return verdict if isinstance(verdict, dict) else {}


def refusal_for(error: openai.APIError, turn: Turn) -> tuple[str, int | None, dict[str, Any] | None]:
    """(message, retry_after, content filter verdict) for a call Azure refused."""
    if isinstance(error, openai.BadRequestError):
        verdict = _prompt_filter_verdict(error)
        if verdict is not None:
            categories = ", ".join(_filtered_categories(verdict)) or "policy"
            return (
                f"This message was blocked by the content filter ({categories}). Rephrase it and try again.",
                None,
                verdict,
            )
    if isinstance(error, openai.RateLimitError):
        retry_after = _retry_after(error)
        wait = f"Try again in {retry_after} seconds." if retry_after else "Try again in a minute."
        return f"{turn.deployment_display_name} is busy (Azure's rate limit). {wait}", retry_after, None
    if isinstance(error, openai.APITimeoutError):
        return f"{turn.deployment_display_name} did not answer in time. Try again in a moment.", None, None
    if isinstance(error, openai.APIConnectionError):
        return f"{turn.deployment_display_name} could not be reached. Try again in a moment.", None, None
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status >= 500:
            return (
                f"{turn.deployment_display_name} failed to answer (Azure error {status}). "
                "Try again in a moment.",
                _retry_after(error),
                None,
            )
        return (
            f"{turn.deployment_display_name} refused the call (Azure error {status}). "
            "Try again later, or tell a platform admin if it keeps happening.",
            None,
            None,
        )
    return f"{turn.deployment_display_name} could not answer. Try again in a moment.", None, None


# The stream ------------------------------------------------------------------------------------


async def refusal_events(refusal: Refusal) -> AsyncIterator[bytes]:
    yield sse("start", {"user_message_id": refusal.user_message_id, "warning": None})
    yield sse("error", {"message": refusal.message, "retry_after": refusal.retry_after})


class AnswerStream:
    """One model call relayed as events, and what it delivered, saved however it ends."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.parts: list[str] = []
        self.completion_chunks = 0
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.content_filter: dict[str, Any] | None = None
        self.started = time.monotonic()
        self.first_token_ms: int | None = None
        self.accepted = False  # Azure accepted the call: it is metered
        # The call was cancelled on its way (the person left before Azure answered): it may have
        # reached Azure, which then bills its prompt, so it is metered on an estimate.
        self.cancelled_on_its_way = False
        self.saved: FinishedTurn | None = None
        self._opening: asyncio.Task[httpx2.Response] | None = None
        self._unclaimed: asyncio.TimerHandle | None = None

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def outcome(
        self, *, finish_reason: str, error: str = "", verdict: dict[str, Any] | None = None
    ) -> Outcome:
        content = "".join(self.parts)
        if self.usage is not None:
            prompt_tokens = int(self.usage.get("prompt_tokens") or 0)
            completion_tokens = int(self.usage.get("completion_tokens") or 0)
            cached_tokens = int((self.usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        else:
            # No usage chunk (stopped or broken): meter what was delivered, one token per
            # content chunk as Azure streams them, and the prompt as counted before the call.
            prompt_tokens = self.turn.prompt_tokens
            completion_tokens = self.completion_chunks
            cached_tokens = 0
        return Outcome(
            content=content,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token_ms=self.first_token_ms,
            duration_ms=self._elapsed_ms(),
            content_filter=verdict or self.content_filter,
            error=error,
            metered=self.accepted or self.cancelled_on_its_way,
            estimated=self.usage is None,
        )

    async def _save(self, outcome: Outcome) -> FinishedTurn:
        # Once per call, however many ways it ends (a stop can arrive while an error is sent).
        if self.saved is None:
            for attempt in range(SAVE_ATTEMPTS):
                try:
                    self.saved = await database_later(chat_turn_finish, turn=self.turn, outcome=outcome)
                    break
                except OperationalError:
                    # SQLite answers "database is locked" when writers queue past its timeout.
                    if attempt == SAVE_ATTEMPTS - 1:
                        logger.exception(
                            "Could not save the answer for conversation %s", self.turn.conversation_id
                        )
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
        assert self.saved is not None
        return self.saved

    def call(self) -> None:
        """Send the request to Azure now, from the view: it is under way while the response's
        headers pass the middleware and go out, and `events` picks it up."""
        loop = asyncio.get_running_loop()
        self._opening = loop.create_task(self._open())
        self._unclaimed = loop.call_later(UNCLAIMED_SECONDS, self._abandon)

    async def _open(self) -> httpx2.Response:
        turn = self.turn
        return await chat_completion_stream(
            openai_client(turn.endpoint),
            deployment=turn.deployment_name,
            messages=turn.prompt,
            max_output_tokens=turn.max_output_tokens,
        )

    async def _close_call(self) -> None:
        """Cancel the call if it is still being made, or close its answer if it was accepted."""
        opening = self._opening
        if opening is None:
            return
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await opening
        if opening.cancelled():
            # Cancelled here, or with the stream that waited for it (a task cancels what it awaits).
            self.cancelled_on_its_way = True
            return
        if opening.exception() is None:
            self.accepted = True
            await opening.result().aclose()

    def _abandon(self) -> None:
        # The person left before the answer's stream started (Django then never reads it):
        # close the call and keep what it cost.
        async def abandon() -> None:
            await self._close_call()
            await self._save(self.outcome(finish_reason="stopped"))

        task = asyncio.get_running_loop().create_task(abandon())
        _abandoned.add(task)
        task.add_done_callback(_abandoned.discard)

    async def events(self) -> AsyncIterator[bytes]:
        turn = self.turn
        if self._opening is None:
            self.call()
        assert self._opening is not None
        assert self._unclaimed is not None
        self._unclaimed.cancel()
        try:
            # Inside the try: a person who leaves as the stream starts still has the call
            # closed and metered (it may have reached Azure).
            yield sse("start", {"user_message_id": turn.user_message_id, "warning": turn.warning})
            try:
                response = await self._opening
            except openai.APIError as error:
                message, retry_after, verdict = refusal_for(error, turn)
                logger.info("Chat call refused for conversation %s: %s", turn.conversation_id, error)
                await self._save(self.outcome(finish_reason="error", error=message, verdict=verdict))
                yield sse("error", {"message": message, "retry_after": retry_after})
                return
            self.accepted = True
            try:
                body = response.extensions.get(ANSWER_BODY)
                rest = body.rest if isinstance(body, AnswerBody) else asyncio.sleep
                async for text in self._batched_text(response.aiter_bytes(), rest):
                    yield delta_event(text)
            finally:
                await response.aclose()
        except (asyncio.CancelledError, GeneratorExit):
            # The person pressed stop or closed the page: keep and meter what was delivered.
            if not self.accepted:
                await self._close_call()
            await self._save(self.outcome(finish_reason="stopped"))
            raise
        except Exception as error:  # any break of the stream: keep the partial answer
            logger.warning("Chat stream broke for conversation %s: %r", turn.conversation_id, error)
            if self.parts:
                message = "The connection to the assistant broke. The part that arrived is kept."
                await self._save(self.outcome(finish_reason="interrupted"))
            else:
                message = f"{turn.deployment_display_name} stopped answering. Try again in a moment."
                await self._save(self.outcome(finish_reason="interrupted", error=message))
            yield sse("error", {"message": message, "retry_after": None})
            return

        finish_reason = self.finish_reason or "stop"
        outcome = self.outcome(finish_reason=finish_reason)
        finished = await self._save(outcome)
        done: dict[str, Any] = {
            "message_id": finished.message_id,
            "finish_reason": finish_reason,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": _usd(finished.cost),
            "conversation_cost": _usd(finished.conversation_cost),
            "title": finished.title,
        }
        if finish_reason in FINISH_NOTES:
            categories = ", ".join(_filtered_categories(self.content_filter))
            done["note"] = FINISH_NOTES[finish_reason].format(
                categories=f" ({categories})" if categories else ""
            )
        yield sse("done", done)

    async def _batched_text(
        self, received: AsyncIterator[bytes], rest: Callable[[float], Awaitable[None]]
    ) -> AsyncIterator[str]:
        """The answer's text: the first piece the moment it arrives, then whatever arrived in each
        interval (`delta_interval`). One write per stream and interval instead of one per token
        keeps the event loop free when many answers stream at once; nobody reads faster than that.
        (What arrives meanwhile waits, `rest` says where; the next read takes all of it.)"""
        global _streaming
        _streaming += 1
        try:
            async for payloads in sse_payloads(received):
                text = self._take(payloads)
                if not text:
                    continue
                if self.first_token_ms is None:
                    self.first_token_ms = self._elapsed_ms()
                self.parts.append(text)
                yield text
                await rest(delta_interval())
        finally:
            _streaming -= 1

    def _take(self, payloads: list[bytes]) -> str:
        """The content text of some chunks; notes usage and finish reason on the way."""
        texts = []
        for payload in payloads:
            if payload == b"[DONE]":
                continue
            chunk = json.loads(payload)
            if chunk.get("error"):
                # An error inside a 200 stream (the SDK raises on these too).
                raise AzureStreamError(str(chunk["error"].get("message") or chunk["error"]))
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            choices = chunk.get("choices")
            # Azure's first chunk (prompt filter results) and the usage chunk have no choices.
            if not choices:
                continue
            choice = choices[0]
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(text)
                self.completion_chunks += 1
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if self.finish_reason == "content_filter":
                    self.content_filter = choice.get("content_filter_results")
        return "".join(texts)


class AzureStreamError(Exception):
    """Azure reported an error in the middle of a stream."""


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


def _usd(amount: Any) -> str:
    return f"{amount:.6f}"


def answer_stream(turn: Turn) -> AsyncIterator[bytes]:
    """The answer's events, its call to Azure already under way."""
    stream = AnswerStream(turn)
    stream.call()
    return stream.events()
