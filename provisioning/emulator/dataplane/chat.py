"""Chat completions: the handlers of both routes and the order in which Azure serves a call."""

import re
import uuid
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator import textgen
from provisioning.emulator.arm.operations import settle
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.dataplane.access import authenticate
from provisioning.emulator.dataplane.answer import Call, Pacing, answer_for, complete_answer
from provisioning.emulator.dataplane.chat_request import (
    ChatRequest,
    check_lengths,
    json_body,
    model_from_body,
    require_chat_model,
)
from provisioning.emulator.dataplane.content_filter import blocked_word, prompt_filtered
from provisioning.emulator.dataplane.errors import (
    deployment_not_found,
    rate_limited,
    resource_not_found,
    server_error,
    service_unavailable,
    timed_out,
)
from provisioning.emulator.dataplane.limits import (
    limiter_for,
    pricing_tier,
    rate_limited_by,
    response_headers,
)
from provisioning.emulator.dataplane.streaming import stream_answer
from provisioning.emulator.hang import until_caller_leaves
from provisioning.emulator.state import Fault, Store

CHAT_FAULT_KINDS = {"429", "500", "503", "drop_stream", "hang"}
# Azure admits a call on prompt tokens + max_tokens; without max_tokens it has to guess.
DEFAULT_COMPLETION_ESTIMATE = 256
REASONING_MODEL = re.compile(r"^o\d")


async def chat_completions(request: Request) -> Response:
    api_version = request.query_params.get("api-version")
    if not api_version:
        raise resource_not_found()
    return await serve_chat(
        request,
        deployment_name=request.path_params["deployment"],
        api_version=api_version,
        operation="/openai/deployments/{deployment-id}/chat/completions",
    )


async def chat_completions_v1(request: Request) -> Response:
    return await serve_chat(
        request,
        deployment_name=None,
        api_version=request.query_params.get("api-version") or "v1",
        operation="/openai/v1/chat/completions",
    )


async def unknown_operation(request: Request) -> Response:
    raise resource_not_found()


async def serve_chat(
    request: Request, *, deployment_name: str | None, api_version: str, operation: str
) -> Response:
    store: Store = request.app.state.store
    catalog: Catalog = request.app.state.catalog
    account = store.account_by_subdomain(request.path_params["subdomain"])
    if account is None:
        raise resource_not_found()
    authenticate(request, store, account, operation)
    body = await json_body(request)
    if deployment_name is None:
        deployment_name = model_from_body(body)
    deployment = await _ready_deployment(store, account, deployment_name)
    model = deployment["properties"]["model"]
    require_chat_model(catalog, account, deployment)
    chat = ChatRequest.parse(body, reasoning_model=REASONING_MODEL.match(str(model["name"])) is not None)
    _remember_prompt(request, deployment_name, chat.messages)

    limiter = limiter_for(request, store, catalog, account, deployment)
    request_id = str(uuid.uuid4())
    fault = store.take_fault("chat", CHAT_FAULT_KINDS, deployment=deployment_name)
    if fault is not None and not (fault.kind == "drop_stream" and chat.stream):
        return await _fail(
            request,
            fault,
            request_id,
            response_headers(request_id, catalog, account, deployment, limiter),
            api_version,
            account,
        )

    prompt_tokens = textgen.prompt_tokens(chat.messages, model_name=str(model["name"]))
    check_lengths(catalog, account, deployment, chat, prompt_tokens)
    completion_estimate = chat.max_tokens or DEFAULT_COMPLETION_ESTIMATE
    refusal = limiter.admit(prompt_tokens + completion_estimate)
    headers = response_headers(request_id, catalog, account, deployment, limiter)
    if refusal is not None:
        raise rate_limited_by(refusal, api_version, account, headers)

    settings = store.world.settings
    word = blocked_word(chat.prompt_text(), list(settings["prompt_block_words"]))
    if word is not None:
        raise prompt_filtered(word)
    answer = answer_for(chat, list(settings["stream_block_words"]))
    call = Call(store, account, deployment, limiter, prompt_tokens, completion_estimate, headers)
    pacing = Pacing(float(settings["first_token_ms"]) / 1000, float(settings["per_token_ms"]) / 1000)
    if chat.stream:
        drop_after = fault.after_chunks if fault is not None else None
        return stream_answer(call, answer, pacing, include_usage=chat.include_usage, drop_after=drop_after)
    return await complete_answer(call, answer, pacing)


async def _ready_deployment(store: Store, account: dict[str, Any], name: str) -> dict[str, Any]:
    deployment = store.deployment(account, name)
    if deployment is None or deployment["properties"].get("provisioningState") != "Succeeded":
        # Long-running operations settle when ARM is next asked; a caller that never polled may
        # still find its deployment ready.
        async with store.lock:
            settle(store)
        deployment = store.deployment(account, name)
    if deployment is None or deployment["properties"].get("provisioningState") != "Succeeded":
        raise deployment_not_found()
    return deployment


async def _fail(
    request: Request,
    fault: Fault,
    request_id: str,
    headers: dict[str, str],
    api_version: str,
    account: dict[str, Any],
) -> Response:
    if fault.kind == "429":
        raise rate_limited(
            kind="token",
            retry_after=fault.retry_after_seconds,
            api_version=api_version,
            tier=pricing_tier(account),
            headers=headers,
        )
    if fault.kind == "503":
        raise service_unavailable(headers)
    if fault.kind == "hang":
        return await _hang(request)
    raise server_error(request_id, headers)  # "500", and "drop_stream" on a call that does not stream


async def _hang(request: Request) -> Response:
    """Accept the call and never answer, until the caller gives up (or Azure's own timeout)."""
    if not await until_caller_leaves(request.receive):
        raise timed_out()
    return Response(status_code=499)  # nobody is listening any more


# The prompts of the latest calls, for tests to read what Azure was sent (GET /_emulator/chat-prompts).
PROMPTS_KEPT = 200


def _prompts(request: Request) -> "deque[dict[str, Any]]":
    kept: deque[dict[str, Any]] | None = getattr(request.app.state, "chat_prompts", None)
    if kept is None:
        kept = request.app.state.chat_prompts = deque(maxlen=PROMPTS_KEPT)
    return kept


def _remember_prompt(request: Request, deployment_name: str, messages: list[dict[str, Any]]) -> None:
    _prompts(request).append({"deployment": deployment_name, "messages": messages})


async def chat_prompts(request: Request) -> Response:
    if request.method == "DELETE":
        _prompts(request).clear()
    return JSONResponse({"prompts": list(_prompts(request))})
