"""Before a run creates anything in Azure: does the region offer the model in this SKU, and does
its quota hold the capacity asked for? A refusal here leaves nothing behind to clean up."""

from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

from provisioning.azure_errors import PermanentAzureError, azure_call, explain
from provisioning.catalog import region_label
from provisioning.models import ModelDeployment


def preflight(deployment: ModelDeployment, client: CognitiveServicesManagementClient) -> None:
    """Refuse, in a lead's words, what the region does not offer or its quota cannot hold."""
    region = deployment.region
    usage_name = _usage_name(deployment, client)
    if usage_name is None:
        raise _refusal(
            deployment, "DeploymentModelNotSupported", f"{region_label(region)} does not offer it."
        )
    usages = azure_call(deployment, "read the region's quota", lambda: list(client.usages.list(region)))
    quota = next((usage for usage in usages if usage.name.value == usage_name), None)
    if quota is not None and quota.current_value + deployment.capacity > quota.limit:
        available = max(quota.limit - quota.current_value, 0)
        raise _refusal(deployment, "InsufficientQuota", f"current available capacity {available:g}")


def _usage_name(deployment: ModelDeployment, client: CognitiveServicesManagementClient) -> str | None:
    """The quota the deployment counts against, if the region offers its model in its SKU."""
    models = azure_call(
        deployment, "read the region's models", lambda: list(client.models.list(deployment.region))
    )
    return next(
        (
            sku.usage_name
            for offer in models
            if offer.model.name == deployment.model_name and offer.model.version == deployment.model_version
            for sku in offer.model.skus or []
            if sku.name == deployment.sku
        ),
        None,
    )


def _refusal(deployment: ModelDeployment, code: str, message: str) -> PermanentAzureError:
    # Worded as Azure's own refusal of the deployment would be.
    return PermanentAzureError(
        explain(deployment, "create the deployment", 400, code, message), code=code, created_nothing=True
    )
