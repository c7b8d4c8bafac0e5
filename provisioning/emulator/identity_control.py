"""The control endpoint's identity part, /_emulator/identity: what the tenant holds, register
client applications (a workload identity: client id, secret, service principal object id), APIs
and people (for the password grant), rotate the signing key, and change the directory as its
administrators would: add or remove a group's member, enable or disable a person's account.
Directory changes go to the change log Microsoft Graph's delta links read (emulator/graph.py).

To make Microsoft Graph fail, inject a fault for operation `graph` (kind 429, 500 or 503) at
/_emulator/faults."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from provisioning.emulator.identity_registry import (
    directory_change_record,
    find_directory_object,
    find_user,
    is_guid,
    registry,
    rotate_signing_key,
    signing_keys,
)
from provisioning.emulator.state import SettingsError, Store


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _refuse(reason: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "InvalidEmulatorSetting", "message": reason}}, status_code=400)


async def _object(request: Request, fields: set[str]) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise SettingsError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SettingsError(f"send a JSON object with {sorted(fields)}")
    unknown = set(body) - fields
    if unknown:
        raise SettingsError(f"unknown fields {sorted(unknown)}; known: {sorted(fields)}")
    return body


def _guid(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not is_guid(value):
        raise SettingsError(f"{name} is a GUID such as 9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d")
    return value.lower()


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{name} is a non-empty string")
    return value


async def overview(request: Request) -> JSONResponse:
    store = _store(request)
    async with store.lock:
        identity = registry(store)
        kids = [key["kid"] for key in signing_keys(store)]
        clients = {
            client_id: {
                "displayName": client["displayName"],
                "objectId": client["objectId"],
                "public": client["secret"] is None,
            }
            for client_id, client in identity["clients"].items()
        }
        users = {
            name: {"objectId": user["objectId"], "accountEnabled": user.get("accountEnabled", True)}
            for name, user in identity["users"].items()
        }
        apis = dict(identity["apis"])
    return JSONResponse(
        {
            "signingKeys": kids,
            "clients": clients,
            "apis": apis,
            "users": users,
            "keySetRequests": getattr(request.app.state, "key_set_requests", 0),
        }
    )


async def put_client(request: Request) -> JSONResponse:
    """Register (or replace) a client application; a null secret makes it a public client."""
    client_id = request.path_params["client_id"]
    try:
        if not is_guid(client_id):
            raise SettingsError("the client id is a GUID")
        body = await _object(request, {"displayName", "secret", "objectId"})
        secret = body.get("secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise SettingsError("secret is a non-empty string, or null for a public client")
        client = {
            "displayName": _text(body, "displayName", "Client application"),
            "secret": secret,
            "objectId": _guid(body, "objectId"),
        }
    except SettingsError as error:
        return _refuse(str(error))
    store = _store(request)
    async with store.lock:
        registry(store)["clients"][client_id.lower()] = client
        store.save()
    return JSONResponse({"clientId": client_id.lower(), **client})


async def delete_client(request: Request) -> JSONResponse:
    store = _store(request)
    async with store.lock:
        removed = registry(store)["clients"].pop(request.path_params["client_id"].lower(), None)
        store.save()
    return JSONResponse({"deleted": removed is not None}, status_code=200 if removed else 404)


async def put_api(request: Request) -> JSONResponse:
    """Register (or replace) an API: its app id URI, application id, token version and scopes."""
    try:
        body = await _object(request, {"appIdUri", "appId", "displayName", "accessTokenVersion", "scopes"})
        app_id_uri = _text(body, "appIdUri").rstrip("/")
        version = body.get("accessTokenVersion", 2)
        if version not in (1, 2):
            raise SettingsError("accessTokenVersion is 1 or 2")
        scopes = body.get("scopes", ["user_impersonation"])
        if not isinstance(scopes, list) or not all(isinstance(scope, str) and scope for scope in scopes):
            raise SettingsError("scopes is a list of non-empty strings")
        api = {
            "appId": _guid(body, "appId"),
            "displayName": _text(body, "displayName", app_id_uri),
            "accessTokenVersion": version,
            "scopes": scopes,
        }
    except SettingsError as error:
        return _refuse(str(error))
    store = _store(request)
    async with store.lock:
        registry(store)["apis"][app_id_uri] = api
        store.save()
    return JSONResponse({"appIdUri": app_id_uri, **api})


async def put_user(request: Request) -> JSONResponse:
    """Register (or replace) a person who may get tokens with the password grant."""
    username = request.path_params["username"].lower()
    try:
        body = await _object(request, {"password", "objectId", "name"})
        user = {
            "password": _text(body, "password"),
            "objectId": _guid(body, "objectId"),
            "name": _text(body, "name", username),
        }
    except SettingsError as error:
        return _refuse(str(error))
    store = _store(request)
    async with store.lock:
        registry(store)["users"][username] = user
        store.save()
    return JSONResponse({"username": username, "objectId": user["objectId"], "name": user["name"]})


async def rotate_key(request: Request) -> JSONResponse:
    """A new signing key: tokens issued from now on name it; the previous key stays published."""
    store = _store(request)
    async with store.lock:
        key = rotate_signing_key(store)
        published = [published["kid"] for published in signing_keys(store)]
    return JSONResponse({"kid": key["kid"], "published": published})


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "NotFound", "message": what}}, status_code=404)


def _groups_view(store: Store) -> dict[str, Any]:
    identity = registry(store)
    names = {str(user["objectId"]).lower(): username for username, user in identity["users"].items()}
    return {
        group_id: {
            "displayName": group["displayName"],
            "members": [names.get(str(member).lower(), str(member).lower()) for member in group["members"]],
        }
        for group_id, group in identity["groups"].items()
    }


async def list_groups(request: Request) -> JSONResponse:
    """The directory's groups and their direct members (people by user principal name)."""
    store = _store(request)
    async with store.lock:
        return JSONResponse({"groups": _groups_view(store)})


async def change_group_member(request: Request) -> JSONResponse:
    """PUT adds a member (a person by user principal name or object id, or a group) to a group;
    DELETE removes them. Idempotent, as Graph's own member references are."""
    store = _store(request)
    group_id = request.path_params["group_id"].lower()
    async with store.lock:
        group = registry(store)["groups"].get(group_id)
        if group is None:
            return _not_found(f"no group with id {group_id}; GET /_emulator/identity/groups lists them")
        found = find_directory_object(store, request.path_params["member"])
        if found is None or found == ("group", group_id):
            return _not_found(
                f"no person or other group named {request.path_params['member']!r} "
                "(a user principal name, a person's object id or a group id)"
            )
        members = [str(member).lower() for member in group["members"]]
        member_id = found[1]
        if request.method == "PUT" and member_id not in members:
            group["members"] = [*members, member_id]
            directory_change_record(store, {"kind": "member_added", "group": group_id, "member": member_id})
        elif request.method == "DELETE" and member_id in members:
            group["members"] = [member for member in members if member != member_id]
            directory_change_record(store, {"kind": "member_removed", "group": group_id, "member": member_id})
        store.save()
        return JSONResponse({"group": group_id, **_groups_view(store)[group_id]})


async def change_user(request: Request) -> JSONResponse:
    """Enable or disable a person's account: {"accountEnabled": false}."""
    store = _store(request)
    try:
        body = await _object(request, {"accountEnabled"})
        enabled = body.get("accountEnabled")
        if not isinstance(enabled, bool):
            raise SettingsError("accountEnabled is true or false")
    except SettingsError as error:
        return _refuse(str(error))
    username = request.path_params["username"].lower()
    async with store.lock:
        user = find_user(store, username)
        if user is None:
            return _not_found(f"no person with user principal name {username}")
        if bool(user.get("accountEnabled", True)) != enabled:
            user["accountEnabled"] = enabled
            directory_change_record(store, {"kind": "user_changed", "user": str(user["objectId"]).lower()})
            store.save()
    return JSONResponse({"username": username, "objectId": user["objectId"], "accountEnabled": enabled})


routes = [
    Route("/_emulator/identity", overview, methods=["GET"]),
    Route("/_emulator/identity/clients/{client_id}", put_client, methods=["PUT"]),
    Route("/_emulator/identity/clients/{client_id}", delete_client, methods=["DELETE"]),
    Route("/_emulator/identity/apis", put_api, methods=["PUT"]),
    Route("/_emulator/identity/users/{username}", put_user, methods=["PUT"]),
    Route("/_emulator/identity/rotate-key", rotate_key, methods=["POST"]),
    Route("/_emulator/identity/groups", list_groups, methods=["GET"]),
    Route(
        "/_emulator/identity/groups/{group_id}/members/{member}",
        change_group_member,
        methods=["PUT", "DELETE"],
    ),
    Route("/_emulator/identity/users/{username}", change_user, methods=["PATCH"]),
]
