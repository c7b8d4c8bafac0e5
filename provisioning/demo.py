"""The demo Azure estate: central IT's shared landing zone, Marketing's own subscription, and the
shared "Company assistant" granted to every department."""

from django.db import transaction

from org.models import Department
from provisioning.models import AccessGrant, LandingZone, ModelDeployment
from provisioning.services import deployment_request_provisioning
from provisioning.tasks import catalog_sync_task

# Give `make run`'s emulator a moment to listen before the first sync.
CATALOG_SYNC_DELAY_SECONDS = 5
DEMO_SUBSCRIPTIONS = {
    "central": "8a3f6c2e-1b4d-4e5f-9a6b-7c8d9e0f1a2b",
    "marketing": "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f",
}
COMPANY_ASSISTANT_PROMPT = (
    "You are the company assistant. Answer clearly and briefly, use Markdown for lists and code, "
    "and say so when you are not sure. Never ask for passwords or customer personal data."
)


def seed_estate(departments: dict[str, Department]) -> ModelDeployment:
    """Create the landing zones and the shared deployment; ask the worker to provision it
    (after commit) unless it is already there. Safe to run again."""
    central, _ = LandingZone.objects.update_or_create(
        slug="central",
        defaults={
            "name": "Central IT shared",
            "subscription_id": DEMO_SUBSCRIPTIONS["central"],
            "resource_group": "rg-switchyard-shared",
            "allowed_regions": ["swedencentral", "westeurope", "eastus2"],
            "owner_department": None,
        },
    )
    LandingZone.objects.update_or_create(
        slug="marketing",
        defaults={
            "name": "Marketing subscription",
            "subscription_id": DEMO_SUBSCRIPTIONS["marketing"],
            "resource_group": "rg-marketing-ai",
            "allowed_regions": ["swedencentral", "francecentral"],
            "owner_department": departments["marketing"],
        },
    )
    assistant, _ = ModelDeployment.objects.live().get_or_create(
        landing_zone=central,
        region="swedencentral",
        name="company-assistant",
        defaults={
            "department": departments["central-it"],
            "scope": ModelDeployment.Scope.SHARED,
            "display_name": "Company assistant",
            # What applications name it through the gateway (the demo API key calls it).
            "gateway_name": "company-assistant",
            "system_prompt": COMPANY_ASSISTANT_PROMPT,
            "model_name": "gpt-4o-mini",
            "model_version": "2024-07-18",
            "sku": ModelDeployment.Sku.GLOBAL_STANDARD,
            "capacity": 50,
        },
    )
    for department in departments.values():
        AccessGrant.objects.get_or_create(deployment=assistant, department=department)
    # The request form needs the catalog and quota; beat's hourly sync would come too late.
    transaction.on_commit(lambda: catalog_sync_task.apply_async(countdown=CATALOG_SYNC_DELAY_SECONDS))
    return deployment_request_provisioning(deployment=assistant)
