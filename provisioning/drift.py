"""Drift: what Azure reports differently from what Switchyard's database says, and what Azure
holds in Switchyard's landing zones that no Switchyard deployment uses (leftovers)."""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning.azure import authorization_client, cognitive_services_client
from provisioning.direct_access import role_contradictions
from provisioning.models import LandingZone, LeftoverResource, ModelDeployment, OpenAIAccount
from provisioning.steps.common import IN_PROGRESS

logger = logging.getLogger(__name__)

State = ModelDeployment.State
Kind = LeftoverResource.Kind
Reason = LeftoverResource.Reason


@dataclass(frozen=True)
class Estate:
    """A landing zone's resource group as Azure lists it."""

    accounts: dict[str, Any] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by account, then name
    deleted_accounts: list[Any] = field(default_factory=list)
    # The role assignments that reach each account (at its scope or above), by account name;
    # None when Azure's authorization API could not be read.
    role_assignments: dict[str, list[Any]] | None = None


def deployments_check_drift() -> int:
    """Compare every landing zone's resource group with what Switchyard knows: flag active
    deployments that differ, and record what is left over. Returns how many deployments drifted."""
    drifted = 0
    for zone in LandingZone.objects.all():
        try:
            estate = _read_estate(zone)
        except AzureError as error:
            logger.warning("Drift check of landing zone %s skipped: %s", zone, error)
            continue
        drifted += _compare_active(zone, estate)
        leftovers = _record_leftovers(zone, _find_leftovers(zone, estate))
        if leftovers:
            logger.warning("Landing zone %s has %s leftover resources in Azure", zone, leftovers)
    return drifted


def _read_estate(zone: LandingZone) -> Estate:
    client = cognitive_services_client(zone.subscription_id)
    group = zone.resource_group
    try:
        accounts = {str(account.name): account for account in client.accounts.list_by_resource_group(group)}
    except ResourceNotFoundError:
        return Estate()  # the resource group is gone, and everything in it
    deployments = {
        name: {str(item.name): item for item in client.deployments.list(group, name)} for name in accounts
    }
    deleted = [
        item for item in client.deleted_accounts.list() if _resource_group(item.id or "") == group.lower()
    ]
    return Estate(accounts, deployments, deleted, _read_role_assignments(zone, accounts))


def _read_role_assignments(zone: LandingZone, accounts: dict[str, Any]) -> dict[str, list[Any]] | None:
    authorization = authorization_client(zone.subscription_id)
    try:
        return {
            name: list(authorization.role_assignments.list_for_scope(account.id, filter="atScope()"))
            for name, account in accounts.items()
        }
    except AzureError as error:
        logger.warning("Role assignments of landing zone %s not checked: %s", zone, error)
        return None


def _resource_group(resource_id: str) -> str:
    parts = resource_id.lower().split("/")
    return parts[parts.index("resourcegroups") + 1] if "resourcegroups" in parts else ""


def _compare_active(zone: LandingZone, estate: Estate) -> int:
    now = timezone.now()
    drifted = 0
    active = ModelDeployment.objects.filter(state=State.ACTIVE, landing_zone=zone, account__isnull=False)
    for deployment in active.select_related("account"):
        assert deployment.account is not None
        differences = _differences(
            deployment, estate.deployments.get(deployment.account.name, {}).get(deployment.name)
        )
        deployment.drift = differences or None
        deployment.drift_checked_at = now
        deployment.save(update_fields=["drift", "drift_checked_at"])
        drifted += bool(differences)
    for account in OpenAIAccount.objects.filter(landing_zone=zone, name__in=list(estate.accounts)):
        account.drift = _account_drift(account, estate) or None
        account.save(update_fields=["drift"])
    return drifted


def _account_drift(account: OpenAIAccount, estate: Estate) -> dict[str, Any]:
    """Deployments Azure has on the account that Switchyard does not know, and role assignments
    that contradict the access mode of its deployments (an unread one keeps what was seen)."""
    found: dict[str, Any] = {}
    known = set(ModelDeployment.objects.live().filter(account=account).values_list("name", flat=True))
    extra = sorted(str(name) for name in set(estate.deployments[account.name]) - known)
    if extra:
        found["unknown_deployments"] = extra
    if estate.role_assignments is None:
        previous = (account.drift or {}).get("role_assignments")
        contradictions = previous or []
    else:
        contradictions = role_contradictions(account, estate.role_assignments.get(account.name, []))
    if contradictions:
        found["role_assignments"] = contradictions
    return found


def _differences(deployment: ModelDeployment, azure: Any) -> dict[str, dict[str, Any]]:
    if azure is None:
        return {"exists": {"switchyard": True, "azure": False}}
    differences: dict[str, dict[str, Any]] = {}
    if azure.properties.provisioning_state == "Failed":
        differences["state"] = {"switchyard": deployment.get_state_display(), "azure": "Failed"}
    if azure.sku.capacity != deployment.capacity:
        differences["capacity"] = {"switchyard": deployment.capacity, "azure": azure.sku.capacity}
    if azure.properties.model.version != deployment.model_version:
        differences["model_version"] = {
            "switchyard": deployment.model_version,
            "azure": azure.properties.model.version,
        }
    if azure.sku.name != deployment.sku:
        differences["sku"] = {"switchyard": deployment.sku, "azure": azure.sku.name}
    return differences


# Leftovers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A leftover as this check sees it in Azure."""

    kind: str
    reason: str
    region: str
    account_name: str
    deployment_name: str = ""
    azure_state: str = ""
    model_name: str = ""
    model_version: str = ""
    sku: str = ""
    capacity: int | None = None
    purge_scheduled_at: datetime | None = None
    deployment: ModelDeployment | None = None


def deployment_uses(record: ModelDeployment) -> bool:
    """The Switchyard deployment still stands for its Azure deployment: it is live, or a run
    (its clean-up included) will deal with it."""
    return record.state != State.FAILED or record.is_cleaning_up


def account_in_use(account: OpenAIAccount) -> bool:
    deployments = ModelDeployment.objects
    return (
        deployments.on_account(account).exists()
        or deployments.filter(account=account).runs_under_way().exists()
    )


def _find_leftovers(zone: LandingZone, estate: Estate) -> list[Found]:
    records = {
        (record.account.name, record.name): record
        for record in ModelDeployment.objects.live().filter(landing_zone=zone).select_related("account")
        if record.account is not None
    }
    rows = {row.name: row for row in OpenAIAccount.objects.filter(landing_zone=zone)}
    found = []
    for account_name, deployments in estate.deployments.items():
        for name, azure in deployments.items():
            state = azure.properties.provisioning_state
            record = records.get((account_name, name))
            # Something under way in Azure is some run's doing, not a leftover (yet).
            if state in IN_PROGRESS or (record is not None and deployment_uses(record)):
                continue
            model = azure.properties.model
            found.append(
                Found(
                    Kind.DEPLOYMENT,
                    Reason.FAILED if state == "Failed" else Reason.UNUSED,
                    estate.accounts[account_name].location,
                    account_name,
                    deployment_name=name,
                    azure_state=state or "",
                    model_name=model.name or "",
                    model_version=model.version or "",
                    sku=azure.sku.name if azure.sku else "",
                    capacity=azure.sku.capacity if azure.sku else None,
                    deployment=record,
                )
            )
    found += _leftover_accounts(estate, rows)
    return found


def _leftover_accounts(estate: Estate, rows: dict[str, OpenAIAccount]) -> list[Found]:
    found = []
    for name, account in estate.accounts.items():
        state = account.properties.provisioning_state
        row = rows.get(name)
        if state in IN_PROGRESS or (row is not None and account_in_use(row)):
            continue
        reason = Reason.FAILED if state == "Failed" else Reason.UNUSED
        found.append(Found(Kind.ACCOUNT, reason, account.location, name, azure_state=state or ""))
    for deleted in estate.deleted_accounts:
        row = rows.get(deleted.name)
        if row is not None and account_in_use(row):
            continue  # a run is about to purge it, or to create it afresh
        purge_at = parse_datetime(getattr(deleted.properties, "scheduled_purge_date", None) or "")
        found.append(
            Found(
                Kind.DELETED_ACCOUNT,
                Reason.NOT_PURGED,
                deleted.location,
                deleted.name,
                azure_state="Deleted",
                purge_scheduled_at=purge_at,
            )
        )
    return found


def _record_leftovers(zone: LandingZone, found: list[Found]) -> int:
    """Save what this check found; forget what Azure no longer has (or a deployment uses again),
    except a removal under way, which ends on its own."""
    now = timezone.now()
    seen = []
    for item in found:
        facts = {
            "reason": item.reason,
            "region": item.region,
            "azure_state": item.azure_state,
            "model_name": item.model_name,
            "model_version": item.model_version,
            "sku": item.sku,
            "capacity": item.capacity,
            "purge_scheduled_at": item.purge_scheduled_at,
            "deployment": item.deployment,
            "last_seen_at": now,
        }
        leftover, _ = LeftoverResource.objects.update_or_create(
            landing_zone=zone,
            kind=item.kind,
            account_name=item.account_name,
            deployment_name=item.deployment_name,
            defaults=facts,
            create_defaults={**facts, "first_seen_at": now},
        )
        seen.append(leftover.pk)
    gone = LeftoverResource.objects.filter(landing_zone=zone).exclude(pk__in=seen)
    gone.exclude(state=LeftoverResource.State.REMOVING).delete()
    return len(seen)
