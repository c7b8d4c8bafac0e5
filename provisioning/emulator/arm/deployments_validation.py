"""The rules a deployment PUT must pass, each raising the error Azure answers with: the name,
the account's state, the model and SKU the region offers, the capacity the SKU allows, the
quota left and the content filter policy."""

import re
from typing import Any

from provisioning.emulator.arm.quota import quota_limit, quota_used
from provisioning.emulator.catalog import Catalog, Offer
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import Store

DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
# States in which a deployment is still changing and refuses another PUT.
BUSY_STATES = {"Creating", "Updating", "Deleting"}
BUILT_IN_RAI_POLICIES = {"Microsoft.Default", "Microsoft.DefaultV2"}


def check_deployment_name(name: str) -> None:
    if not DEPLOYMENT_NAME.match(name):
        raise AzureError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 64 characters long, and can contain only alphanumeric characters, periods, underscores and hyphens.",
        )


def check_account_ready(account: dict[str, Any], account_name: str) -> None:
    state = account["properties"]["provisioningState"]
    if state != "Succeeded":
        raise AzureError(
            409,
            "Conflict",
            f"The account '{account_name}' is in state {state}; deployments can be created once it has succeeded.",
        )


def requested_offer(
    catalog: Catalog, account: dict[str, Any], body: dict[str, Any]
) -> tuple[Offer, dict[str, Any], int]:
    """The offer the body asks for in the account's region, the model as the deployment records
    it and the capacity."""
    location = account["location"]
    sku = body.get("sku") or {}
    sku_name = sku.get("name")
    model = (body.get("properties") or {}).get("model") or {}
    version = model.get("version")
    model_name = check_model(catalog, model.get("name"), version, model.get("format", "OpenAI"))
    offer = catalog.find(location, name=model_name, version=version, sku=str(sku_name))
    if offer is None:
        raise AzureError(
            400,
            "InvalidResourceProperties",
            f"The specified SKU '{sku_name}' for model '{model_name} {version or ''}' is not supported in this region '{location}'.",
        )
    capacity = sku.get("capacity", 1)
    check_capacity(offer, capacity, sku_name, model_name)
    return offer, {"format": "OpenAI", "name": model_name, "version": offer.model["version"]}, capacity


def check_model(catalog: Catalog, name: Any, version: Any, model_format: Any) -> str:
    """The model's name, once the catalog knows the model and the version asked for."""
    if not name or model_format != "OpenAI":
        raise AzureError(
            400,
            "InvalidResourceProperties",
            "The specified deployment model is invalid: properties.model needs format 'OpenAI' and a name.",
        )
    if not catalog.model_versions(name):
        raise AzureError(
            400,
            "DeploymentModelNotSupported",
            f"The model '{name}' is not supported. Please check the available models with the models API.",
        )
    if version and version not in catalog.model_versions(name):
        raise AzureError(
            400,
            "InvalidResourceProperties",
            f"The specified model version '{version}' of model '{name}' is not supported. Supported versions: {', '.join(catalog.model_versions(name))}.",
        )
    return str(name)


def check_capacity(offer: Offer, capacity: Any, sku_name: Any, model_name: Any) -> None:
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


def check_deployment_not_busy(existing: dict[str, Any] | None, name: str) -> None:
    if existing is not None and existing["properties"]["provisioningState"] in BUSY_STATES:
        raise AzureError(
            409,
            "Conflict",
            f"Another operation is being performed on the deployment '{name}'. Please retry after the operation is complete.",
        )


def check_deployment_quota(
    store: Store,
    catalog: Catalog,
    subscription: str,
    account: dict[str, Any],
    offer: Offer,
    capacity: int,
    deployment_id: str,
) -> None:
    """The capacity fits the quota left, counting the deployment's own capacity as free."""
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


def check_rai_policy(store: Store, account: dict[str, Any], rai_policy: Any) -> None:
    if rai_policy not in BUILT_IN_RAI_POLICIES and rai_policy not in store.world.rai_policies.get(
        account["id"].lower(), {}
    ):
        raise AzureError(
            400,
            "InvalidRaiPolicy",
            f"The RAI policy '{rai_policy}' does not exist on account '{account['name']}'.",
        )
