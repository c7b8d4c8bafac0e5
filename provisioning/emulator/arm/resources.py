"""What the ARM resources share: resource ids, timestamps and systemData as Azure writes them, an
account as callers see it, and the app's store and catalog."""

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from provisioning.emulator.catalog import Catalog
from provisioning.emulator.errors import not_found
from provisioning.emulator.state import Store, now

PROVIDER = "Microsoft.CognitiveServices"


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def account_resource_id(subscription: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{PROVIDER}/accounts/{name}"
    )


def deleted_account_resource_id(account: dict[str, Any]) -> str:
    subscription = account["id"].split("/")[2]
    resource_group = account["id"].split("/")[4]
    return (
        f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{account['location']}"
        f"/resourceGroups/{resource_group}/deletedAccounts/{account['name']}"
    )


def system_data(caller: dict[str, Any]) -> dict[str, Any]:
    stamp = iso(now())
    who = str(caller.get("oid") or caller.get("sub") or "unknown")
    return {
        "createdBy": who,
        "createdByType": "Application",
        "createdAt": stamp,
        "lastModifiedBy": who,
        "lastModifiedByType": "Application",
        "lastModifiedAt": stamp,
    }


def public_account(account: dict[str, Any]) -> dict[str, Any]:
    """The account without what only the emulator keeps (its keys)."""
    return {key: value for key, value in account.items() if not key.startswith("_")}


def live_account(store: Store, subscription: str, resource_group: str, name: str) -> dict[str, Any]:
    account = store.world.accounts.get(account_resource_id(subscription, resource_group, name).lower())
    if account is None:
        raise not_found(f"{PROVIDER}/accounts", name)
    return account
