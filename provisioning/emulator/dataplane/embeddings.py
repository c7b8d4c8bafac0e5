"""Embeddings on an account's endpoint, as Azure serves them: the same checks as a chat call (the
account, the caller, the deployment, faults, rate limits), then one vector per input (see
`vectors`: texts sharing words and phrases lie close, so retrieval means something offline), as
floats or base64 (what the openai SDK asks for by default). What was embedded is metered as a
chat call is, prompt tokens only."""

import base64
import struct
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning import tokenizer
from provisioning.emulator.batches import in_batch_process_unless
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.dataplane.access import authenticate
from provisioning.emulator.dataplane.chat import _ready_deployment
from provisioning.emulator.dataplane.chat_request import json_body, model_from_body
from provisioning.emulator.dataplane.errors import (
    DataPlaneError,
    bad_request,
    rate_limited,
    resource_not_found,
    server_error,
    service_unavailable,
)
from provisioning.emulator.dataplane.limits import (
    limiter_for,
    pricing_tier,
    rate_limited_by,
    response_headers,
)
from provisioning.emulator.dataplane.vectors import meaning_vector
from provisioning.emulator.state import Store

EMBEDDINGS_FAULT_KINDS = {"429", "500", "503"}
DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}
FALLBACK_DIMENSIONS = 1536


async def embeddings(request: Request) -> Response:
    api_version = request.query_params.get("api-version")
    if not api_version:
        raise resource_not_found()
    return await serve_embeddings(
        request, deployment_name=request.path_params["deployment"], api_version=api_version
    )


async def embeddings_v1(request: Request) -> Response:
    return await serve_embeddings(request, deployment_name=None, api_version="v1")


def _inputs(body: dict[str, Any]) -> list[str | list[int]]:
    value = body.get("input")
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return [value]
        if all(isinstance(item, str) and item for item in value) or all(
            isinstance(item, list) and all(isinstance(token, int) for token in item) for item in value
        ):
            return value
    raise bad_request(
        "'input' is a non-empty string, an array of strings or an array of token arrays.", param="input"
    )


def _encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


async def serve_embeddings(request: Request, *, deployment_name: str | None, api_version: str) -> Response:
    store: Store = request.app.state.store
    catalog: Catalog = request.app.state.catalog
    account = store.account_by_subdomain(request.path_params["subdomain"])
    if account is None:
        raise resource_not_found()
    authenticate(request, store, account, "/openai/deployments/{deployment-id}/embeddings")
    body = await json_body(request)
    if deployment_name is None:
        deployment_name = model_from_body(body)
    deployment = await _ready_deployment(store, account, deployment_name)
    model_name = str(deployment["properties"]["model"]["name"])
    if "embedding" not in model_name:
        raise DataPlaneError(
            400,
            {
                "code": "OperationNotSupported",
                "message": f"The embeddings operation does not work with the specified model, {model_name}. "
                "Please choose different model and try again.",
            },
        )
    inputs = _inputs(body)
    limiter = limiter_for(request, store, catalog, account, deployment)
    headers = response_headers(str(uuid.uuid4()), catalog, account, deployment, limiter)
    _fail_if_faulted(store, deployment_name, api_version=api_version, account=account, headers=headers)
    # A batch of passages is counted in the batch process (`batches`): tens of thousands of tokens,
    # milliseconds this process would not be streaming answers. A question takes microseconds:
    # the trips to the process and back would cost it more than they save.
    small = _is_small(inputs)
    tokens = await in_batch_process_unless(small, _tokens_of, inputs)
    refusal = limiter.admit(tokens)
    if refusal is not None:
        raise rate_limited_by(refusal, api_version, account, headers)
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS.get(model_name, FALLBACK_DIMENSIONS)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise bad_request("'dimensions' is a positive integer.", param="dimensions")
    encoding = str(body.get("encoding_format") or "float")
    store.record_usage(
        account=account, deployment=deployment, prompt_tokens=tokens, cached_tokens=0, completion_tokens=0
    )
    # A batch of passages takes a while to embed, and its answer to write: in the batch process too.
    answer = await in_batch_process_unless(small, _answer, inputs, dimensions, encoding, model_name, tokens)
    return Response(answer, media_type="application/json", headers=headers)


# Inputs this long in all (characters or tokens) are embedded on the event loop.
SMALL_INPUTS = 2000


def _is_small(inputs: list[str | list[int]]) -> bool:
    return sum(len(item) for item in inputs) <= SMALL_INPUTS


def _tokens_of(inputs: list[str | list[int]]) -> int:
    # Azure counts an embeddings input in the model's encoding (cl100k_base for text-embedding-3);
    # o200k_base, the one the emulator ships, comes within a few per cent of it for English.
    return sum(
        len(tokenizer.o200k_base().encode_ordinary(item)) if isinstance(item, str) else len(item)
        for item in inputs
    )


def _answer(
    inputs: list[str | list[int]], dimensions: int, encoding: str, model_name: str, tokens: int
) -> bytes:
    """The answer's body."""
    return bytes(
        JSONResponse(
            {
                "object": "list",
                "data": _embedded(inputs, dimensions, encoding),
                "model": model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        ).body
    )


def _embedded(inputs: list[str | list[int]], dimensions: int, encoding: str) -> list[dict[str, Any]]:
    return [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encoded(meaning_vector(item, dimensions), encoding),
        }
        for index, item in enumerate(inputs)
    ]


def _fail_if_faulted(
    store: Store, deployment_name: str, *, api_version: str, account: dict[str, Any], headers: dict[str, str]
) -> None:
    fault = store.take_fault("embeddings", EMBEDDINGS_FAULT_KINDS, deployment=deployment_name)
    if fault is None:
        return
    if fault.kind == "429":
        raise rate_limited(
            kind="token",
            retry_after=fault.retry_after_seconds,
            api_version=api_version,
            tier=pricing_tier(account),
            headers=headers,
        )
    raise (
        service_unavailable(headers)
        if fault.kind == "503"
        else server_error(headers["x-request-id"], headers)
    )
