"""Drift: what Azure reports differently from what Switchyard's database says."""

import logging
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from django.utils import timezone

from provisioning.azure import cognitive_services_client
from provisioning.models import ModelDeployment

logger = logging.getLogger(__name__)

State = ModelDeployment.State


def deployments_check_drift() -> int:
    """Compare active deployments with what Azure reports; flag what differs. Returns how many
    deployments drifted."""
    drifted = 0
    active = ModelDeployment.objects.filter(state=State.ACTIVE).select_related("account", "landing_zone")
    by_account: dict[int, list[ModelDeployment]] = {}
    for deployment in active:
        if deployment.account is not None:
            by_account.setdefault(deployment.account.pk, []).append(deployment)
    for deployments in by_account.values():
        account = deployments[0].account
        assert account is not None
        zone = account.landing_zone
        client = cognitive_services_client(zone.subscription_id)
        try:
            in_azure = {
                item.name: item for item in client.deployments.list(zone.resource_group, account.name)
            }
        except ResourceNotFoundError:
            in_azure = {}
        except HttpResponseError as error:
            logger.warning("Drift check of %s skipped: %s", account.name, error)
            continue
        now = timezone.now()
        for deployment in deployments:
            differences = _differences(deployment, in_azure.get(deployment.name))
            deployment.drift = differences or None
            deployment.drift_checked_at = now
            deployment.save(update_fields=["drift", "drift_checked_at"])
            drifted += bool(differences)
        known = {deployment.name for deployment in ModelDeployment.objects.live().filter(account=account)}
        extra = sorted(str(name) for name in set(in_azure) - known)
        account.drift = {"unknown_deployments": extra} if extra else None
        account.save(update_fields=["drift"])
    return drifted


def _differences(deployment: ModelDeployment, azure: Any) -> dict[str, dict[str, Any]]:
    if azure is None:
        return {"exists": {"switchyard": True, "azure": False}}
    differences = {}
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
