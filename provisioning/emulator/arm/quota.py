"""Quota as Azure counts it: capacity per subscription, region and usage name (live deployments
and those of soft-deleted accounts), and accounts per region and kind."""

from typing import Any

from provisioning.emulator.catalog import Catalog, Offer
from provisioning.emulator.control import quota_key
from provisioning.emulator.state import Store

SUPPORTED_ACCOUNT_KINDS = {"OpenAI", "AIServices"}

# Accounts per region and kind, as usages.list reports them.
ACCOUNT_COUNTS = {
    "OpenAI.S0.AccountCount": {"OpenAI"},
    "AIServices.S0.AccountCount": {"AIServices"},
    "AccountCount": SUPPORTED_ACCOUNT_KINDS,
}


def account_count(store: Store, subscription: str, location: str, kinds: set[str]) -> int:
    return sum(
        1
        for account in store.world.accounts.values()
        if account["location"] == location
        and account["kind"] in kinds
        and account["id"].split("/")[2].lower() == subscription.lower()
    )


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
