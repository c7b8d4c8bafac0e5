"""A chat call on a grounded assistant, between its admission and Azure: the application's last
question is searched in the data sets the assistant is grounded on (read on the server at this
call, `GatewayCall.data_sets`, never from the request), the passages go into the prompt after the
application's own system messages (grounding.quoting), and the answer carries them as Azure's
"on your data" answers do: `message.context = {"citations": [...], "intent": question}` (a stream:
the first chunk with a choice, `delta.context`). Citation n of the answer's text is
`citations[n - 1]`.

When nothing relevant is found, Azure is not called (as in the chat): the gateway answers itself
that the documents do not cover the question, in the shape of a chat completion, and the
reservation is given back.
"""

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.metering import GatewayCall
from grounding.quoting import document_url, not_covered_answer, passages_within, with_sources
from grounding.retrieval import Passage, retrieve
from money.models import UsageRecord

Send = Callable[[Mapping[str, Any]], Awaitable[None]]


def question_of(body: Mapping[str, Any]) -> str:
    """The text of the last user message: what is searched."""
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip()
        if isinstance(content, list):
            texts = [
                part["text"]
                for part in content
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ]
            return "\n".join(texts).strip()
        return ""
    return ""


def _origin(scope: Mapping[str, Any]) -> str:
    host = ""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host and scope.get("server"):
        server_host, port = scope["server"]
        host = f"{server_host}:{port}" if port else str(server_host)
    return f"{scope.get('scheme', 'http')}://{host}" if host else ""


def citations_context(passages: Sequence[Passage], *, question: str, origin: str) -> dict[str, Any]:
    """Azure's `context` of an "on your data" answer: the passages, in citation order."""
    citations = []
    for passage in sorted(passages, key=lambda each: each.number):
        path = document_url(passage.document_id, passage.page)
        citations.append(
            {
                "content": passage.text,
                "title": passage.document_name,
                "url": f"{origin}{path}" if path else None,
                "filepath": passage.document_name,
                "chunk_id": passage.id,
            }
        )
    return {"citations": citations, "intent": question}


@dataclass(frozen=True)
class Grounded:
    """The call's body with the sources in its prompt, and the context its answer carries."""

    body: dict[str, Any]
    context: dict[str, Any]


async def grounded_body(call: GatewayCall, body: dict[str, Any], scope: Mapping[str, Any]) -> Grounded | str:
    """The body to send to Azure with the passages found, or (a string) the answer to give when
    the documents do not cover the question. Retrieval's failures are the caller's to answer."""
    question = question_of(body)
    deployment = call.routed.deployment
    passages: list[Passage] = []
    if question:
        passages = await retrieve(
            deployment=deployment,
            data_sets=call.data_sets,
            question=question,
            paying_department_id=call.caller.department.pk,
            user_id=call.user.pk if call.user is not None else None,
            source=UsageRecord.Source.API,
        )
    kept = passages_within(passages, room=call.sources_room, model_name=deployment.model_name)
    if not kept:
        return not_covered_answer(assistant=deployment.display_name, data_sets=call.data_sets)
    messages = body.get("messages")
    assert isinstance(messages, list)  # sized before admission (gateway.prompts.chat_size)
    return Grounded(
        body={**body, "messages": with_sources(messages, kept)},
        context=citations_context(kept, question=question, origin=_origin(scope)),
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def send_not_covered(
    send: Send, *, call: GatewayCall, answer: str, question: str, stream: bool, include_usage: bool
) -> None:
    """The gateway's own answer when the documents do not cover the question (Azure not called)."""
    identity = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "created": int(time.time()),
        "model": call.routed.deployment.model_name,
    }
    context = {"citations": [], "intent": question}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not stream:
        body = _dumps(
            {
                **identity,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {
                            "role": "assistant",
                            "content": answer,
                            "refusal": None,
                            "context": context,
                        },
                    }
                ],
                "usage": usage,
            }
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    chunk = {**identity, "object": "chat.completion.chunk"}
    events = [
        {
            **chunk,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "context": context}}],
        },
        {**chunk, "choices": [{"index": 0, "delta": {"content": answer}}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if include_usage:
        events.append({**chunk, "choices": [], "usage": usage})
    payload = b"".join(b"data: " + _dumps(event) + b"\n\n" for event in events) + b"data: [DONE]\n\n"
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
