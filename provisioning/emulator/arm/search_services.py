"""Azure AI Search services (Microsoft.Search/searchServices, api-version 2025-05-01, what
azure-mgmt-search 9.2 calls): create or update (a long-running operation the SDK follows by
polling the service itself until `provisioningState` settles, as Azure's Search provider has no
operation-status resource), read, list, delete (synchronous, taking the indexes with it), and the
admin and query keys the data plane takes. The service's endpoint is the emulator's
`/search/{name}/` (provisioning/emulator/search/)."""

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter, json_body
from provisioning.emulator.arm.operations import record_operation, retry_after
from provisioning.emulator.arm.resources import base_url, catalog_of, iso, system_data
from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.errors import AzureError, not_found
from provisioning.emulator.state import Store, now

SEARCH_PROVIDER = "Microsoft.Search"
SERVICE_NAME = re.compile(r"^(?=.{2,60}$)[a-z0-9][a-z0-9]+(-[a-z0-9]+)*$")
SKUS = {"free", "basic", "standard", "standard2", "standard3", "storage_optimized_l1", "storage_optimized_l2"}
PARTITION_COUNTS = {1, 2, 3, 4, 6, 12}


def service_resource_id(subscription: str, resource_group: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{SEARCH_PROVIDER}/searchServices/{name}"


def public_service(service: dict[str, Any]) -> dict[str, Any]:
    """The service without what only the emulator keeps (its keys)."""
    return {key: value for key, value in service.items() if not key.startswith("_")}


def live_service(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    key = service_resource_id(params["subscription"], params["resource_group"], params["name"]).lower()
    service = store.world.search_services.get(key)
    if service is None:
        raise not_found(f"{SEARCH_PROVIDER}/searchServices", params["name"])
    return service


async def search_service_put(request: Request) -> Response:
    store = await enter(request, "searchServices.put")
    caller = require_arm_caller(request)
    params = request.path_params
    body = await json_body(request)
    name = params["name"]
    _check_name(name)
    location = _check_location(request, body)
    resource_id = service_resource_id(params["subscription"], params["resource_group"], name)
    async with store.lock:
        existing = store.world.search_services.get(resource_id.lower())
        properties = _properties(body, existing)
        _check_name_free(store, name, resource_id)
        if existing is not None:
            if existing["properties"]["provisioningState"] == "provisioning":
                raise AzureError(
                    409,
                    "Conflict",
                    f"The search service '{name}' is being provisioned; another operation cannot start until it ends.",
                )
            existing.update({"tags": body.get("tags") or existing.get("tags") or {}})
            if body.get("sku"):
                existing["sku"] = {"name": _check_sku(body.get("sku"))}
            existing["properties"].update(properties)
            existing["properties"]["eTag"] = f"W/\"datetime'{iso(now())}'\""
            existing["systemData"]["lastModifiedAt"] = iso(now())
            store.save()
            return JSONResponse(public_service(existing), status_code=200)
        service = {
            "id": resource_id,
            "name": name,
            "type": f"{SEARCH_PROVIDER}/searchServices",
            "location": location,
            "tags": body.get("tags") or {},
            "sku": {"name": _check_sku(body.get("sku"))},
            "systemData": system_data(caller),
            "properties": {
                **properties,
                "endpoint": f"{base_url(request)}/search/{name}/",
                "status": "provisioning",
                "statusDetails": "",
                "provisioningState": "provisioning",
                "privateEndpointConnections": [],
                "sharedPrivateLinkResources": [],
                "eTag": f"W/\"datetime'{iso(now())}'\"",
                "upgradeAvailable": "notAvailable",
                "serviceUpgradedAt": None,
            },
            "_keys": {
                "primaryKey": secrets.token_hex(26),
                "secondaryKey": secrets.token_hex(26),
                "queryKeys": [{"name": None, "key": secrets.token_hex(26)}],
            },
        }
        store.world.search_services[resource_id.lower()] = service
        _, delay = record_operation(
            store,
            kind="searchService.create",
            target=resource_id.lower(),
            fault_operation="searchServices.put",
        )
        store.save()
    return JSONResponse(public_service(service), status_code=201, headers=retry_after(delay))


def _check_name(name: str) -> None:
    if not SERVICE_NAME.match(name):
        raise AzureError(
            400,
            "InvalidName",
            f"Service name '{name}' is invalid: Service name must only contain lowercase letters, digits or dashes, cannot use dash as the first two or last one characters, cannot contain consecutive dashes, and is limited between 2 and 60 characters in length.",
        )


def _check_location(request: Request, body: dict[str, Any]) -> str:
    regions = catalog_of(request).regions
    location = str(body.get("location", "")).replace(" ", "").lower()
    if location not in regions:
        raise AzureError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{body.get('location')}' is not available for resource type '{SEARCH_PROVIDER}/searchServices'. List of available regions for the resource type is '{','.join(regions)}'.",
        )
    return location


def _check_sku(sku: Any) -> str:
    name = (sku or {}).get("name") if isinstance(sku, dict) else None
    if name not in SKUS:
        raise AzureError(
            400,
            "InvalidSku",
            f"The SKU '{name}' is not valid. Valid SKUs are: {', '.join(sorted(SKUS))}. The sku is required when creating a service.",
        )
    return str(name)


def _properties(body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    requested = body.get("properties") or {}
    previous = existing["properties"] if existing else {}
    replicas = requested.get("replicaCount", previous.get("replicaCount", 1))
    partitions = requested.get("partitionCount", previous.get("partitionCount", 1))
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 12:
        raise AzureError(400, "InvalidReplicaCount", "replicaCount must be between 1 and 12.")
    if partitions not in PARTITION_COUNTS:
        raise AzureError(400, "InvalidPartitionCount", "partitionCount must be one of 1, 2, 3, 4, 6 or 12.")
    disable_local_auth = bool(requested.get("disableLocalAuth", previous.get("disableLocalAuth", False)))
    auth_options = requested.get("authOptions")
    if disable_local_auth and auth_options:
        raise AzureError(
            400,
            "InvalidRequestContent",
            "'authOptions' cannot be set when 'disableLocalAuth' is true: a service without keys accepts only Entra ID tokens.",
        )
    if not disable_local_auth and not auth_options:
        auth_options = previous.get("authOptions") or {"apiKeyOnly": {}}
    return {
        "replicaCount": replicas,
        "partitionCount": partitions,
        "hostingMode": requested.get("hostingMode", previous.get("hostingMode", "default")),
        "computeType": requested.get("computeType", previous.get("computeType", "default")),
        "publicNetworkAccess": requested.get(
            "publicNetworkAccess", previous.get("publicNetworkAccess", "enabled")
        ),
        "networkRuleSet": requested.get("networkRuleSet")
        or previous.get("networkRuleSet")
        or {"ipRules": [], "bypass": "None"},
        "encryptionWithCmk": {"enforcement": "Unspecified", "encryptionComplianceStatus": "Compliant"},
        "disableLocalAuth": disable_local_auth,
        "authOptions": None if disable_local_auth else auth_options,
        "semanticSearch": requested.get("semanticSearch", previous.get("semanticSearch")),
        "dataExfiltrationProtections": requested.get("dataExfiltrationProtections", []),
    }


def _check_name_free(store: Store, name: str, resource_id: str) -> None:
    other = store.search_service_by_name(name)
    if other is not None and other["id"].lower() != resource_id.lower():
        raise AzureError(
            409,
            "ServiceNameUnavailable",
            f"The name '{name}' is already in use by another search service: search service names are unique worldwide.",
        )


async def search_service_get(request: Request) -> Response:
    store = await enter(request, "searchServices.get")
    return JSONResponse(public_service(live_service(store, request.path_params)))


async def search_service_delete(request: Request) -> Response:
    store = await enter(request, "searchServices.delete")
    params = request.path_params
    async with store.lock:
        key = service_resource_id(params["subscription"], params["resource_group"], params["name"]).lower()
        service = store.world.search_services.pop(key, None)
        if service is None:
            return Response(status_code=204)
        store.search.drop_service(service["name"])
        store.save()
    return Response(status_code=200)


async def search_services_list(request: Request) -> Response:
    store = await enter(request, "searchServices.list")
    subscription = request.path_params["subscription"].lower()
    resource_group = request.path_params.get("resource_group", "").lower()
    prefix = (
        f"/subscriptions/{subscription}/resourcegroups/{resource_group}/"
        if resource_group
        else f"/subscriptions/{subscription}/"
    )
    services = [
        public_service(service)
        for key, service in store.world.search_services.items()
        if key.startswith(prefix)
    ]
    return JSONResponse({"value": services, "nextLink": None})


async def search_service_admin_keys(request: Request) -> Response:
    store = await enter(request, "searchServices.listAdminKeys")
    keys = live_service(store, request.path_params)["_keys"]
    return JSONResponse({"primaryKey": keys["primaryKey"], "secondaryKey": keys["secondaryKey"]})


async def search_service_query_keys(request: Request) -> Response:
    store = await enter(request, "searchServices.listQueryKeys")
    keys = live_service(store, request.path_params)["_keys"]
    return JSONResponse({"value": keys["queryKeys"], "nextLink": None})
