"""Streaming one answer from Azure OpenAI to the browser as server-sent events.

The hot path: the answer's text goes out as small `delta` events, the first token the moment it
arrives and then, in batches, whatever arrived in each interval (`delta_interval`, wider while many
answers stream at once), read from the raw response (calls/transport.py) with nothing re-encoded
but the text. The database is touched once before the call (`chat_turn_prepare`, in the view) and
once after (`chat_turn_finish`), both on the chat's database thread (calls/database.py), however
the stream ends: answered, stopped by the user (the client went away), cut by the content filter,
or broken.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
from django.db import OperationalError
from django.utils import timezone

from calls.database import database_later
from calls.failover import Failover, Target, retry_after
from calls.observe import ANSWERED, CHAT, STOPPED, UPSTREAM_ERROR, CallObservation, record, upstream_status_of
from calls.sse import sse_payloads
from calls.transport import chat_completion_stream, openai_client, rest_between_reads
from chat.turns import FinishedTurn, Outcome, Refusal, Turn, chat_turn_finish
from grounding.quoting import citation, citations_of

logger = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3
# After the first token, text goes out in batches: smooth to the eye, and a fraction of the writes
# of one event per token. Relaying a batch (a read from Azure, a write to the browser) is most of
# what an answer costs the process, and the process also has new questions to send on at once:
# so the batches of all the answers streaming in it add up to at most BATCHES_PER_SECOND, each
# answer's at least DELTA_INTERVAL_SECONDS and at most DELTA_INTERVAL_MAX_SECONDS apart: the
# interval widens only once so many answers stream that the shortest one would exceed that rate.
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


# Errors, in words for the person chatting --------------------------------------------------------


def _filtered_categories(results: Any) -> list[str]:
    if not isinstance(results, dict):
        return []
    return [
        category.replace("_", " ")
        for category, verdict in results.items()
        if isinstance(verdict, dict) and verdict.get("filtered")
    ]


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
        wait_seconds = retry_after(error)
        wait = f"Try again in {wait_seconds} seconds." if wait_seconds else "Try again in a minute."
        return f"{turn.deployment_display_name} is busy (Azure's rate limit). {wait}", wait_seconds, None
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
                retry_after(error),
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
        # Azure's refusal of the call, or what broke it, for the call's observation.
        self.upstream_status = ""
        self.observed = False
        self.failover = Failover(
            turn.targets or (Target(turn.deployment_id, turn.endpoint, turn.deployment_name),)
        )
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
            served_deployment_id=self.failover.served.deployment_id if self.failover.served else None,
            attempts=tuple(self.failover.attempts),
            observation=self._observation(finish_reason, prompt_tokens, completion_tokens),
            citations=tuple(citations_of(content, self.turn.passages)) if self.turn.passages else (),
        )

    def _observation(self, finish_reason: str, input_tokens: int, output_tokens: int) -> CallObservation:
        turn = self.turn
        if finish_reason == "stopped":
            outcome = STOPPED
        elif finish_reason in ("error", "interrupted"):
            outcome = UPSTREAM_ERROR
        else:
            outcome = ANSWERED
        throttled = sum(1 for attempt in self.failover.attempts if attempt.get("status") == 429)
        throttled += self.upstream_status == "429"
        served = self.failover.served
        failed_over = served is not None and served.deployment_id != turn.deployment_id
        served_deployment = turn.served_by(served.deployment_id) if failed_over and served else None
        return CallObservation(
            deployment_id=turn.deployment_id,
            deployment=turn.deployment.gateway_name if turn.deployment else str(turn.deployment_id),
            department_id=turn.department_id,
            department=turn.department.slug if turn.department else str(turn.department_id),
            source=CHAT,
            outcome=outcome,
            at=timezone.now(),
            upstream_status=(self.upstream_status or "stream") if outcome == UPSTREAM_ERROR else "",
            first_token_ms=self.first_token_ms,
            answer_ms=self._elapsed_ms() if outcome == ANSWERED else None,
            throttled=throttled,
            failover_to=served_deployment.gateway_name if served_deployment else "",
            failover_to_id=served_deployment.pk if served_deployment else None,
            input_tokens=input_tokens if self.accepted or self.cancelled_on_its_way else 0,
            output_tokens=output_tokens,
        )

    async def _save(self, outcome: Outcome) -> FinishedTurn:
        # Once per call, however many ways it ends (a stop can arrive while an error is sent).
        if self.saved is None:
            if outcome.observation is not None and not self.observed:
                self.observed = True
                record(outcome.observation)
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
        return await self.failover.open(self._start)

    async def _start(self, target: Target, last: bool) -> httpx2.Response:
        # With a fallback left, Azure's 429 goes to the fallback at once instead of being retried.
        turn = self.turn
        return await chat_completion_stream(
            openai_client(target.endpoint),
            deployment=target.name,
            messages=turn.prompt,
            max_output_tokens=turn.max_output_tokens,
            retry=last,
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
            if turn.passages:
                # Before the text: the page links [n] to its source as the answer streams.
                yield sse("sources", {"sources": [citation(passage) for passage in turn.passages]})
            try:
                response = await self._opening
            except openai.APIError as error:
                yield await self._refused(error)
                return
            self.accepted = True
            try:
                received = response.aiter_bytes()
                async for text in self._batched_text(received, rest_between_reads(response)):
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
            yield await self._broken(error)
            return
        yield await self._done()

    async def _refused(self, error: openai.APIError) -> bytes:
        """Azure refused the call: saved with the reason, which the person is told."""
        message, retry_after, verdict = refusal_for(error, self.turn)
        self.upstream_status = upstream_status_of(error)
        logger.info("Chat call refused for conversation %s: %s", self.turn.conversation_id, error)
        await self._save(self.outcome(finish_reason="error", error=message, verdict=verdict))
        return sse("error", {"message": message, "retry_after": retry_after})

    async def _broken(self, error: Exception) -> bytes:
        """The stream broke: what arrived is saved and kept on the page."""
        turn = self.turn
        logger.warning("Chat stream broke for conversation %s: %r", turn.conversation_id, error)
        self.upstream_status = "stream"
        if self.parts:
            message = "The connection to the assistant broke. The part that arrived is kept."
            await self._save(self.outcome(finish_reason="interrupted"))
        else:
            message = f"{turn.deployment_display_name} stopped answering. Try again in a moment."
            await self._save(self.outcome(finish_reason="interrupted", error=message))
        return sse("error", {"message": message, "retry_after": None})

    async def _done(self) -> bytes:
        """The answer is complete: saved, and its usage and cost told."""
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
        if self.turn.passages:
            done["citations"] = list(outcome.citations)
        if finish_reason in FINISH_NOTES:
            categories = ", ".join(_filtered_categories(self.content_filter))
            done["note"] = FINISH_NOTES[finish_reason].format(
                categories=f" ({categories})" if categories else ""
            )
        return sse("done", done)

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


def _usd(amount: Any) -> str:
    return f"{amount:.6f}"


def answer_stream(turn: Turn) -> AsyncIterator[bytes]:
    """The answer's events, its call to Azure already under way."""
    stream = AnswerStream(turn)
    stream.call()
    return stream.events()
