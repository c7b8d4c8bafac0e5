"""The control endpoint's identity part, /_emulator/identity: what the tenant holds, register
client applications (a workload identity: client id, secret, service principal object id), APIs
and people (for the password grant), and rotate the signing key."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from provisioning.emulator.identity_registry import is_guid, registry, rotate_signing_key, signing_keys
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
        users = {name: {"objectId": user["objectId"]} for name, user in identity["users"].items()}
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


routes = [
    Route("/_emulator/identity", overview, methods=["GET"]),
    Route("/_emulator/identity/clients/{client_id}", put_client, methods=["PUT"]),
    Route("/_emulator/identity/clients/{client_id}", delete_client, methods=["DELETE"]),
    Route("/_emulator/identity/apis", put_api, methods=["PUT"]),
    Route("/_emulator/identity/users/{username}", put_user, methods=["PUT"]),
    Route("/_emulator/identity/rotate-key", rotate_key, methods=["POST"]),
]
