"""Model deployments of an account: create or update (a long-running operation), read, list and
delete."""

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.deployments_validation import (
    check_account_ready,
    check_deployment_name,
    check_deployment_not_busy,
    check_deployment_quota,
    check_rai_policy,
    requested_offer,
)
from provisioning.emulator.arm.entry import enter, json_body
from provisioning.emulator.arm.operations import settle, start_operation
from provisioning.emulator.arm.resources import PROVIDER, catalog_of, live_account, system_data
from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.catalog import Offer
from provisioning.emulator.errors import AzureError, not_found

# The model capabilities a deployment reports.
DEPLOYMENT_CAPABILITIES = {
    "chatCompletion",
    "embeddings",
    "area",
    "assistants",
    "jsonSchemaResponse",
    "responses",
    "maxContextToken",
    "maxOutputToken",
}


async def deployment_put(request: Request) -> Response:
    store = await enter(request, "deployments.put")
    caller = require_arm_caller(request)
    params = request.path_params
    name = params["deployment"]
    body = await json_body(request)
    catalog = catalog_of(request)
    check_deployment_name(name)
    async with store.lock:
        settle(store)
        account = live_account(store, params["subscription"], params["resource_group"], params["name"])
        check_account_ready(account, params["name"])
        offer, model, capacity = requested_offer(catalog, account, body)
        deployment_id = f"{account['id']}/deployments/{name}"
        deployments = store.world.deployments.setdefault(account["id"].lower(), {})
        existing = deployments.get(name)
        check_deployment_not_busy(existing, name)
        check_deployment_quota(
            store, catalog, params["subscription"], account, offer, capacity, deployment_id
        )
        properties = body.get("properties") or {}
        rai_policy = properties.get("raiPolicyName", "Microsoft.DefaultV2")
        check_rai_policy(store, account, rai_policy)
        deployment = {
            "id": deployment_id,
            "name": name,
            "type": f"{PROVIDER}/accounts/deployments",
            "sku": {"name": offer.sku["name"], "capacity": capacity},
            "systemData": existing["systemData"] if existing else system_data(caller),
            "etag": f'"{uuid.uuid4()}"',
            "properties": _deployment_properties(offer, model, capacity, properties, rai_policy, existing),
        }
        deployments[name] = deployment
        return start_operation(
            request,
            store,
            kind="deployment.create",
            target=f"{account['id'].lower()}|{name}",
            location=account["location"],
            subscription=params["subscription"],
            fault_operation="deployments.put",
            status_code=200 if existing else 201,
            body=deployment,
        )


def _deployment_properties(
    offer: Offer,
    model: dict[str, Any],
    capacity: int,
    requested: dict[str, Any],
    rai_policy: str,
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "model": model,
        "versionUpgradeOption": requested.get("versionUpgradeOption", "OnceNewDefaultVersionAvailable"),
        "currentCapacity": capacity,
        "raiPolicyName": rai_policy,
        "capabilities": {
            key: value
            for key, value in offer.model.get("capabilities", {}).items()
            if key in DEPLOYMENT_CAPABILITIES
        },
        "rateLimits": _deployment_rate_limits(offer, capacity),
        "provisioningState": "Updating" if existing else "Creating",
    }


def _deployment_rate_limits(offer: Offer, capacity: int) -> list[dict[str, Any]]:
    if offer.is_provisioned:
        return []
    return [
        {
            "key": "request",
            "renewalPeriod": 60,
            "count": round(offer.requests_per_minute_per_unit() * capacity),
        },
        {"key": "token", "renewalPeriod": 60, "count": round(offer.tokens_per_minute_per_unit() * capacity)},
    ]


async def deployment_get(request: Request) -> Response:
    store = await enter(request, "deployments.get")
    params = request.path_params
    account = live_account(store, params["subscription"], params["resource_group"], params["name"])
    deployment = store.deployment(account, params["deployment"])
    if deployment is None:
        raise not_found(f"{PROVIDER}/accounts/deployments", f"{params['name']}/{params['deployment']}")
    return JSONResponse(deployment)


async def deployments_list(request: Request) -> Response:
    store = await enter(request, "deployments.list")
    params = request.path_params
    account = live_account(store, params["subscription"], params["resource_group"], params["name"])
    return JSONResponse({"value": list(store.world.deployments.get(account["id"].lower(), {}).values())})


async def deployment_delete(request: Request) -> Response:
    store = await enter(request, "deployments.delete")
    params = request.path_params
    async with store.lock:
        account = live_account(store, params["subscription"], params["resource_group"], params["name"])
        deployment = store.deployment(account, params["deployment"])
        if deployment is None:
            return Response(status_code=204)
        if deployment["properties"]["provisioningState"] == "Deleting":
            raise AzureError(
                409, "Conflict", f"The deployment '{params['deployment']}' is already being deleted."
            )
        deployment["properties"]["provisioningState"] = "Deleting"
        return start_operation(
            request,
            store,
            kind="deployment.delete",
            target=f"{account['id'].lower()}|{deployment['name']}",
            location=account["location"],
            subscription=params["subscription"],
            fault_operation="deployments.delete",
            status_code=202,
            body=None,
        )
