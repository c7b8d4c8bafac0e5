"""ARM control plane for Microsoft.CognitiveServices (api-version 2025-09-01) and the role
assignments of Microsoft.Authorization, as the official management SDKs call them.

Long-running operations answer 201/202 with an `Azure-AsyncOperation` status resource. Their
outcome is applied lazily: every request first settles the operations whose time has come, so
there are no timers to lose on a restart.
"""

import math
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.catalog import Catalog, Offer
from provisioning.emulator.control import quota_key
from provisioning.emulator.errors import AzureError, not_found
from provisioning.emulator.hang import until_caller_leaves
from provisioning.emulator.state import Store, now

PROVIDER = "Microsoft.CognitiveServices"
ACCOUNT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
SUBDOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$")
DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
SUPPORTED_ACCOUNT_KINDS = {"OpenAI", "AIServices"}


# Helpers --------------------------------------------------------------------------------------


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _account_id(subscription: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/accounts/{name}"
    )


def _system_data(caller: dict[str, Any]) -> dict[str, Any]:
    stamp = _iso(now())
    who = str(caller.get("oid") or caller.get("sub") or "unknown")
    return {
        "createdBy": who,
        "createdByType": "Application",
        "createdAt": stamp,
        "lastModifiedBy": who,
        "lastModifiedByType": "Application",
        "lastModifiedAt": stamp,
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise AzureError(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        ) from None
    if not isinstance(body, dict):
        raise AzureError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def _fault(store: Store, operation: str) -> None:
    """Answer as an injected fault would, if one applies to this request."""
    fault = store.take_fault(operation, {"429", "500", "503"})
    if fault is None:
        return
    if fault.kind == "429":
        raise AzureError(
            429,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00. For more information, see - https://aka.ms/srpthrottlinglimits",
            headers={"Retry-After": str(fault.retry_after_seconds)},
        )
    if fault.kind == "500":
        raise AzureError(
            500, "InternalServerError", "An internal server error occurred. Please retry the request."
        )
    raise AzureError(
        503,
        "ServiceUnavailable",
        "The service is temporarily unavailable. Please retry the request.",
        headers={"Retry-After": "1"},
    )


def _start_operation(
    request: Request,
    store: Store,
    *,
    kind: str,
    target: str,
    location: str,
    subscription: str,
    fault_operation: str,
    status_code: int,
    body: dict[str, Any] | None,
) -> Response:
    """Record a long-running operation and answer as Azure does: status + Azure-AsyncOperation."""
    delay = float(store.world.settings["lro_delay_seconds"])
    failed = store.take_fault(fault_operation, {"lro_failure"}) is not None
    operation_id = str(uuid.uuid4())
    store.world.operations[operation_id] = {
        "kind": kind,
        "target": target,
        "startTime": now(),
        "readyAt": now() + delay,
        "fails": failed,
        "status": "InProgress",
    }
    status_url = (
        f"{_base_url(request)}/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}"
        f"/operationStatuses/{operation_id}?api-version=2025-09-01"
    )
    headers = {"Azure-AsyncOperation": status_url, **_retry_after(delay)}
    if status_code == 202:
        headers["Location"] = status_url
    store.save()
    return (
        JSONResponse(body, status_code=status_code, headers=headers)
        if body is not None
        else Response(status_code=status_code, headers=headers)
    )


def _retry_after(seconds: float) -> dict[str, str]:
    # Retry-After is whole seconds; sub-second waits go in retry-after-ms, which azure-core reads
    # when Retry-After is absent.
    if seconds >= 1:
        return {"Retry-After": str(math.ceil(seconds))}
    return {"retry-after-ms": str(max(int(seconds * 1000), 50))}


def settle(store: Store) -> None:
    """Apply the outcome of every long-running operation whose time has come."""
    changed = False
    for operation in store.world.operations.values():
        if operation["status"] != "InProgress" or operation["readyAt"] > now():
            continue
        operation["status"] = "Failed" if operation["fails"] else "Succeeded"
        operation["endTime"] = now()
        _apply(store, operation)
        changed = True
    if changed:
        store.save()


def _apply(store: Store, operation: dict[str, Any]) -> None:
    world = store.world
    kind, target, failed = operation["kind"], operation["target"], operation["fails"]
    if kind == "account.create":
        account = world.accounts.get(target)
        if account is not None:
            account["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
    elif kind == "account.delete":
        if failed:
            account = world.accounts.get(target)
            if account is not None:
                account["properties"]["provisioningState"] = "Failed"
            return
        account = world.accounts.pop(target, None)
        if account is not None:
            # Azure soft-deletes: the account keeps its name, subdomain and quota until purged.
            deleted_id = _deleted_account_id(account)
            world.deleted_accounts[deleted_id.lower()] = {
                "account": account,
                "deployments": world.deployments.pop(target, {}),
                "deletionDate": _iso(now()),
                "scheduledPurgeDate": _iso(now() + 48 * 3600),
            }
            world.rai_policies.pop(target, None)
    elif kind == "deployment.create":
        account_id, _, name = target.rpartition("|")
        deployment = world.deployments.get(account_id, {}).get(name)
        if deployment is not None:
            deployment["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
    elif kind == "deployment.delete":
        account_id, _, name = target.rpartition("|")
        if failed:
            deployment = world.deployments.get(account_id, {}).get(name)
            if deployment is not None:
                deployment["properties"]["provisioningState"] = "Failed"
            return
        world.deployments.get(account_id, {}).pop(name, None)
    elif kind == "account.purge" and not failed:
        world.deleted_accounts.pop(target, None)


def _deleted_account_id(account: dict[str, Any]) -> str:
    subscription = account["id"].split("/")[2]
    resource_group = account["id"].split("/")[4]
    return (
        f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{account['location']}"
        f"/resourceGroups/{resource_group}/deletedAccounts/{account['name']}"
    )


async def _enter(request: Request, operation: str) -> Store:
    """What every ARM request does first: authenticate, settle due operations, inject faults."""
    require_arm_caller(request)
    store = _store(request)
    async with store.lock:
        settle(store)
    if store.take_fault(operation, {"hang"}) is not None:
        if await until_caller_leaves(request.receive):
            raise AzureError(499, "ClientClosedRequest", "The caller went away.")
        raise AzureError(
            504,
            "GatewayTimeout",
            "The gateway did not receive a response from the service within the timeout.",
        )
    _fault(store, operation)
    return store


def _public_account(account: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in account.items() if not key.startswith("_")}


def _live_account(store: Store, subscription: str, resource_group: str, name: str) -> dict[str, Any]:
    account = store.world.accounts.get(_account_id(subscription, resource_group, name).lower())
    if account is None:
        raise not_found(f"{PROVIDER}/accounts", name)
    return account


# Accounts per region and kind, as usages.list reports them.
ACCOUNT_COUNTS = {
    "OpenAI.S0.AccountCount": {"OpenAI"},
    "AIServices.S0.AccountCount": {"AIServices"},
    "AccountCount": SUPPORTED_ACCOUNT_KINDS,
}


def _account_count(store: Store, subscription: str, location: str, kinds: set[str]) -> int:
    return sum(
        1
        for account in store.world.accounts.values()
        if account["location"] == location
        and account["kind"] in kinds
        and account["id"].split("/")[2].lower() == subscription.lower()
    )


# Quota ----------------------------------------------------------------------------------------


def quota_limit(store: Store, catalog: Catalog, subscription: str, location: str, usage_name: str) -> float:
    limits = store.world.quota_limits
    for key in (quota_key(subscription, location, usage_name), quota_key("*", location, usage_name)):
        if key in limits:
            return limits[key]
    return catalog.default_quota(location, usage_name)


def quota_used(
    store: Store, catalog: Catalog, subscription: str, location: str, usage_name: str, *, excluding: str = ""
) -> float:
    """Capacity held against a quota: live deployments and those of soft-deleted accounts."""
    used = 0.0
    held: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]] = [
        (account, store.world.deployments.get(account_id, {}))
        for account_id, account in store.world.accounts.items()
    ]
    held += [(entry["account"], entry["deployments"]) for entry in store.world.deleted_accounts.values()]
    for account, deployments in held:
        if account["id"].split("/")[2].lower() != subscription.lower() or account["location"] != location:
            continue
        for deployment in deployments.values():
            if deployment["id"].lower() == excluding.lower():
                continue
            offer = _offer_of(catalog, account, deployment)
            if offer is not None and offer.usage_name == usage_name:
                used += float(deployment["sku"]["capacity"])
    return used


def _offer_of(catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]) -> Offer | None:
    model = deployment["properties"]["model"]
    return catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=deployment["sku"]["name"]
    )


# Accounts -------------------------------------------------------------------------------------


async def account_put(request: Request) -> Response:
    store = await _enter(request, "accounts.put")
    caller = require_arm_caller(request)
    subscription, resource_group, name = (
        request.path_params[key] for key in ("subscription", "resource_group", "name")
    )
    body = await _body(request)
    catalog = _catalog(request)
    if not ACCOUNT_NAME.match(name):
        raise AzureError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 64 characters long, and can contain only alphanumeric characters, periods, underscores and hyphens, starting with an alphanumeric character.",
        )
    location = str(body.get("location", "")).replace(" ", "").lower()
    if location not in catalog.regions:
        raise AzureError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{body.get('location')}' is not available for resource type '{PROVIDER}/accounts'. List of available regions for the resource type is '{','.join(catalog.regions)}'.",
        )
    kind = body.get("kind")
    if kind not in SUPPORTED_ACCOUNT_KINDS:
        raise AzureError(
            400,
            "InvalidApiSetId",
            f"The account type '{kind}' is either invalid or unavailable in given region.",
        )
    sku = (body.get("sku") or {}).get("name")
    if sku != "S0":
        raise AzureError(
            400,
            "InvalidSkuId",
            f"The sku '{sku}' is either invalid or unavailable for account type '{kind}'.",
        )
    properties = body.get("properties") or {}
    subdomain = properties.get("customSubDomainName")
    if subdomain is not None and not SUBDOMAIN.match(str(subdomain)):
        raise AzureError(
            400,
            "InvalidSubdomainName",
            f"The custom subdomain name '{subdomain}' is invalid. It must be 2 to 64 alphanumeric characters or hyphens, starting and ending with an alphanumeric character.",
        )
    account_id = _account_id(subscription, resource_group, name)
    async with store.lock:
        settle(store)
        world = store.world
        existing = world.accounts.get(account_id.lower())
        deleted_key = _deleted_account_id({"id": account_id, "location": location, "name": name}).lower()
        if existing is None and deleted_key in world.deleted_accounts:
            if properties.get("restore") is not True:
                raise AzureError(
                    409,
                    "FlagMustBeSetForRestore",
                    f"An existing resource with ID '{account_id}' has been soft-deleted. To restore the resource, you must specify 'restore' property as 'true'. Otherwise, please purge it first.",
                )
            restored = world.deleted_accounts.pop(deleted_key)
            world.accounts[account_id.lower()] = restored["account"]
            world.deployments[account_id.lower()] = restored["deployments"]
            existing = restored["account"]
        if existing is not None and existing["properties"]["provisioningState"] in {
            "Creating",
            "Accepted",
            "Deleting",
        }:
            raise AzureError(
                409,
                "Conflict",
                f"Another operation is being performed on the resource '{name}'. Please retry after the operation is complete.",
            )
        if existing is not None and existing["location"] != location:
            raise AzureError(
                409,
                "InvalidResourceLocation",
                f"The resource '{name}' already exists in location '{existing['location']}' in resource group '{resource_group}'. A resource with the same name cannot be created in location '{location}'. Please select a new resource name.",
            )
        if subdomain:
            _check_subdomain_free(store, str(subdomain), account_id)
        if existing is None:
            usage_name = f"{kind}.S0.AccountCount"
            limit = catalog.data["accountQuotas"][usage_name]
            if _account_count(store, subscription, location, {kind}) >= limit:
                raise AzureError(
                    400,
                    "InsufficientQuota",
                    f"The subscription has reached its limit of {limit} {kind} S0 accounts in region '{location}' ({catalog.localized_usage_name(usage_name)}).",
                )
        network_acls = properties.get("networkAcls") or {
            "defaultAction": "Allow",
            "virtualNetworkRules": [],
            "ipRules": [],
        }
        endpoint = f"{_base_url(request)}/accounts/{subdomain or name}/"
        account = existing or {
            "id": account_id,
            "name": name,
            "type": f"{PROVIDER}/accounts",
            "systemData": _system_data(caller),
            "_keys": {"key1": secrets.token_hex(16), "key2": secrets.token_hex(16)},
        }
        account.update(
            {
                "location": location,
                "kind": kind,
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
        previous = existing["properties"] if existing else {}
        capabilities = previous.get("capabilities") or _default_capabilities()
        account["properties"] = {
            **{key: value for key, value in properties.items() if key != "restore"},
            "endpoint": endpoint,
            "endpoints": {
                "OpenAI Language Model Instance API": endpoint,
                "OpenAI Realtime API": endpoint.replace("http", "ws", 1),
            },
            "customSubDomainName": subdomain,
            "publicNetworkAccess": properties.get("publicNetworkAccess", "Enabled"),
            "networkAcls": network_acls,
            "disableLocalAuth": bool(properties.get("disableLocalAuth", False)),
            "capabilities": capabilities,
            "internalId": previous.get("internalId") or uuid.uuid4().hex,
            "dateCreated": previous.get("dateCreated") or _iso(now()),
            "isMigrated": False,
            "provisioningState": "Succeeded" if existing else "Accepted",
        }
        if existing is not None:
            # An idempotent re-PUT of a live account: Azure answers 200 and is done.
            store.save()
            return JSONResponse(_public_account(account), status_code=200)
        store.world.accounts[account_id.lower()] = account
        return _start_operation(
            request,
            store,
            kind="account.create",
            target=account_id.lower(),
            location=location,
            subscription=subscription,
            fault_operation="accounts.put",
            status_code=201,
            body=_public_account(account),
        )


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


def _check_subdomain_free(store: Store, subdomain: str, account_id: str) -> None:
    holders = [
        *store.world.accounts.values(),
        *(entry["account"] for entry in store.world.deleted_accounts.values()),
    ]
    for holder in holders:
        if holder["id"].lower() == account_id.lower():
            continue
        if str(holder["properties"].get("customSubDomainName") or "").lower() == subdomain.lower():
            raise AzureError(
                400,
                "CustomDomainInUse",
                f"The custom domain name '{subdomain}' is already in use. Please choose a different one.",
            )


async def account_get(request: Request) -> Response:
    store = await _enter(request, "accounts.get")
    params = request.path_params
    account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
    return JSONResponse(_public_account(account))


async def account_delete(request: Request) -> Response:
    store = await _enter(request, "accounts.delete")
    params = request.path_params
    async with store.lock:
        account_id = _account_id(params["subscription"], params["resource_group"], params["name"]).lower()
        account = store.world.accounts.get(account_id)
        if account is None:
            return Response(status_code=204)
        if account["properties"]["provisioningState"] == "Deleting":
            raise AzureError(409, "Conflict", f"The account '{params['name']}' is already being deleted.")
        account["properties"]["provisioningState"] = "Deleting"
        return _start_operation(
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
    store = await _enter(request, "accounts.list")
    subscription = request.path_params["subscription"].lower()
    resource_group = request.path_params.get("resource_group", "").lower()
    prefix = (
        f"/subscriptions/{subscription}/resourcegroups/{resource_group}/"
        if resource_group
        else f"/subscriptions/{subscription}/"
    )
    accounts = [
        _public_account(account) for key, account in store.world.accounts.items() if key.startswith(prefix)
    ]
    return JSONResponse({"value": accounts})


async def account_list_keys(request: Request) -> Response:
    store = await _enter(request, "accounts.listKeys")
    params = request.path_params
    account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
    if account["properties"].get("disableLocalAuth"):
        raise AzureError(400, "BadRequest", "Failed to list key. disableLocalAuth is set to be true")
    return JSONResponse(account["_keys"])


# Deployments ----------------------------------------------------------------------------------


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


def _validate_deployment(
    catalog: Catalog, account: dict[str, Any], body: dict[str, Any]
) -> tuple[Offer, dict[str, Any], int]:
    location = account["location"]
    sku = body.get("sku") or {}
    sku_name = sku.get("name")
    capacity = sku.get("capacity", 1)
    model = (body.get("properties") or {}).get("model") or {}
    model_name, version, model_format = model.get("name"), model.get("version"), model.get("format", "OpenAI")
    if not model_name or model_format != "OpenAI":
        raise AzureError(
            400,
            "InvalidResourceProperties",
            "The specified deployment model is invalid: properties.model needs format 'OpenAI' and a name.",
        )
    if not catalog.model_versions(model_name):
        raise AzureError(
            400,
            "DeploymentModelNotSupported",
            f"The model '{model_name}' is not supported. Please check the available models with the models API.",
        )
    if version and version not in catalog.model_versions(model_name):
        raise AzureError(
            400,
            "InvalidResourceProperties",
            f"The specified model version '{version}' of model '{model_name}' is not supported. Supported versions: {', '.join(catalog.model_versions(model_name))}.",
        )
    offer = catalog.find(location, name=model_name, version=version, sku=str(sku_name))
    if offer is None:
        raise AzureError(
            400,
            "InvalidResourceProperties",
            f"The specified SKU '{sku_name}' for model '{model_name} {version or ''}'.strip() is not supported in this region '{location}'.".replace(
                "'.strip()", "'"
            ),
        )
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise AzureError(400, "InvalidCapacity", "The capacity should be a positive integer.")
    limits = offer.sku.get("capacity", {})
    minimum, maximum, step = limits.get("minimum", 1), limits.get("maximum"), limits.get("step")
    if capacity < minimum or (maximum is not None and capacity > maximum):
        raise AzureError(
            400,
            "InvalidCapacity",
            f"The capacity {capacity} is out of range: the SKU '{sku_name}' of model '{model_name}' allows {minimum} to {maximum}.",
        )
    if step and capacity % step:
        raise AzureError(
            400,
            "InvalidCapacity",
            f"The capacity should be a multiple of {step} for SKU '{sku_name}' of model '{model_name}'; {capacity} is not.",
        )
    model = {"format": "OpenAI", "name": model_name, "version": offer.model["version"]}
    return offer, model, capacity


async def deployment_put(request: Request) -> Response:
    store = await _enter(request, "deployments.put")
    caller = require_arm_caller(request)
    params = request.path_params
    name = params["deployment"]
    body = await _body(request)
    catalog = _catalog(request)
    if not DEPLOYMENT_NAME.match(name):
        raise AzureError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 64 characters long, and can contain only alphanumeric characters, periods, underscores and hyphens.",
        )
    async with store.lock:
        settle(store)
        account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
        if account["properties"]["provisioningState"] != "Succeeded":
            raise AzureError(
                409,
                "Conflict",
                f"The account '{params['name']}' is in state {account['properties']['provisioningState']}; deployments can be created once it has succeeded.",
            )
        offer, model, capacity = _validate_deployment(catalog, account, body)
        deployment_id = f"{account['id']}/deployments/{name}"
        deployments = store.world.deployments.setdefault(account["id"].lower(), {})
        existing = deployments.get(name)
        if existing is not None and existing["properties"]["provisioningState"] in {
            "Creating",
            "Updating",
            "Deleting",
        }:
            raise AzureError(
                409,
                "Conflict",
                f"Another operation is being performed on the deployment '{name}'. Please retry after the operation is complete.",
            )
        subscription = params["subscription"]
        limit = quota_limit(store, catalog, subscription, account["location"], offer.usage_name)
        used = quota_used(
            store, catalog, subscription, account["location"], offer.usage_name, excluding=deployment_id
        )
        if used + capacity > limit:
            quota_name = catalog.localized_usage_name(offer.usage_name)
            raise AzureError(
                400,
                "InsufficientQuota",
                f"This operation require {capacity} new capacity in quota {quota_name}, which is bigger than the current available capacity {max(limit - used, 0):g}. The current quota usage is {used:g} and the quota limit is {limit:g} for quota {quota_name}.",
            )
        properties = body.get("properties") or {}
        rai_policy = properties.get("raiPolicyName", "Microsoft.DefaultV2")
        if rai_policy not in {
            "Microsoft.Default",
            "Microsoft.DefaultV2",
        } and rai_policy not in store.world.rai_policies.get(account["id"].lower(), {}):
            raise AzureError(
                400,
                "InvalidRaiPolicy",
                f"The RAI policy '{rai_policy}' does not exist on account '{account['name']}'.",
            )
        deployment = {
            "id": deployment_id,
            "name": name,
            "type": f"{PROVIDER}/accounts/deployments",
            "sku": {"name": offer.sku["name"], "capacity": capacity},
            "systemData": existing["systemData"] if existing else _system_data(caller),
            "etag": f'"{uuid.uuid4()}"',
            "properties": {
                "model": model,
                "versionUpgradeOption": properties.get(
                    "versionUpgradeOption", "OnceNewDefaultVersionAvailable"
                ),
                "currentCapacity": capacity,
                "raiPolicyName": rai_policy,
                "capabilities": {
                    key: value
                    for key, value in offer.model.get("capabilities", {}).items()
                    if key
                    in {
                        "chatCompletion",
                        "embeddings",
                        "area",
                        "assistants",
                        "jsonSchemaResponse",
                        "responses",
                        "maxContextToken",
                        "maxOutputToken",
                    }
                },
                "rateLimits": _deployment_rate_limits(offer, capacity),
                "provisioningState": "Updating" if existing else "Creating",
            },
        }
        deployments[name] = deployment
        return _start_operation(
            request,
            store,
            kind="deployment.create",
            target=f"{account['id'].lower()}|{name}",
            location=account["location"],
            subscription=subscription,
            fault_operation="deployments.put",
            status_code=200 if existing else 201,
            body=deployment,
        )


async def deployment_get(request: Request) -> Response:
    store = await _enter(request, "deployments.get")
    params = request.path_params
    account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
    deployment = store.deployment(account, params["deployment"])
    if deployment is None:
        raise not_found(f"{PROVIDER}/accounts/deployments", f"{params['name']}/{params['deployment']}")
    return JSONResponse(deployment)


async def deployments_list(request: Request) -> Response:
    store = await _enter(request, "deployments.list")
    params = request.path_params
    account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
    return JSONResponse({"value": list(store.world.deployments.get(account["id"].lower(), {}).values())})


async def deployment_delete(request: Request) -> Response:
    store = await _enter(request, "deployments.delete")
    params = request.path_params
    async with store.lock:
        account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
        deployment = store.deployment(account, params["deployment"])
        if deployment is None:
            return Response(status_code=204)
        if deployment["properties"]["provisioningState"] == "Deleting":
            raise AzureError(
                409, "Conflict", f"The deployment '{params['deployment']}' is already being deleted."
            )
        deployment["properties"]["provisioningState"] = "Deleting"
        return _start_operation(
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


# Content filter (RAI) policies ---------------------------------------------------------------


async def rai_policy_put(request: Request) -> Response:
    store = await _enter(request, "raiPolicies.put")
    params = request.path_params
    body = await _body(request)
    async with store.lock:
        account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
        policies = store.world.rai_policies.setdefault(account["id"].lower(), {})
        existed = params["policy"] in policies
        properties = body.get("properties") or {}
        policy = {
            "id": f"{account['id']}/raiPolicies/{params['policy']}",
            "name": params["policy"],
            "type": f"{PROVIDER}/accounts/raiPolicies",
            "etag": f'"{uuid.uuid4()}"',
            "properties": {
                "mode": properties.get("mode", "Blocking"),
                "basePolicyName": properties.get("basePolicyName", "Microsoft.DefaultV2"),
                "contentFilters": properties.get("contentFilters", []),
                "customBlocklists": properties.get("customBlocklists", []),
                "type": "UserManaged",
            },
        }
        policies[params["policy"]] = policy
        store.save()
    return JSONResponse(policy, status_code=200 if existed else 201)


async def rai_policy_get(request: Request) -> Response:
    store = await _enter(request, "raiPolicies.put")
    params = request.path_params
    account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
    policy = store.world.rai_policies.get(account["id"].lower(), {}).get(params["policy"])
    if policy is None:
        raise not_found(f"{PROVIDER}/accounts/raiPolicies", params["policy"])
    return JSONResponse(policy)


async def rai_policy_delete(request: Request) -> Response:
    store = await _enter(request, "raiPolicies.put")
    params = request.path_params
    async with store.lock:
        account = _live_account(store, params["subscription"], params["resource_group"], params["name"])
        in_use = [
            deployment["name"]
            for deployment in store.world.deployments.get(account["id"].lower(), {}).values()
            if deployment["properties"].get("raiPolicyName") == params["policy"]
        ]
        if in_use:
            raise AzureError(
                409,
                "Conflict",
                f"The RAI policy '{params['policy']}' is used by deployments {', '.join(in_use)}.",
            )
        removed = store.world.rai_policies.get(account["id"].lower(), {}).pop(params["policy"], None)
        store.save()
    return Response(status_code=200 if removed else 204)


# Catalog, quota, capacity ---------------------------------------------------------------------


def _location(request: Request) -> str:
    location = str(request.path_params["location"]).replace(" ", "").lower()
    if location not in _catalog(request).regions:
        raise AzureError(
            404,
            "LocationNotFound",
            f"The location '{request.path_params['location']}' is not supported for {PROVIDER}.",
        )
    return location


def _model_release(model: dict[str, Any]) -> str:
    # Model versions are release dates (2024-07-18); text-embedding-3-small's is "1".
    version = str(model["version"])
    return f"{version}T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", version) else "2024-01-25T00:00:00Z"


def _model_entry(offer_model: dict[str, Any], skus: list[dict[str, Any]]) -> dict[str, Any]:
    model = {
        "format": offer_model["format"],
        "name": offer_model["name"],
        "version": offer_model["version"],
        "lifecycleStatus": offer_model["lifecycleStatus"],
        "isDefaultVersion": offer_model.get("isDefaultVersion", False),
        "maxCapacity": offer_model.get("maxCapacity"),
        "capabilities": offer_model.get("capabilities", {}),
        "modelCatalogAssetId": f"azureml://registries/azure-openai/models/{offer_model['name']}/versions/{offer_model['version']}",
        "systemData": {
            "createdBy": "Microsoft",
            "createdByType": "Application",
            "createdAt": _model_release(offer_model),
            "lastModifiedBy": "Microsoft",
            "lastModifiedByType": "Application",
            "lastModifiedAt": _model_release(offer_model),
        },
        "skus": [
            {
                "name": sku["name"],
                "usageName": sku["usageName"],
                "capacity": sku.get("capacity", {}),
                "rateLimits": sku.get("rateLimits"),
                "deprecationDate": offer_model.get("deprecation", {}).get("inference"),
            }
            for sku in skus
        ],
    }
    if "deprecation" in offer_model:
        model["deprecation"] = offer_model["deprecation"]
    return {"kind": "OpenAI", "skuName": "S0", "model": model}


async def models_list(request: Request) -> Response:
    await _enter(request, "models.list")
    location = _location(request)
    entries = []
    for offer_model in _catalog(request).data["models"]:
        skus = [sku for sku in offer_model["skus"] if location in sku["regions"]]
        if skus:
            entries.append(_model_entry(offer_model, skus))
    return JSONResponse({"value": entries})


async def usages_list(request: Request) -> Response:
    store = await _enter(request, "usages.list")
    location = _location(request)
    subscription = request.path_params["subscription"]
    catalog = _catalog(request)
    value = []
    for usage_name in catalog.usage_names_in(location):
        value.append(
            {
                "name": {"value": usage_name, "localizedValue": catalog.localized_usage_name(usage_name)},
                "currentValue": quota_used(store, catalog, subscription, location, usage_name),
                "limit": quota_limit(store, catalog, subscription, location, usage_name),
                "unit": "Count",
            }
        )
    for usage_name, kinds in ACCOUNT_COUNTS.items():
        value.append(
            {
                "name": {"value": usage_name, "localizedValue": catalog.localized_usage_name(usage_name)},
                "currentValue": _account_count(store, subscription, location, kinds),
                "limit": catalog.data["accountQuotas"][usage_name],
                "unit": "Count",
            }
        )
    return JSONResponse({"value": value})


async def model_capacities_list(request: Request) -> Response:
    """Where a model can be deployed and how much capacity each region has left for it."""
    store = await _enter(request, "modelCapacities.list")
    catalog = _catalog(request)
    subscription = request.path_params["subscription"]
    query = request.query_params
    name, version, model_format = (
        query.get("modelName"),
        query.get("modelVersion"),
        query.get("modelFormat", "OpenAI"),
    )
    if not name or not version:
        raise AzureError(400, "InvalidParameter", "modelFormat, modelName and modelVersion are required.")
    only_location = request.path_params.get("location")
    value = []
    for location in catalog.regions:
        if only_location and location != only_location.lower():
            continue
        for offer in catalog.offers_in(location):
            if offer.model["name"] != name or offer.model["version"] != version:
                continue
            limit = quota_limit(store, catalog, subscription, location, offer.usage_name)
            used = quota_used(store, catalog, subscription, location, offer.usage_name)
            value.append(
                {
                    "id": f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/models/{model_format}.{name}.{version}/skuCapacities/{offer.sku['name']}",
                    "name": offer.sku["name"],
                    "type": f"{PROVIDER}/locations/models/skuCapacities",
                    "location": location,
                    "properties": {
                        "model": {"format": model_format, "name": name, "version": version},
                        "skuName": offer.sku["name"],
                        "availableCapacity": max(limit - used, 0),
                        "availableFinetuneCapacity": 0,
                    },
                }
            )
    return JSONResponse({"value": value})


# Soft-deleted accounts ------------------------------------------------------------------------


def _public_deleted(entry: dict[str, Any], deleted_id: str) -> dict[str, Any]:
    account = _public_account(entry["account"])
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
    store = await _enter(request, "accounts.get")
    deleted_id = _deleted_id_from(request.path_params)
    entry = store.world.deleted_accounts.get(deleted_id.lower())
    if entry is None:
        raise not_found(f"{PROVIDER}/deletedAccounts", request.path_params["name"])
    return JSONResponse(_public_deleted(entry, _deleted_account_id(entry["account"])))


async def deleted_accounts_list(request: Request) -> Response:
    store = await _enter(request, "accounts.list")
    subscription = request.path_params["subscription"].lower()
    value = [
        _public_deleted(entry, _deleted_account_id(entry["account"]))
        for key, entry in store.world.deleted_accounts.items()
        if key.startswith(f"/subscriptions/{subscription}/")
    ]
    return JSONResponse({"value": value})


async def deleted_account_purge(request: Request) -> Response:
    store = await _enter(request, "deletedAccounts.purge")
    params = request.path_params
    async with store.lock:
        deleted_id = _deleted_id_from(params).lower()
        if deleted_id not in store.world.deleted_accounts:
            raise not_found(f"{PROVIDER}/deletedAccounts", params["name"])
        return _start_operation(
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


async def operation_status(request: Request) -> Response:
    store = await _enter(request, "accounts.get")
    operation_id = request.path_params["operation"]
    operation = store.world.operations.get(operation_id)
    if operation is None:
        raise not_found(f"{PROVIDER}/locations/operationStatuses", operation_id)
    body: dict[str, Any] = {
        "id": str(request.url.path),
        "name": operation_id,
        "status": operation["status"],
        "startTime": _iso(operation["startTime"]),
    }
    headers: dict[str, str] = {}
    if operation["status"] == "InProgress":
        headers = _retry_after(max(operation["readyAt"] - now(), 0.05))
    else:
        body["endTime"] = _iso(operation["endTime"])
    if operation["status"] == "Failed":
        body["error"] = {
            "code": "ProvisioningFailed",
            "message": f"The {operation['kind'].replace('.', ' ')} operation failed in the region. Please retry; if it keeps failing, contact Azure support.",
        }
    return JSONResponse(body, headers=headers)


# Role assignments (Microsoft.Authorization) ----------------------------------------------------


async def role_assignment_put(request: Request) -> Response:
    store = await _enter(request, "roleAssignments.put")
    caller = require_arm_caller(request)
    scope = "/" + request.path_params["scope"].strip("/")
    name = request.path_params["assignment"]
    body = await _body(request)
    properties = body.get("properties") or {}
    role_definition, principal = properties.get("roleDefinitionId"), properties.get("principalId")
    if not role_definition or not principal:
        raise AzureError(
            400,
            "InvalidRoleAssignmentRequest",
            "The role assignment needs properties.roleDefinitionId and properties.principalId.",
        )
    try:
        uuid.UUID(name)
    except ValueError:
        raise AzureError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
        ) from None
    assignment_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    async with store.lock:
        for other in store.world.role_assignments.values():
            same = other["properties"]
            if (
                other["id"].lower() != assignment_id.lower()
                and same["scope"].lower() == scope.lower()
                and same["principalId"].lower() == str(principal).lower()
                and same["roleDefinitionId"].rsplit("/", 1)[-1].lower()
                == str(role_definition).rsplit("/", 1)[-1].lower()
            ):
                raise AzureError(409, "RoleAssignmentExists", "The role assignment already exists.")
        existing = store.world.role_assignments.get(assignment_id.lower())
        assignment = {
            "id": assignment_id,
            "name": name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": role_definition,
                "principalId": principal,
                "principalType": properties.get("principalType", "ServicePrincipal"),
                "scope": scope,
                "condition": properties.get("condition"),
                "conditionVersion": properties.get("conditionVersion"),
                "createdOn": _iso(now()),
                "updatedOn": _iso(now()),
                "createdBy": caller.get("oid"),
                "updatedBy": caller.get("oid"),
                "delegatedManagedIdentityResourceId": None,
                "description": properties.get("description"),
            },
        }
        store.world.role_assignments[assignment_id.lower()] = assignment
        store.save()
    return JSONResponse(assignment, status_code=200 if existing else 201)


async def role_assignment_get(request: Request) -> Response:
    store = await _enter(request, "roleAssignments.put")
    scope = "/" + request.path_params["scope"].strip("/")
    assignment_id = (
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{request.path_params['assignment']}"
    )
    assignment = store.world.role_assignments.get(assignment_id.lower())
    if assignment is None:
        raise AzureError(
            404,
            "RoleAssignmentNotFound",
            "The role assignment '{}' is not found.".format(request.path_params["assignment"]),
        )
    return JSONResponse(assignment)


async def role_assignment_delete(request: Request) -> Response:
    store = await _enter(request, "roleAssignments.put")
    scope = "/" + request.path_params["scope"].strip("/")
    assignment_id = (
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{request.path_params['assignment']}"
    )
    async with store.lock:
        assignment = store.world.role_assignments.pop(assignment_id.lower(), None)
        store.save()
    if assignment is None:
        return Response(status_code=204)
    return JSONResponse(assignment)


async def role_assignments_list(request: Request) -> Response:
    store = await _enter(request, "roleAssignments.put")
    scope = "/" + request.path_params["scope"].strip("/")
    value = [
        assignment
        for assignment in store.world.role_assignments.values()
        if assignment["properties"]["scope"].lower() == scope.lower()
    ]
    return JSONResponse({"value": value})


SUB = "/subscriptions/{subscription}"
ACCOUNT = SUB + "/resourceGroups/{resource_group}/providers/Microsoft.CognitiveServices/accounts/{name}"
LOCATION = SUB + "/providers/Microsoft.CognitiveServices/locations/{location}"

routes = [
    Route(ACCOUNT, account_put, methods=["PUT"]),
    Route(ACCOUNT, account_get, methods=["GET"]),
    Route(ACCOUNT, account_delete, methods=["DELETE"]),
    Route(ACCOUNT + "/listKeys", account_list_keys, methods=["POST"]),
    Route(
        SUB + "/resourceGroups/{resource_group}/providers/Microsoft.CognitiveServices/accounts",
        accounts_list,
        methods=["GET"],
    ),
    Route(SUB + "/providers/Microsoft.CognitiveServices/accounts", accounts_list, methods=["GET"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_put, methods=["PUT"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_get, methods=["GET"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_delete, methods=["DELETE"]),
    Route(ACCOUNT + "/deployments", deployments_list, methods=["GET"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_put, methods=["PUT"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_get, methods=["GET"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_delete, methods=["DELETE"]),
    Route(LOCATION + "/models", models_list, methods=["GET"]),
    Route(LOCATION + "/usages", usages_list, methods=["GET"]),
    Route(LOCATION + "/modelCapacities", model_capacities_list, methods=["GET"]),
    Route(
        SUB + "/providers/Microsoft.CognitiveServices/modelCapacities", model_capacities_list, methods=["GET"]
    ),
    Route(LOCATION + "/operationStatuses/{operation}", operation_status, methods=["GET"]),
    Route(
        LOCATION + "/resourceGroups/{resource_group}/deletedAccounts/{name}",
        deleted_account_get,
        methods=["GET"],
    ),
    Route(
        LOCATION + "/resourceGroups/{resource_group}/deletedAccounts/{name}",
        deleted_account_purge,
        methods=["DELETE"],
    ),
    Route(
        SUB + "/providers/Microsoft.CognitiveServices/deletedAccounts", deleted_accounts_list, methods=["GET"]
    ),
    Route(
        "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
        role_assignment_put,
        methods=["PUT"],
    ),
    Route(
        "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
        role_assignment_get,
        methods=["GET"],
    ),
    Route(
        "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
        role_assignment_delete,
        methods=["DELETE"],
    ),
    Route(
        "/{scope:path}/providers/Microsoft.Authorization/roleAssignments",
        role_assignments_list,
        methods=["GET"],
    ),
]
