"""Soft-deleted accounts: read, list and purge (a long-running operation). A soft-deleted account
keeps its name, subdomain and quota until it is purged."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter
from provisioning.emulator.arm.operations import start_operation
from provisioning.emulator.arm.resources import PROVIDER, deleted_account_resource_id, public_account
from provisioning.emulator.errors import not_found


def _public_deleted(entry: dict[str, Any], deleted_id: str) -> dict[str, Any]:
    account = public_account(entry["account"])
    return {
        **account,
        "id": deleted_id,
        "type": f"{PROVIDER}/accounts",
        "properties": {
            **account["properties"],
            "deletionDate": entry["deletionDate"],
            "scheduledPurgeDate": entry["scheduledPurgeDate"],
            "provisioningState": "Succeeded",
        },
    }


def _deleted_id_from(params: dict[str, Any]) -> str:
    return (
        f"/subscriptions/{params['subscription']}/providers/{PROVIDER}/locations/{params['location']}"
        f"/resourceGroups/{params['resource_group']}/deletedAccounts/{params['name']}"
    )


async def deleted_account_get(request: Request) -> Response:
    store = await enter(request, "accounts.get")
    deleted_id = _deleted_id_from(request.path_params)
    entry = store.world.deleted_accounts.get(deleted_id.lower())
    if entry is None:
        raise not_found(f"{PROVIDER}/deletedAccounts", request.path_params["name"])
    return JSONResponse(_public_deleted(entry, deleted_account_resource_id(entry["account"])))


async def deleted_accounts_list(request: Request) -> Response:
    store = await enter(request, "accounts.list")
    subscription = request.path_params["subscription"].lower()
    value = [
        _public_deleted(entry, deleted_account_resource_id(entry["account"]))
        for key, entry in store.world.deleted_accounts.items()
        if key.startswith(f"/subscriptions/{subscription}/")
    ]
    return JSONResponse({"value": value})


async def deleted_account_purge(request: Request) -> Response:
    store = await enter(request, "deletedAccounts.purge")
    params = request.path_params
    async with store.lock:
        deleted_id = _deleted_id_from(params).lower()
        if deleted_id not in store.world.deleted_accounts:
            raise not_found(f"{PROVIDER}/deletedAccounts", params["name"])
        return start_operation(
            request,
            store,
            kind="account.purge",
            target=deleted_id,
            location=params["location"],
            subscription=params["subscription"],
            fault_operation="deletedAccounts.purge",
            status_code=202,
            body=None,
        )
