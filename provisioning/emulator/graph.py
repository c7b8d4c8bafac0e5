"""Microsoft Graph v1.0, the part of it a directory sync and a sign-in with a groups overage read,
in Graph's JSON shapes:

- GET /v1.0/groups/delta?$filter=id in ('…','…')&$select=members   the mapped groups' direct
  members (`members@delta`), paged by `@odata.nextLink`, ending in an `@odata.deltaLink` that later
  answers only what changed since (a removed member carries `@removed`); `$filter` may also be
  written `id eq '…' or id eq '…'`;
- GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id,accountEnabled&$top=…
  the people in a group directly or through nested groups, paged;
- GET /v1.0/users/{id or userPrincipalName}?$select=id,accountEnabled   one person;
- GET /v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id   the signed-in person's groups
  (a delegated token: what the portal reads when an ID token carries a groups overage).

Every request needs a bearer token the tenant signed for Microsoft Graph (audience
https://graph.microsoft.com, v1.0). An app-only token must carry the application permission in
`roles` (GroupMember.Read.All for groups, User.Read.All for users); /me needs a delegated token.
Faults for operation `graph` (429, 500, 503) make Graph fail, as the control endpoint injects them.
"""

import base64
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisioning.emulator.identity_registry import (
    GRAPH_APP_ID,
    GRAPH_APP_ID_URI,
    directory_changes_since,
    directory_sequence,
    find_user,
    find_user_by_object_id,
    is_guid,
    registry,
    signing_keys,
    transitive_group_ids,
)
from provisioning.emulator.signing import public_jwk
from provisioning.emulator.state import Store

GRAPH_ORIGIN = "https://graph.microsoft.com"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
# Characters Graph leaves as they are in the query strings of the links it writes.
GRAPH_SAFE = "$'(),"
# Properties Graph returns for a user when $select names none; accountEnabled is not among them.
USER_DEFAULT_PROPERTIES = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
USER_PROPERTIES = {*USER_DEFAULT_PROPERTIES, "accountEnabled"}
GROUP_PROPERTIES = {"id", "displayName", "description", "mailEnabled", "securityEnabled", "members"}
READS_GROUPS = {"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}
READS_USERS = {"User.Read.All", "Directory.Read.All"}
READS_OWN_GROUPS = {"User.Read", "GroupMember.Read.All", "Directory.Read.All", "User.Read.All"}


class GraphError(Exception):
    """An error as Graph writes it: a code, a message and the request's ids."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        return JSONResponse(
            {
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "innerError": {
                        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                        "request-id": request_id,
                        "client-request-id": request.headers.get("client-request-id", request_id),
                    },
                }
            },
            status_code=self.status,
            headers={"request-id": request_id, **self.headers},
        )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _caller(request: Request, store: Store) -> dict[str, Any]:
    """The claims of a token the tenant signed for Graph, and the fault injected for Graph if any.
    Call under `store.lock`."""
    fault = store.take_fault("graph", {"429", "500", "503"})
    if fault is not None:
        if fault.kind == "429":
            raise GraphError(
                429,
                "TooManyRequests",
                "Too many requests.",
                {"Retry-After": str(fault.retry_after_seconds)},
            )
        if fault.kind == "503":
            raise GraphError(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Try again later.",
                {"Retry-After": str(fault.retry_after_seconds)},
            )
        raise GraphError(500, "generalException", "An unexpected error occurred. Try again later.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.") from None
    key = next((key for key in signing_keys(store) if key["kid"] == kid), None)
    if key is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(public_jwk(key, issuer="")).key,
            algorithms=["RS256"],
            audience=[GRAPH_APP_ID_URI, GRAPH_APP_ID],
            leeway=300,
        )
    except jwt.ExpiredSignatureError:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
        ) from None
    except jwt.InvalidAudienceError:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        ) from None
    except jwt.PyJWTError:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None
    return claims


def _require_permission(claims: dict[str, Any], application: set[str], delegated: set[str]) -> None:
    granted = (
        set(claims.get("roles", []))
        if claims.get("idtyp") == "app"
        else set(str(claims.get("scp", "")).split())
    )
    if not granted & (application if claims.get("idtyp") == "app" else delegated):
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )


def _select(request: Request, known: set[str], type_name: str, default: list[str]) -> list[str]:
    raw = request.query_params.get("$select", "")
    if not raw:
        return default
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
    return names


def _page_size(request: Request) -> int:
    raw = request.query_params.get("$top")
    if raw is None:
        preference = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
        return min(int(preference.group(1)), MAX_PAGE_SIZE) if preference else DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_PAGE_SIZE}.",
        )
    return int(raw)


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str, parameter: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        state = None
    if not isinstance(state, dict):
        raise GraphError(400, "Request_BadRequest", f"The {parameter} in the request is not valid.")
    return state


def _user_view(username: str, user: dict[str, Any], select: list[str]) -> dict[str, Any]:
    everything = {
        "businessPhones": [],
        "displayName": user.get("name", username),
        "givenName": user.get("givenName"),
        "jobTitle": None,
        "mail": username,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": user.get("surname"),
        "userPrincipalName": username,
        "id": str(user["objectId"]).lower(),
        "accountEnabled": bool(user.get("accountEnabled", True)),
    }
    return {name: everything[name] for name in select}


def _group_view(group_id: str, group: dict[str, Any], select: list[str]) -> dict[str, Any]:
    everything = {
        "id": group_id,
        "displayName": group["displayName"],
        "description": None,
        "mailEnabled": False,
        "securityEnabled": True,
    }
    return {name: everything[name] for name in select if name in everything}


def _member_reference(store: Store, object_id: str) -> dict[str, Any]:
    kind = "group" if object_id.lower() in registry(store)["groups"] else "user"
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id.lower()}


def _paged(
    request: Request,
    items: list[dict[str, Any]],
    offset: int,
    size: int,
    context: str,
    next_state: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.context": context, "value": items[offset : offset + size]}
    if offset + size < len(items):
        query = dict(request.query_params)
        query.pop("$skiptoken", None)
        query["$skiptoken"] = _encode({**next_state, "offset": offset + size})
        body["@odata.nextLink"] = f"{_origin(request)}{request.url.path}?{urlencode(query, safe=GRAPH_SAFE)}"
    return body


# Groups delta ------------------------------------------------------------------------------------

_ID_LIST = re.compile(r"\A\s*id\s+in\s+\(\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\)\s*\Z", re.IGNORECASE)
_ID_EQ = re.compile(r"\A\s*id\s+eq\s+'([^']*)'\s*\Z", re.IGNORECASE)


def _filtered_group_ids(raw: str) -> list[str] | None:
    """The group ids a delta `$filter` names (None: no filter, every group)."""
    if not raw:
        return None
    listed = _ID_LIST.match(raw)
    if listed:
        ids = [value.strip().strip("'") for value in listed.group(1).split(",")]
    else:
        ids = []
        for clause in re.split(r"\s+or\s+", raw, flags=re.IGNORECASE):
            equal = _ID_EQ.match(clause)
            if equal is None:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported query. Delta on groups supports $filter=id eq '{id}' (joined by 'or') "
                    "or id in ('{id}', …) only.",
                )
            ids.append(equal.group(1))
    if not all(is_guid(group_id) for group_id in ids):
        raise GraphError(400, "Request_BadRequest", "Invalid object identifier in $filter.")
    if len(ids) > 50:
        raise GraphError(400, "Request_UnsupportedQuery", "A delta $filter names at most 50 groups.")
    return sorted({group_id.lower() for group_id in ids})


def _delta_items(store: Store, state: dict[str, Any], select: list[str]) -> list[dict[str, Any]]:
    """The groups (with `members@delta` if asked) a delta round reports: every filtered group in
    full on the first round, then only those with changes since the round's sequence number."""
    groups: dict[str, dict[str, Any]] = registry(store)["groups"]
    ids = state["ids"] if state["ids"] is not None else sorted(groups)
    with_members = "members" in select
    properties = [name for name in select if name != "members"]
    items: list[dict[str, Any]] = []
    if state["since"] is None:
        for group_id in ids:
            group = groups.get(group_id)
            if group is None:
                continue
            item = _group_view(group_id, group, properties or ["id"])
            if with_members:
                item["members@delta"] = [_member_reference(store, member) for member in group["members"]]
            items.append(item)
        return items
    changed: dict[str, list[dict[str, Any]]] = {}
    for change in directory_changes_since(store, state["since"]):
        if change["sequence"] > state["upto"] or change.get("group") not in ids:
            continue
        reference = _member_reference(store, change["member"])
        if change["kind"] == "member_removed":
            reference["@removed"] = {"reason": "deleted"}
        changed.setdefault(change["group"], []).append(reference)
    for group_id, members in changed.items():
        group = groups.get(group_id)
        if group is None:
            items.append({"id": group_id, "@removed": {"reason": "changed"}})
            continue
        item = _group_view(group_id, group, ["id"])
        if with_members:
            item["members@delta"] = members
        items.append(item)
    return items


async def groups_delta(request: Request) -> Response:
    store = _store(request)
    try:
        async with store.lock:
            claims = _caller(request, store)
            _require_permission(claims, READS_GROUPS, READS_GROUPS)
            select = _select(request, GROUP_PROPERTIES, "group", ["id", "displayName", "members"])
            size = _page_size(request)
            if "$skiptoken" in request.query_params:
                state = _decode(request.query_params["$skiptoken"], "$skiptoken")
            elif "$deltatoken" in request.query_params:
                link = _decode(request.query_params["$deltatoken"], "$deltatoken")
                if not isinstance(link.get("upto"), int) or link["upto"] > directory_sequence(store):
                    # The directory was reset since the link was issued: its sync state is gone.
                    raise GraphError(
                        410,
                        "resyncRequired",
                        "The delta token is no longer valid: start again without one.",
                    )
                state = {"ids": link.get("ids"), "since": link.get("upto"), "upto": directory_sequence(store)}
            else:
                state = {
                    "ids": _filtered_group_ids(request.query_params.get("$filter", "")),
                    "since": None,
                    "upto": directory_sequence(store),
                }
            if not isinstance(state.get("upto"), int) or not isinstance(state.get("offset", 0), int):
                raise GraphError(400, "Request_BadRequest", "The token in the request is not valid.")
            items = _delta_items(store, state, select)
    except GraphError as error:
        return error.response(request)
    offset = int(state.get("offset", 0))
    body = _paged(request, items, offset, size, f"{GRAPH_ORIGIN}/v1.0/$metadata#groups(members)", {**state})
    if "@odata.nextLink" not in body:
        token = _encode({"ids": state["ids"], "upto": state["upto"]})
        body["@odata.deltaLink"] = f"{_origin(request)}/v1.0/groups/delta?$deltatoken={token}"
    return JSONResponse(body)


# Members and people ------------------------------------------------------------------------------


def _transitive_user_ids(store: Store, group_id: str) -> list[str]:
    """The people in a group, directly or through the groups in it (each once, in member order)."""
    groups: dict[str, dict[str, Any]] = registry(store)["groups"]
    people: list[str] = []
    seen_groups: set[str] = set()
    pending = [group_id]
    while pending:
        current = pending.pop(0)
        if current in seen_groups:
            continue
        seen_groups.add(current)
        for member in groups[current]["members"]:
            member = str(member).lower()
            if member in groups:
                pending.append(member)
            elif member not in people:
                people.append(member)
    return people


async def transitive_members(request: Request) -> Response:
    store = _store(request)
    group_id = request.path_params["group_id"].lower()
    try:
        async with store.lock:
            claims = _caller(request, store)
            _require_permission(claims, READS_GROUPS, READS_GROUPS)
            select = _select(request, USER_PROPERTIES, "user", USER_DEFAULT_PROPERTIES)
            size = _page_size(request)
            state = (
                _decode(request.query_params["$skiptoken"], "$skiptoken")
                if "$skiptoken" in request.query_params
                else {"offset": 0}
            )
            if not isinstance(state.get("offset"), int):
                raise GraphError(400, "Request_BadRequest", "The $skiptoken in the request is not valid.")
            if group_id not in registry(store)["groups"]:
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{request.path_params['group_id']}' does not exist or one of its queried "
                    "reference-property objects are not present.",
                )
            people = []
            for object_id in _transitive_user_ids(store, group_id):
                found = find_user_by_object_id(store, object_id)
                if found is not None:
                    people.append(_user_view(found[0], found[1], select))
    except GraphError as error:
        return error.response(request)
    context = f"{GRAPH_ORIGIN}/v1.0/$metadata#users({','.join(select)})"
    return JSONResponse(_paged(request, people, state["offset"], size, context, {}))


async def user(request: Request) -> Response:
    store = _store(request)
    name = request.path_params["user"]
    try:
        async with store.lock:
            claims = _caller(request, store)
            _require_permission(claims, READS_USERS, READS_USERS | {"User.ReadBasic.All"})
            select = _select(request, USER_PROPERTIES, "user", USER_DEFAULT_PROPERTIES)
            if "@" in name:
                entry = find_user(store, name)
                found = (name.lower(), entry) if entry is not None else None
            else:
                found = find_user_by_object_id(store, name)
            if found is None:
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{name}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            body = _user_view(found[0], found[1], select)
    except GraphError as error:
        return error.response(request)
    context = f"{GRAPH_ORIGIN}/v1.0/$metadata#users({','.join(select)})/$entity"
    return JSONResponse({"@odata.context": context, **body})


async def my_groups(request: Request) -> Response:
    store = _store(request)
    try:
        async with store.lock:
            claims = _caller(request, store)
            if claims.get("idtyp") == "app" or "scp" not in claims:
                raise GraphError(
                    400, "BadRequest", "/me request is only valid with delegated authentication flow."
                )
            _require_permission(claims, set(), READS_OWN_GROUPS)
            select = _select(request, GROUP_PROPERTIES - {"members"}, "group", ["id", "displayName"])
            size = _page_size(request)
            state = (
                _decode(request.query_params["$skiptoken"], "$skiptoken")
                if "$skiptoken" in request.query_params
                else {"offset": 0}
            )
            if not isinstance(state.get("offset"), int):
                raise GraphError(400, "Request_BadRequest", "The $skiptoken in the request is not valid.")
            groups: dict[str, dict[str, Any]] = registry(store)["groups"]
            object_id = str(claims.get("oid", "")).lower()
            items = [
                _group_view(group_id, groups[group_id], select)
                for group_id in sorted(transitive_group_ids(store, object_id))
            ]
    except GraphError as error:
        return error.response(request)
    context = f"{GRAPH_ORIGIN}/v1.0/$metadata#groups({','.join(select)})"
    return JSONResponse(_paged(request, items, state["offset"], size, context, {}))


routes = [
    Route("/v1.0/groups/delta", groups_delta, methods=["GET"]),
    Route(
        "/v1.0/groups/{group_id}/transitiveMembers/microsoft.graph.user",
        transitive_members,
        methods=["GET"],
    ),
    Route("/v1.0/users/{user}", user, methods=["GET"]),
    Route("/v1.0/me/transitiveMemberOf/microsoft.graph.group", my_groups, methods=["GET"]),
]
