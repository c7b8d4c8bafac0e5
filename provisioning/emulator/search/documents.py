"""Documents of an index: the indexing batch (`@search.action` upload, merge, mergeOrUpload,
delete; 200, or 207 with each document's status when some failed), one document by key, the
count, and the search itself."""

import re
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.batches import in_batch_process_unless, in_batch_thread
from provisioning.emulator.errors import AzureError
from provisioning.emulator.search import queries
from provisioning.emulator.search.access import Need
from provisioning.emulator.search.entry import Call, enter
from provisioning.emulator.search.errors import bad_request, document_not_found
from provisioning.emulator.search.indexes import LARGE_BODY_BYTES, json_object, parsed_object
from provisioning.emulator.search.schema import is_vector
from provisioning.emulator.search.store import Index

ACTIONS = {"upload", "merge", "mergeOrUpload", "delete"}
DOCUMENT_KEY = re.compile(r"^[A-Za-z0-9_\-=]{1,1024}$")
MAX_BATCH = 1000


async def documents_index(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.WRITE, index=name)
    index = call.index(name)
    raw = await request.body()
    # A batch of passages is megabytes of numbers and words to read, check and analyse: in the
    # batch process, so that this one keeps streaming answers. Only putting the passages into the
    # index happens here, on the batch thread.
    batch = await in_batch_process_unless(len(raw) < LARGE_BODY_BYTES, prepared_batch, raw, index.definition)
    results = await in_batch_thread(_index_batch, call, index, batch)
    failed = any(not result["status"] for result in results)
    return JSONResponse({"value": results}, status_code=207 if failed else 200)


@dataclass(frozen=True)
class PreparedBatch:
    # The actions, their vectors as float32 arrays (`Index.with_vectors_packed`): a batch's
    # numbers come back from the batch process as a few buffers, not as a million floats to unpickle.
    actions: list[dict[str, Any]]
    # Each action's searchable fields, analysed (`Index.analyzed`).
    analyzed: list[dict[str, list[str]]]


def prepared_batch(raw: bytes, definition: dict[str, Any]) -> PreparedBatch:
    """An indexing batch read, checked as Azure checks a batch before it indexes any of it, and its
    searchable text analysed: what needs the index's definition only, not its documents."""
    index = Index(definition)
    actions = parsed_object(raw).get("value")
    if not isinstance(actions, list) or not actions:
        raise bad_request(
            "The request is invalid. Details: actions : No indexing actions found in the request."
        )
    if len(actions) > MAX_BATCH:
        raise AzureError(
            413, "RequestEntityTooLarge", f"The request has more than {MAX_BATCH} indexing actions."
        )
    for position, action in enumerate(actions):
        _check_action(position, action, index)
    return PreparedBatch(
        [index.with_vectors_packed(action) for action in actions],
        [index.analyzed(action) for action in actions],
    )


def _index_batch(call: Call, index: Index, batch: PreparedBatch) -> list[dict[str, Any]]:
    with call.data.lock:
        results = []
        changed: list[dict[str, Any]] = []
        removed: list[str] = []
        for action, analyzed in zip(batch.actions, batch.analyzed, strict=True):
            result = _apply(action, analyzed, index)
            results.append(result)
            if result["status"]:
                key = result["key"]
                if action.get("@search.action", "upload") == "delete":
                    removed.append(key)
                else:
                    changed.append(index.documents[key])
        call.data.write_documents(call.name, index, changed, removed)
    return results


def _check_action(position: int, action: Any, index: Index) -> None:
    """The checks that refuse the whole batch, as Azure's do."""
    if not isinstance(action, dict):
        raise bad_request(
            f"The request is invalid. Details: actions : {position}: An indexing action is a JSON object."
        )
    kind = action.get("@search.action", "upload")
    if kind not in ACTIONS:
        raise bad_request(
            f"The request is invalid. Details: actions : {position}: '{kind}' is not a valid @search.action; use one of upload, merge, mergeOrUpload, delete."
        )
    key = action.get(index.key_field)
    if not isinstance(key, str) or not key:
        raise bad_request(
            f"The request is invalid. Details: actions : {position}: Document key cannot be missing or empty."
        )
    fields = index.fields
    for name, value in action.items():
        if name.startswith("@"):
            continue
        definition = fields.get(name)
        if definition is None:
            raise bad_request(
                f"The request is invalid. Details: The property '{name}' does not exist on type 'search.documentFields'. Make sure to only use property names that are defined by the type."
            )
        _check_value(name, value, definition)


def _check_value(name: str, value: Any, definition: dict[str, Any]) -> None:
    if value is None:
        return
    kind = definition["type"]
    if is_vector(definition):
        if not isinstance(value, list) or not all(
            isinstance(item, int | float) and not isinstance(item, bool) for item in value
        ):
            raise bad_request(
                f"The request is invalid. Details: The vector field '{name}' needs an array of numbers."
            )
        if len(value) != definition["dimensions"]:
            raise bad_request(
                f"The request is invalid. Details: The vector field '{name}' expects {definition['dimensions']} dimensions, but {len(value)} were given."
            )
        return
    expected: dict[str, tuple[type, ...]] = {
        "Edm.String": (str,),
        "Edm.Int32": (int,),
        "Edm.Int64": (int,),
        "Edm.Double": (int, float),
        "Edm.Boolean": (bool,),
        "Edm.DateTimeOffset": (str,),
    }
    if kind.startswith("Collection("):
        element = kind[len("Collection(") : -1]
        if not isinstance(value, list) or not all(
            item is None or isinstance(item, expected.get(element, (object,))) for item in value
        ):
            raise bad_request(
                f"The request is invalid. Details: The field '{name}' needs an array of {element} values."
            )
        return
    if not isinstance(value, expected.get(kind, (object,))) or (
        kind != "Edm.Boolean" and isinstance(value, bool)
    ):
        raise bad_request(
            f"The request is invalid. Details: Cannot convert the value of field '{name}' to {kind}."
        )


def _apply(action: dict[str, Any], analyzed: dict[str, list[str]], index: Index) -> dict[str, Any]:
    kind = action.get("@search.action", "upload")
    key = str(action[index.key_field])
    fields = {name: value for name, value in action.items() if not name.startswith("@")}
    if not DOCUMENT_KEY.match(key):
        return _result(
            key,
            400,
            f"Invalid document key: '{key}'. Keys can only contain letters, digits, underscore (_), dash (-), or equal sign (=).",
        )
    existing = index.documents.get(key)
    if kind == "delete":
        index.remove(key)
        return _result(key, 200)
    if kind == "merge" and existing is None:
        return _result(key, 404, "Document not found.")
    if kind == "upload" or existing is None:
        index.put({name: fields.get(name) for name in index.fields}, analyzed)
        return _result(key, 201 if existing is None else 200)
    index.put({**existing, **fields}, analyzed)
    return _result(key, 200)


def _result(key: str, status: int, message: str | None = None) -> dict[str, Any]:
    return {"key": key, "status": status < 300, "errorMessage": message, "statusCode": status}


async def document_get(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.READ, index=name)
    index = call.index(name)
    document = index.documents.get(request.path_params["key"])
    if document is None:
        raise document_not_found()
    select = queries.names(request.query_params.get("$select"), "$select")
    return JSONResponse(queries.shaped(document, select, index))


async def documents_count(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.READ, index=name)
    # Azure answers the bare number as text/plain.
    return Response(str(len(call.index(name).documents)), media_type="text/plain")


async def documents_search_post(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.READ, index=name)
    index = call.index(name)
    return await _answer(await json_object(request), index, call)


async def documents_search_get(request: Request) -> Response:
    name = request.path_params["index"]
    call = await enter(request, Need.READ, index=name)
    index = call.index(name)
    params = request.query_params
    body: dict[str, Any] = {
        "search": params.get("search"),
        "searchFields": params.get("searchFields"),
        "searchMode": params.get("searchMode"),
        "filter": params.get("$filter"),
        "select": params.get("$select"),
        "orderby": params.get("$orderby"),
        "count": params.get("$count", "").lower() == "true",
        "debug": params.get("debug"),
    }
    for parameter, name_in_body in (("$top", "top"), ("$skip", "skip")):
        if params.get(parameter) is not None:
            try:
                body[name_in_body] = int(params[parameter])
            except ValueError:
                raise bad_request(f"Invalid value for '{parameter}': a whole number.") from None
    return await _answer(body, index, call)


async def _answer(body: dict[str, Any], index: Index, call: Call) -> Response:
    request = queries.parse_request(body, index)
    # Rendered on the worker thread too: an answer with its passages' vectors is thousands of
    # numbers to write, which the event loop would otherwise do between streamed chunks.
    rendered = await run_in_threadpool(_rendered, request, body, index, call)
    return Response(rendered.body, media_type=rendered.media_type)


def _rendered(request: queries.SearchRequest, body: dict[str, Any], index: Index, call: Call) -> JSONResponse:
    return JSONResponse(_answered(request, body, index, call))


def _answered(
    request: queries.SearchRequest, body: dict[str, Any], index: Index, call: Call
) -> dict[str, Any]:
    with call.data.lock:
        ranked, total, subscores = queries.run(request, index)
        page_size = request.top if request.top is not None else queries.DEFAULT_TOP
        page = ranked[request.skip : request.skip + page_size]
        answer: dict[str, Any] = {}
        if request.count:
            answer["@odata.count"] = total
        answer["value"] = [
            {
                "@search.score": score,
                **({"@search.documentDebugInfo": subscores.of(key)} if subscores is not None else {}),
                **queries.shaped(index.documents[key], request.select, index),
            }
            for key, score in page
        ]
    if request.top is None and total > request.skip + page_size:
        # Without `top`, Azure answers 50 at a time and says how to ask for the next page.
        answer["@search.nextPageParameters"] = {**body, "skip": request.skip + page_size}
    return answer
