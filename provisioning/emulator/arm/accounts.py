"""Cognitive Services accounts: create or update (a long-running operation), read, list, delete
(a soft delete once the operation settles) and list keys."""

import secrets
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.accounts_validation import (
    AccountPut,
    check_account_changeable,
    check_account_quota,
    check_restore_flag,
    check_subdomain_free,
    parse_account_put,
)
from provisioning.emulator.arm.entry import enter, json_body
from provisioning.emulator.arm.operations import settle, start_operation
from provisioning.emulator.arm.resources import (
    PROVIDER,
    account_resource_id,
    base_url,
    catalog_of,
    deleted_account_resource_id,
    iso,
    live_account,
    public_account,
    system_data,
)
from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import World, now


async def account_put(request: Request) -> Response:
    store = await enter(request, "accounts.put")
    caller = require_arm_caller(request)
    body = await json_body(request)
    catalog = catalog_of(request)
    wanted = parse_account_put(request.path_params, body, catalog)
    async with store.lock:
        settle(store)
        existing = _existing_or_restored(store.world, wanted)
        check_account_changeable(existing, wanted)
        if wanted.subdomain:
            check_subdomain_free(store, str(wanted.subdomain), wanted.resource_id)
        if existing is None:
            check_account_quota(store, catalog, wanted)
        account = _account_resource(request, caller, wanted, existing)
        if existing is not None:
            # An idempotent re-PUT of a live account: Azure answers 200 and is done.
            store.save()
            return JSONResponse(public_account(account), status_code=200)
        store.world.accounts[wanted.resource_id.lower()] = account
        return start_operation(
            request,
            store,
            kind="account.create",
            target=wanted.resource_id.lower(),
            location=wanted.location,
            subscription=wanted.subscription,
            fault_operation="accounts.put",
            status_code=201,
            body=public_account(account),
        )


def _existing_or_restored(world: World, wanted: AccountPut) -> dict[str, Any] | None:
    """The live account the PUT is about; a soft-deleted one of that name comes back first when
    the PUT asks to restore it."""
    account_id = wanted.resource_id
    existing = world.accounts.get(account_id.lower())
    deleted_key = deleted_account_resource_id(
        {"id": account_id, "location": wanted.location, "name": wanted.name}
    ).lower()
    if existing is None and deleted_key in world.deleted_accounts:
        check_restore_flag(wanted)
        restored = world.deleted_accounts.pop(deleted_key)
        world.accounts[account_id.lower()] = restored["account"]
        world.deployments[account_id.lower()] = restored["deployments"]
        existing = restored["account"]
    return existing


def _account_resource(
    request: Request, caller: dict[str, Any], wanted: AccountPut, existing: dict[str, Any] | None
) -> dict[str, Any]:
    """The account as the PUT leaves it: the existing one updated, or a new one with its keys."""
    body = wanted.body
    account = existing or {
        "id": wanted.resource_id,
        "name": wanted.name,
        "type": f"{PROVIDER}/accounts",
        "systemData": system_data(caller),
        "_keys": {"key1": secrets.token_hex(16), "key2": secrets.token_hex(16)},
    }
    account.update(
        {
            "location": wanted.location,
            "kind": wanted.kind,
            "sku": {"name": "S0"},
            "tags": body.get("tags") or {},
            "etag": f'"{uuid.uuid4()}"',
        }
    )
    if "identity" in body:
        account["identity"] = {
            **body["identity"],
            "principalId": str(uuid.uuid4()),
            "tenantId": caller.get("tid", ""),
        }
    account["properties"] = _account_properties(request, wanted, existing)
    return account


def _account_properties(
    request: Request, wanted: AccountPut, existing: dict[str, Any] | None
) -> dict[str, Any]:
    properties = wanted.properties
    network_acls = properties.get("networkAcls") or {
        "defaultAction": "Allow",
        "virtualNetworkRules": [],
        "ipRules": [],
    }
    endpoint = f"{base_url(request)}/accounts/{wanted.subdomain or wanted.name}/"
    previous = existing["properties"] if existing else {}
    return {
        **{key: value for key, value in properties.items() if key != "restore"},
        "endpoint": endpoint,
        "endpoints": {
            "OpenAI Language Model Instance API": endpoint,
            "OpenAI Realtime API": endpoint.replace("http", "ws", 1),
        },
        "customSubDomainName": wanted.subdomain,
        "publicNetworkAccess": properties.get("publicNetworkAccess", "Enabled"),
        "networkAcls": network_acls,
        "disableLocalAuth": bool(properties.get("disableLocalAuth", False)),
        "capabilities": previous.get("capabilities") or _default_capabilities(),
        "internalId": previous.get("internalId") or uuid.uuid4().hex,
        "dateCreated": previous.get("dateCreated") or iso(now()),
        "isMigrated": False,
        "provisioningState": "Succeeded" if existing else "Accepted",
    }


def _default_capabilities() -> list[dict[str, str]]:
    # What a new Azure OpenAI account reports. ContentLogging appears (false) only once
    # Microsoft approves the abuse-monitoring opt-out; the control endpoint emulates that.
    return [
        {"name": "VirtualNetworks"},
        {"name": "CustomerManagedKey"},
        {"name": "MaxFineTuneCount", "value": "500"},
        {"name": "MaxRunningFineTuneCount", "value": "3"},
        {"name": "MaxUserFileCount", "value": "100"},
        {"name": "MaxTrainingFileSize", "value": "512000000"},
        {"name": "MaxUserFileImportDurationInHours", "value": "1"},
        {"name": "MaxFineTuneJobDurationInHours", "value": "720"},
        {
            "name": "TrustedServices",
            "value": "Microsoft.CognitiveServices,Microsoft.MachineLearningServices,Microsoft.Search",
        },
    ]


async def account_get(request: Request) -> Response:
    store = await enter(request, "accounts.get")
    params = request.path_params
    account = live_account(store, params["subscription"], params["resource_group"], params["name"])
    return JSONResponse(public_account(account))


async def account_delete(request: Request) -> Response:
    store = await enter(request, "accounts.delete")
    params = request.path_params
    async with store.lock:
        account_id = account_resource_id(
            params["subscription"], params["resource_group"], params["name"]
        ).lower()
        account = store.world.accounts.get(account_id)
        if account is None:
            return Response(status_code=204)
        if account["properties"]["provisioningState"] == "Deleting":
            raise AzureError(409, "Conflict", f"The account '{params['name']}' is already being deleted.")
        account["properties"]["provisioningState"] = "Deleting"
        return start_operation(
            request,
            store,
            kind="account.delete",
            target=account_id,
            location=account["location"],
            subscription=params["subscription"],
            fault_operation="accounts.delete",
            status_code=202,
            body=None,
        )


async def accounts_list(request: Request) -> Response:
    store = await enter(request, "accounts.list")
    subscription = request.path_params["subscription"].lower()
    resource_group = request.path_params.get("resource_group", "").lower()
    prefix = (
        f"/subscriptions/{subscription}/resourcegroups/{resource_group}/"
        if resource_group
        else f"/subscriptions/{subscription}/"
    )
    accounts = [
        public_account(account) for key, account in store.world.accounts.items() if key.startswith(prefix)
    ]
    return JSONResponse({"value": accounts})


async def account_list_keys(request: Request) -> Response:
    store = await enter(request, "accounts.listKeys")
    params = request.path_params
    account = live_account(store, params["subscription"], params["resource_group"], params["name"])
    if account["properties"].get("disableLocalAuth"):
        raise AzureError(400, "BadRequest", "Failed to list key. disableLocalAuth is set to be true")
    return JSONResponse(account["_keys"])
