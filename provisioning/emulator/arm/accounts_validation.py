"""The rules an account PUT must pass, each raising the error Azure answers with.

`parse_account_put` makes the checks that need only the request; the others need the world and
run under the store's lock, in the order Azure makes them.
"""

import re
from dataclasses import dataclass
from typing import Any

from provisioning.emulator.arm.quota import SUPPORTED_ACCOUNT_KINDS, account_count
from provisioning.emulator.arm.resources import PROVIDER, account_resource_id
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import Store

ACCOUNT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
SUBDOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$")
# States in which an account is still changing and refuses another PUT.
BUSY_STATES = {"Creating", "Accepted", "Deleting"}


@dataclass(frozen=True)
class AccountPut:
    """An account PUT that passed the checks needing only the request."""

    subscription: str
    resource_group: str
    name: str
    location: str  # normalised: "Sweden Central" is swedencentral
    kind: str
    body: dict[str, Any]

    @property
    def properties(self) -> dict[str, Any]:
        return self.body.get("properties") or {}

    @property
    def subdomain(self) -> Any:
        """customSubDomainName as sent; None when absent."""
        return self.properties.get("customSubDomainName")

    @property
    def resource_id(self) -> str:
        return account_resource_id(self.subscription, self.resource_group, self.name)


def parse_account_put(params: dict[str, Any], body: dict[str, Any], catalog: Catalog) -> AccountPut:
    name = params["name"]
    check_account_name(name)
    location = check_location(body, catalog)
    kind = check_kind(body.get("kind"))
    check_sku(body.get("sku"), kind)
    wanted = AccountPut(params["subscription"], params["resource_group"], name, location, kind, body)
    check_subdomain_syntax(wanted.subdomain)
    return wanted


def check_account_name(name: str) -> None:
    if not ACCOUNT_NAME.match(name):
        raise AzureError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 64 characters long, and can contain only alphanumeric characters, periods, underscores and hyphens, starting with an alphanumeric character.",
        )


def check_location(body: dict[str, Any], catalog: Catalog) -> str:
    location = str(body.get("location", "")).replace(" ", "").lower()
    if location not in catalog.regions:
        raise AzureError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{body.get('location')}' is not available for resource type '{PROVIDER}/accounts'. List of available regions for the resource type is '{','.join(catalog.regions)}'.",
        )
    return location


def check_kind(kind: Any) -> str:
    if kind not in SUPPORTED_ACCOUNT_KINDS:
        raise AzureError(
            400,
            "InvalidApiSetId",
            f"The account type '{kind}' is either invalid or unavailable in given region.",
        )
    return str(kind)


def check_sku(sku: Any, kind: str) -> None:
    name = (sku or {}).get("name")
    if name != "S0":
        raise AzureError(
            400,
            "InvalidSkuId",
            f"The sku '{name}' is either invalid or unavailable for account type '{kind}'.",
        )


def check_subdomain_syntax(subdomain: Any) -> None:
    if subdomain is not None and not SUBDOMAIN.match(str(subdomain)):
        raise AzureError(
            400,
            "InvalidSubdomainName",
            f"The custom subdomain name '{subdomain}' is invalid. It must be 2 to 64 alphanumeric characters or hyphens, starting and ending with an alphanumeric character.",
        )


def check_restore_flag(wanted: AccountPut) -> None:
    """A name held by a soft-deleted account is taken back only on purpose."""
    if wanted.properties.get("restore") is not True:
        raise AzureError(
            409,
            "FlagMustBeSetForRestore",
            f"An existing resource with ID '{wanted.resource_id}' has been soft-deleted. To restore the resource, you must specify 'restore' property as 'true'. Otherwise, please purge it first.",
        )


def check_account_changeable(existing: dict[str, Any] | None, wanted: AccountPut) -> None:
    """An account that is still changing, or lives in another region, refuses the PUT."""
    if existing is None:
        return
    if existing["properties"]["provisioningState"] in BUSY_STATES:
        raise AzureError(
            409,
            "Conflict",
            f"Another operation is being performed on the resource '{wanted.name}'. Please retry after the operation is complete.",
        )
    if existing["location"] != wanted.location:
        raise AzureError(
            409,
            "InvalidResourceLocation",
            f"The resource '{wanted.name}' already exists in location '{existing['location']}' in resource group '{wanted.resource_group}'. A resource with the same name cannot be created in location '{wanted.location}'. Please select a new resource name.",
        )


def check_subdomain_free(store: Store, subdomain: str, account_id: str) -> None:
    """A subdomain belongs to one account, also while that account is soft-deleted."""
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


def check_account_quota(store: Store, catalog: Catalog, wanted: AccountPut) -> None:
    usage_name = f"{wanted.kind}.S0.AccountCount"
    limit = catalog.data["accountQuotas"][usage_name]
    if account_count(store, wanted.subscription, wanted.location, {wanted.kind}) >= limit:
        raise AzureError(
            400,
            "InsufficientQuota",
            f"The subscription has reached its limit of {limit} {wanted.kind} S0 accounts in region '{wanted.location}' ({catalog.localized_usage_name(usage_name)}).",
        )
