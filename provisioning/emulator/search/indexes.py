"""Indexes of a search service: create (POST), create or update (PUT), read, list, delete, and
their statistics (documents and stored bytes)."""

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.batches import in_batch_process_unless
from provisioning.emulator.errors import AzureError
from provisioning.emulator.search.access import Need
from provisioning.emulator.search.entry import Call, enter
from provisioning.emulator.search.errors import bad_request, index_not_found
from provisioning.emulator.search.schema import check_changeable, new_etag, normalized_index

# Bodies larger than this are read in the batch process (batches).
LARGE_BODY_BYTES = 64 * 1024


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return await in_batch_process_unless(len(raw) < LARGE_BODY_BYTES, parsed_object, raw)


def parsed_object(raw: bytes) -> dict[str, Any]:
    """A request's body, which is a JSON object, or Azure's refusal."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("The request is invalid. Details: The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request is invalid. Details: The request body must be a JSON object.")
    return body


def _public(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "@odata.etag": definition["_etag"],
        **{k: v for k, v in definition.items() if not k.startswith("_")},
    }


async def index_create(request: Request) -> Response:
    call = await enter(request, Need.MANAGE)
    body = await json_object(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise bad_request("The request is invalid. Details: index.name : The index needs a name.")
    if call.data.index(call.name, name) is not None:
        raise AzureError(
            409, "ResourceNameAlreadyInUse", f"Cannot create index '{name}' because it already exists."
        )
    definition = {**normalized_index(body, name), "_etag": new_etag()}
    call.data.save_index(call.name, definition)
    return JSONResponse(_public(definition), status_code=201, headers={"ETag": definition["_etag"]})


async def index_create_or_update(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.MANAGE, index=name)
    body = await json_object(request)
    existing = call.data.index(call.name, name)
    _check_conditions(request, existing.definition if existing else None)
    definition = {**normalized_index(body, name), "_etag": new_etag()}
    if existing is not None:
        check_changeable(existing.definition, definition)
    call.data.save_index(call.name, definition)
    return JSONResponse(
        _public(definition), status_code=200 if existing else 201, headers={"ETag": definition["_etag"]}
    )


def _check_conditions(request: Request, existing: dict[str, Any] | None) -> None:
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_match and (existing is None or (if_match != "*" and if_match != existing["_etag"])):
        raise AzureError(
            412,
            "PreconditionFailed",
            "The precondition given in one of the request headers evaluated to false.",
        )
    if if_none_match == "*" and existing is not None:
        raise AzureError(
            412,
            "PreconditionFailed",
            "The precondition given in one of the request headers evaluated to false.",
        )


async def index_get(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.MANAGE, index=name)
    definition = call.index(name).definition
    return JSONResponse(_public(definition), headers={"ETag": definition["_etag"]})


async def indexes_list(request: Request) -> Response:
    call = await enter(request, Need.MANAGE)
    select = request.query_params.get("$select")
    definitions = [index.definition for index in call.data.service_indexes(call.name)]
    if select and select.strip() == "name":
        return JSONResponse({"value": [{"name": definition["name"]} for definition in definitions]})
    return JSONResponse({"value": [_public(definition) for definition in definitions]})


async def index_delete(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.MANAGE, index=name)
    existing = call.data.index(call.name, name)
    _check_conditions(request, existing.definition if existing else None)
    if not call.data.drop_index(call.name, name):
        raise index_not_found(name, call.name)
    return Response(status_code=204)


async def index_statistics(request: Request) -> Response:
    name = request.path_params["index"]
    call: Call = await enter(request, Need.MANAGE, index=name)
    index = call.index(name)
    with call.data.lock:
        storage, vectors = index.stored_bytes()
        count = len(index.documents)
    return JSONResponse({"documentCount": count, "storageSize": storage, "vectorIndexSize": vectors})
