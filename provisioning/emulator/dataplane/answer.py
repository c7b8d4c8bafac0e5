"""The answer to an admitted call: what it says, how fast it comes, what identifies it, what it
costs the caller; and the answer as one JSON body, for a call that does not stream."""

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from provisioning.emulator import textgen
from provisioning.emulator.dataplane.chat_request import ChatRequest
from provisioning.emulator.dataplane.content_filter import (
    PROMPT_FILTER_RESULTS,
    blocked_word,
    category_of,
    filter_results,
)
from provisioning.emulator.ratelimit import DeploymentLimiter
from provisioning.emulator.state import Store


@dataclass(frozen=True)
class Answer:
    tokens: tuple[str, ...]
    finish_reason: str
    filtered: tuple[str, str] | None = None  # (category, severity) when the output filter cut it

    def choice_filter_results(self) -> dict[str, Any]:
        if self.filtered is None:
            return filter_results()
        return filter_results(self.filtered[0], severity=self.filtered[1])


def answer_for(chat: ChatRequest, stream_block_words: list[str]) -> Answer:
    sources = textgen.sources_in(chat.messages)
    if sources:
        tokens = textgen.grounded_answer(sources, chat.last_user_message())
    else:
        tokens = textgen.compose_answer(chat.conversation(), chat.last_user_message())
    word = blocked_word(chat.prompt_text(), stream_block_words)
    if word is not None:
        # Azure's filter runs on buffered output, so a blocked answer stops after a few sentences.
        cut = max(3, len(tokens) // 3)
        if chat.max_tokens is None or cut < chat.max_tokens:
            return Answer(tokens[:cut], "content_filter", category_of(word, prompt=False))
    if chat.max_tokens is not None and chat.max_tokens < len(tokens):
        return Answer(tokens[: chat.max_tokens], "length")
    return Answer(tokens, "stop")


@dataclass(frozen=True)
class Completion:
    """What identifies one answer in every chunk."""

    id: str
    created: int
    model: str
    fingerprint: str

    @classmethod
    def new(cls, deployment: dict[str, Any]) -> "Completion":
        model = deployment["properties"]["model"]
        reported = f"{model['name']}-{model['version']}" if model.get("version") else str(model["name"])
        return cls(
            id="chatcmpl-" + uuid.uuid4().hex[:29],
            created=int(time.time()),
            model=reported,
            fingerprint="fp_" + hashlib.sha256(reported.encode()).hexdigest()[:10],
        )


@dataclass
@dataclass
class Call:
    """One admitted chat call and what it needs once its answer is delivered."""

    store: Store
    account: dict[str, Any]
    deployment: dict[str, Any]
    limiter: DeploymentLimiter
    prompt_tokens: int
    completion_estimate: int
    headers: dict[str, str]

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        return {
            "completion_tokens": completion_tokens,
            "completion_tokens_details": {
                "accepted_prediction_tokens": 0,
                "audio_tokens": 0,
                "reasoning_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def delivered(self, completion_tokens: int) -> None:
        """Meter what the caller received and settle tokens beyond the admission estimate."""
        self.store.record_usage(
            account=self.account,
            deployment=self.deployment,
            prompt_tokens=self.prompt_tokens,
            cached_tokens=0,
            completion_tokens=completion_tokens,
        )
        if completion_tokens > self.completion_estimate:
            self.limiter.charge(completion_tokens - self.completion_estimate)


@dataclass(frozen=True)
class Pacing:
    first_token_seconds: float
    per_token_seconds: float

    def seconds_for(self, tokens: int) -> float:
        return self.first_token_seconds + self.per_token_seconds * max(0, tokens - 1)


async def complete_answer(call: Call, answer: Answer, pacing: Pacing) -> Response:
    delay = pacing.seconds_for(len(answer.tokens))
    if delay > 0:
        await asyncio.sleep(delay)
    completion = Completion.new(call.deployment)
    filtered = answer.finish_reason == "content_filter"
    body = {
        "choices": [
            {
                "content_filter_results": answer.choice_filter_results(),
                "finish_reason": answer.finish_reason,
                "index": 0,
                "logprobs": None,
                "message": {
                    "annotations": [],
                    # Azure withholds a filtered completion that was not streamed.
                    "content": None if filtered else "".join(answer.tokens),
                    "refusal": None,
                    "role": "assistant",
                },
            }
        ],
        "created": completion.created,
        "id": completion.id,
        "model": completion.model,
        "object": "chat.completion",
        "prompt_filter_results": PROMPT_FILTER_RESULTS,
        "system_fingerprint": completion.fingerprint,
        "usage": call.usage(len(answer.tokens)),
    }
    call.delivered(len(answer.tokens))
    return JSONResponse(body, headers=call.headers)
