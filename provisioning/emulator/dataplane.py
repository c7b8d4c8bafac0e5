"""The Azure OpenAI data plane: chat completions on an account's endpoint, as Azure serves them.

An account's endpoint is `{emulator}/accounts/{customSubDomainName}/`, so the routes are
- POST /accounts/{subdomain}/openai/deployments/{deployment}/chat/completions?api-version=...
  (what `AsyncAzureOpenAI(azure_endpoint=...)` calls), and
- POST /accounts/{subdomain}/openai/v1/chat/completions, the deployment named by the body's
  `model` (what `OpenAI(base_url=f"{endpoint}openai/v1/")` calls).

A call goes through the checks in Azure's order: the account, the caller (an Entra ID token
whose principal holds a data role on the account, or an api-key where local auth is allowed), the
deployment, the request body, injected faults, the deployment's rate limits and the prompt
content filter. Then the answer (see `textgen`) is sent as one JSON body or as server-sent
events, and what was delivered is metered for Cost Management.
"""

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from provisioning.emulator import arm, auth, textgen
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.errors import AzureError
from provisioning.emulator.hang import until_caller_leaves, wait_for_disconnect
from provisioning.emulator.ratelimit import DeploymentLimiter, Limits, RateLimiter, Refusal
from provisioning.emulator.state import Fault, Store

DATA_PLANE_AUDIENCES = {"https://cognitiveservices.azure.com", "https://ai.azure.com"}
CHAT_DATA_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
CHAT_FAULT_KINDS = {"429", "500", "503", "drop_stream", "hang"}
# Azure admits a call on prompt tokens + max_tokens; without max_tokens it has to guess.
DEFAULT_COMPLETION_ESTIMATE = 256
# Tokens per write when there is no per-token delay: the same events, fewer system calls.
STREAM_BATCH = 50
# Provisioned deployments have no published request limit; this keeps tokens the binding limit.
PROVISIONED_TOKENS_PER_REQUEST = 50
REASONING_MODEL = re.compile(r"^o\d")
SEVERE_WORDS = ("bomb", "kill", "weapon")
CATEGORY_HINTS = (
    ("ignore previous", "jailbreak"),
    ("ignore all previous", "jailbreak"),
    ("jailbreak", "jailbreak"),
    ("suicide", "self_harm"),
    ("self-harm", "self_harm"),
    ("hate", "hate"),
    ("slur", "hate"),
    ("sex", "sexual"),
    ("nude", "sexual"),
)

# Errors, written as the Azure OpenAI service writes them ------------------------------------


class DataPlaneError(AzureError):
    """A refused call. Its body is the data plane's, which is not always ARM's {code, message}."""

    def __init__(self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, str(error.get("code")), str(error.get("message")), headers=headers)
        self.error = error

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status, headers=self.headers)


def resource_not_found() -> DataPlaneError:
    return DataPlaneError(404, {"code": "404", "message": "Resource not found"})


def deployment_not_found() -> DataPlaneError:
    return DataPlaneError(
        404,
        {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        },
    )


def invalid_token() -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "401",
            "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
            "(https://cognitiveservices.azure.com), or have expired.",
        },
    )


def invalid_key() -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "401",
            "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API endpoint for "
            "your resource.",
        },
    )


def keys_disabled() -> DataPlaneError:
    return DataPlaneError(
        403,
        {
            "code": "AuthenticationTypeDisabled",
            "message": "Key based authentication is disabled for this resource.",
        },
    )


def permission_denied(principal_id: str, operation: str) -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "PermissionDenied",
            "message": f"The principal `{principal_id}` lacks the required data action `{CHAT_DATA_ACTION}` "
            f"to perform `POST {operation}` operation.",
        },
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> DataPlaneError:
    return DataPlaneError(
        400, {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    )


def operation_not_supported(model: str) -> DataPlaneError:
    return DataPlaneError(
        400,
        {
            "code": "OperationNotSupported",
            "message": f"The chatCompletion operation does not work with the specified model, {model}. Please "
            "choose different model and try again. You can learn more about which models can be used with "
            "each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
        },
    )


def rate_limited(
    *, kind: str, retry_after: int, api_version: str, tier: str, headers: dict[str, str]
) -> DataPlaneError:
    return DataPlaneError(
        429,
        {
            "code": "429",
            "message": f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{api_version} have exceeded {kind} rate limit of your current {tier} pricing tier. Please retry "
            f"after {retry_after} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like "
            "to further increase the default rate limit.",
        },
        headers={**headers, "retry-after": str(retry_after), "retry-after-ms": str(retry_after * 1000)},
    )


def server_error(request_id: str, headers: dict[str, str]) -> DataPlaneError:
    return DataPlaneError(
        500,
        {
            "message": "The server had an error processing your request. Sorry about that! You can retry your "
            "request, or contact us through an Azure support request at: "
            "https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error. (Please include "
            f"the request ID {request_id} in your email.)",
            "type": "server_error",
            "param": None,
            "code": None,
        },
        headers=headers,
    )


def service_unavailable(headers: dict[str, str]) -> DataPlaneError:
    return DataPlaneError(
        503,
        {
            "code": "ServiceUnavailable",
            "message": "The service is temporarily unable to process your request. Please try again later.",
        },
        headers=headers,
    )


def timed_out() -> DataPlaneError:
    return DataPlaneError(408, {"code": "Timeout", "message": "The operation was timeout."})


# Content filter results ----------------------------------------------------------------------

SAFE = {"filtered": False, "severity": "safe"}


def filter_results(
    flagged: str | None = None, *, prompt: bool = False, severity: str = "medium"
) -> dict[str, Any]:
    """Azure's content_filter_results; prompts also carry the jailbreak (prompt shield) verdict."""
    results: dict[str, Any] = {}
    for category in ("hate", "jailbreak", "self_harm", "sexual", "violence"):
        if category == "jailbreak":
            if prompt:
                results[category] = {"filtered": flagged == category, "detected": flagged == category}
        elif category == flagged:
            results[category] = {"filtered": True, "severity": severity}
        else:
            results[category] = dict(SAFE)
    return results


def blocked_word(text: str, words: list[str]) -> str | None:
    lowered = text.lower()
    return next((word for word in words if word.lower() in lowered), None)


def category_of(word: str, *, prompt: bool) -> tuple[str, str]:
    """The category and severity the filter reports for a configured block word."""
    lowered = word.lower()
    category = next((category for hint, category in CATEGORY_HINTS if hint in lowered), "violence")
    if category == "jailbreak" and not prompt:
        category = "violence"
    severity = "high" if any(severe in lowered for severe in SEVERE_WORDS) else "medium"
    return category, severity


def prompt_filtered(word: str) -> DataPlaneError:
    category, severity = category_of(word, prompt=True)
    return DataPlaneError(
        400,
        {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy. Please modify your prompt and retry. To learn more about our content filtering policies "
            "please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": filter_results(category, prompt=True, severity=severity),
            },
        },
    )


# The request -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None

    @classmethod
    def parse(cls, body: dict[str, Any], *, reasoning_model: bool) -> "ChatRequest":
        messages = body.get("messages")
        if messages is None:
            raise bad_request(
                "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise bad_request(
                "Invalid 'messages': expected a non-empty array of message objects.",
                param="messages",
                code="invalid_type",
            )
        if reasoning_model and body.get("max_tokens") is not None:
            raise bad_request(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            raise bad_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        return cls(
            messages=messages,
            stream=stream,
            include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
            max_tokens=_max_tokens(body),
        )

    def prompt_text(self) -> str:
        return "\n".join(textgen.message_text(message.get("content"))[0] for message in self.messages)

    def conversation(self) -> str:
        return "\n".join(
            f"{message.get('role')}: {textgen.message_text(message.get('content'))[0]}"
            for message in self.messages
        )

    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return textgen.message_text(message.get("content"))[0]
        return ""


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(
                f"Invalid '{name}': expected an integer of at least 1, but got {value!r} instead.",
                param=name,
                code="integer_below_min_value",
            )
        return int(value)
    return None


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


# Serving a call -------------------------------------------------------------------------------


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
    body = await _json_body(request)
    if deployment_name is None:
        deployment_name = _model_from_body(body)
    deployment = await _ready_deployment(store, account, deployment_name)
    model = deployment["properties"]["model"]
    _require_chat_model(catalog, account, deployment)
    chat = ChatRequest.parse(body, reasoning_model=REASONING_MODEL.match(str(model["name"])) is not None)

    limiter = _limiter_for(request, store, catalog, account, deployment)
    request_id = str(uuid.uuid4())
    fault = store.take_fault("chat", CHAT_FAULT_KINDS)
    if fault is not None and not (fault.kind == "drop_stream" and chat.stream):
        return await _fail(
            request,
            fault,
            request_id,
            _headers(request_id, catalog, account, deployment, limiter),
            api_version,
            account,
        )

    prompt_tokens = textgen.prompt_tokens(chat.messages, model_name=str(model["name"]))
    _check_lengths(catalog, account, deployment, chat, prompt_tokens)
    completion_estimate = chat.max_tokens or DEFAULT_COMPLETION_ESTIMATE
    refusal = limiter.admit(prompt_tokens + completion_estimate)
    headers = _headers(request_id, catalog, account, deployment, limiter)
    if refusal is not None:
        raise _rate_limited(refusal, api_version, account, headers)

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
            arm.settle(store)
        deployment = store.deployment(account, name)
    if deployment is None or deployment["properties"].get("provisioningState") != "Succeeded":
        raise deployment_not_found()
    return deployment


def authenticate(request: Request, store: Store, account: dict[str, Any], operation: str) -> None:
    """Entra ID bearer token with a data role, or an api-key (also sent as a bearer token to /v1)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    if bearer and bearer.count(".") == 2:
        claims = auth.bearer_claims(request) or {}
        _check_token(claims)
        principal_id = str(claims["oid"])
        if not auth.principal_has_data_role(store.world.role_assignments, principal_id, account["id"]):
            raise permission_denied(principal_id, operation)
        return
    key = request.headers.get("api-key") or bearer
    if not key:
        raise invalid_token()
    if account["properties"].get("disableLocalAuth"):
        raise keys_disabled()
    if key not in account.get("_keys", {}).values():
        raise invalid_key()


def _check_token(claims: dict[str, Any]) -> None:
    if not isinstance(claims.get("oid"), str) or not claims["oid"]:
        raise invalid_token()
    audience = str(claims.get("aud", "")).rstrip("/")
    if audience not in DATA_PLANE_AUDIENCES:
        raise invalid_token()
    expires = claims.get("exp")
    if isinstance(expires, int | float) and expires < time.time():
        raise invalid_token()


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request(
            "We could not parse the JSON body of your request. The API expects a JSON payload, but what was "
            "sent was not valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _model_from_body(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    return model


def _check_lengths(
    catalog: Catalog,
    account: dict[str, Any],
    deployment: dict[str, Any],
    chat: ChatRequest,
    prompt_tokens: int,
) -> None:
    """Azure refuses a completion longer than the model writes, or a prompt and completion
    together longer than its context window, before it generates anything."""
    model = deployment["properties"]["model"]
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=deployment["sku"]["name"]
    )
    capabilities = offer.model.get("capabilities", {}) if offer is not None else {}
    max_output = int(capabilities.get("maxOutputToken") or 0)
    if max_output and chat.max_tokens is not None and chat.max_tokens > max_output:
        raise bad_request(
            f"max_tokens is too large: {chat.max_tokens}. This model supports at most {max_output} "
            f"completion tokens, whereas you provided {chat.max_tokens}.",
            param="max_tokens",
            code="invalid_value",
        )
    context = int(capabilities.get("maxContextToken") or 0)
    requested = prompt_tokens + (chat.max_tokens or 0)
    if context and requested > context:
        raise bad_request(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{requested} tokens ({prompt_tokens} in the messages, {chat.max_tokens or 0} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )


def _require_chat_model(catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]) -> None:
    model = deployment["properties"]["model"]
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=deployment["sku"]["name"]
    )
    if offer is not None and offer.model.get("capabilities", {}).get("chatCompletion") != "true":
        raise operation_not_supported(str(model["name"]))


# Rate limits -----------------------------------------------------------------------------------


def deployment_limits(catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]) -> Limits:
    """Requests and tokens per minute from the deployment's capacity and the catalog's rates."""
    model = deployment["properties"]["model"]
    sku = deployment["sku"]
    capacity = float(sku.get("capacity") or 0)
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=sku["name"]
    )
    if offer is None:
        return Limits(requests_per_minute=6 * capacity, tokens_per_minute=1000 * capacity)
    if offer.is_provisioned:
        tokens = capacity * float(offer.model.get("ptuThroughput", {}).get("inputTPMperPTU", 1000))
        return Limits(requests_per_minute=tokens / PROVISIONED_TOKENS_PER_REQUEST, tokens_per_minute=tokens)
    return Limits(
        requests_per_minute=capacity * offer.requests_per_minute_per_unit(),
        tokens_per_minute=capacity * offer.tokens_per_minute_per_unit(),
    )


def _limiter_for(
    request: Request, store: Store, catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]
) -> DeploymentLimiter:
    limiters: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiters is None or limiters.world is not store.world:
        limiters = request.app.state.rate_limiter = RateLimiter(store.world)
    model = deployment["properties"]["model"]
    signature = (
        model["name"],
        model.get("version"),
        deployment["sku"]["name"],
        deployment["sku"].get("capacity"),
    )
    return limiters.for_deployment(
        (account["id"].lower(), deployment["name"]),
        signature,
        lambda: deployment_limits(catalog, account, deployment),
    )


def _tier(account: dict[str, Any]) -> str:
    return f"{account.get('kind', 'OpenAI')} {account.get('sku', {}).get('name', 'S0')}"


def _rate_limited(
    refusal: Refusal, api_version: str, account: dict[str, Any], headers: dict[str, str]
) -> DataPlaneError:
    return rate_limited(
        kind=refusal.kind,
        retry_after=refusal.retry_after_seconds,
        api_version=api_version,
        tier=_tier(account),
        headers=headers,
    )


def _headers(
    request_id: str,
    catalog: Catalog,
    account: dict[str, Any],
    deployment: dict[str, Any],
    limiter: DeploymentLimiter,
) -> dict[str, str]:
    remaining_requests, remaining_tokens = limiter.remaining()
    region = catalog.regions.get(account["location"], {}).get("displayName", account["location"])
    return {
        "apim-request-id": request_id,
        "x-request-id": request_id,
        "x-ms-region": str(region),
        "x-ms-deployment-name": deployment["name"],
        "x-ratelimit-limit-requests": str(int(limiter.limits.requests_per_minute)),
        "x-ratelimit-limit-tokens": str(int(limiter.limits.tokens_per_minute)),
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
    }


# Faults --------------------------------------------------------------------------------------


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
            tier=_tier(account),
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


# Answers -------------------------------------------------------------------------------------


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


PROMPT_FILTER_RESULTS = [{"prompt_index": 0, "content_filter_results": filter_results(prompt=True)}]


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


routes = [
    Route(
        "/accounts/{subdomain}/openai/deployments/{deployment}/chat/completions",
        chat_completions,
        methods=["POST"],
    ),
    Route("/accounts/{subdomain}/openai/v1/chat/completions", chat_completions_v1, methods=["POST"]),
    Route(
        "/accounts/{subdomain}/{operation:path}",
        unknown_operation,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
]
