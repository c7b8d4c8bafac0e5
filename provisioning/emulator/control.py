"""The control endpoint, /_emulator/: read the state (search services and their indexes' document
counts too), tune latencies, inject faults, set quotas, flip an account's content logging (the
abuse-monitoring opt-out), reset."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from provisioning.emulator.state import DEFAULT_SETTINGS, Fault, SettingsError, Store


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _refuse(reason: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "InvalidEmulatorSetting", "message": reason}}, status_code=400)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise SettingsError("the body is not valid JSON") from None


def validate_settings(changes: Any) -> dict[str, Any]:
    if not isinstance(changes, dict) or not changes:
        raise SettingsError(f"send a JSON object with some of {sorted(DEFAULT_SETTINGS)}")
    unknown = set(changes) - set(DEFAULT_SETTINGS)
    if unknown:
        raise SettingsError(f"unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
    for name, value in changes.items():
        if isinstance(DEFAULT_SETTINGS[name], list):
            if not isinstance(value, list) or not all(isinstance(word, str) and word for word in value):
                raise SettingsError(f"{name} is a list of non-empty strings")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SettingsError(f"{name} is a number, 0 or more")
    return changes


async def overview(request: Request) -> JSONResponse:
    store = _store(request)
    world = store.world
    return JSONResponse(
        {
            "settings": world.settings,
            "faults": [fault.as_dict() for fault in world.faults],
            "quota_limits": world.quota_limits,
            "accounts": [
                {
                    "id": account["id"],
                    "endpoint": account["properties"].get("endpoint"),
                    "provisioningState": account["properties"].get("provisioningState"),
                    "deployments": sorted(world.deployments.get(account_id, {})),
                }
                for account_id, account in world.accounts.items()
            ],
            "deleted_accounts": [account["id"] for account in world.deleted_accounts.values()],
            "search_services": [
                {
                    "id": service["id"],
                    "endpoint": service["properties"].get("endpoint"),
                    "provisioningState": service["properties"].get("provisioningState"),
                    "indexes": {
                        index.name: len(index.documents)
                        for index in store.search.service_indexes(service["name"])
                    },
                }
                for service in world.search_services.values()
            ],
            "role_assignments": len(world.role_assignments),
            "usage": list(world.usage.values()),
        }
    )


async def change_settings(request: Request) -> JSONResponse:
    store = _store(request)
    try:
        changes = validate_settings(await _json_body(request))
    except SettingsError as error:
        return _refuse(str(error))
    async with store.lock:
        store.world.settings.update(changes)
        store.save()
    return JSONResponse(store.world.settings)


async def add_fault(request: Request) -> JSONResponse:
    store = _store(request)
    try:
        fault = Fault.parse(await _json_body(request))
    except SettingsError as error:
        return _refuse(str(error))
    async with store.lock:
        store.world.faults.append(fault)
        store.save()
    return JSONResponse(fault.as_dict(), status_code=201)


async def clear_faults(request: Request) -> JSONResponse:
    store = _store(request)
    async with store.lock:
        store.world.faults.clear()
        store.save()
    return JSONResponse({"faults": []})


async def set_quota(request: Request) -> JSONResponse:
    store = _store(request)
    try:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise SettingsError("send {location, usageName, limit[, subscription]}")
        location, usage_name, limit = body.get("location"), body.get("usageName"), body.get("limit")
        subscription = body.get("subscription", "*")
        if not isinstance(location, str) or location not in request.app.state.catalog.regions:
            raise SettingsError(f"location must be one of {sorted(request.app.state.catalog.regions)}")
        if not isinstance(usage_name, str) or not usage_name.startswith("OpenAI."):
            raise SettingsError("usageName is a quota name such as OpenAI.GlobalStandard.gpt-4o-mini")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise SettingsError("limit is a number of capacity units, 0 or more")
    except SettingsError as error:
        return _refuse(str(error))
    key = quota_key(subscription, location, usage_name)
    async with store.lock:
        store.world.quota_limits[key] = float(limit)
        store.save()
    return JSONResponse({"key": key, "limit": float(limit)})


def quota_key(subscription: str, location: str, usage_name: str) -> str:
    return f"{subscription.lower()}/{location.lower()}/{usage_name}"


async def set_content_logging(request: Request) -> JSONResponse:
    """Emulates Microsoft approving (or withdrawing) the abuse-monitoring opt-out for an account."""
    store = _store(request)
    try:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("accountId"), str):
            raise SettingsError("send {accountId, contentLogging: true|false}")
        if not isinstance(body.get("contentLogging"), bool):
            raise SettingsError("contentLogging is true or false")
    except SettingsError as error:
        return _refuse(str(error))
    async with store.lock:
        account = store.world.accounts.get(body["accountId"].lower())
        if account is None:
            return JSONResponse(
                {"error": {"code": "ResourceNotFound", "message": f"No account {body['accountId']}"}},
                status_code=404,
            )
        capabilities = [
            capability
            for capability in account["properties"].get("capabilities", [])
            if capability["name"] != "ContentLogging"
        ]
        capabilities.append(
            {"name": "ContentLogging", "value": "true" if body["contentLogging"] else "false"}
        )
        account["properties"]["capabilities"] = capabilities
        store.save()
    return JSONResponse(account)


async def reset(request: Request) -> JSONResponse:
    store = _store(request)
    async with store.lock:
        store.reset()
    return JSONResponse({"reset": True})


routes = [
    Route("/_emulator/", overview, methods=["GET"]),
    Route("/_emulator/settings", change_settings, methods=["PATCH"]),
    Route("/_emulator/faults", add_fault, methods=["POST"]),
    Route("/_emulator/faults", clear_faults, methods=["DELETE"]),
    Route("/_emulator/quotas", set_quota, methods=["PUT"]),
    Route("/_emulator/content-logging", set_content_logging, methods=["PUT"]),
    Route("/_emulator/reset", reset, methods=["POST"]),
]
