"""A provisioned (PTU) deployment's pay-as-you-go spillover twin: the same model, in the same
landing zone and region, in the token SKU that matches the PTU one's geography, with modest
capacity, linked as its fallback. Calls that find the reserved throughput full (429) spill over
to it; it costs only the tokens that spill over.

A request can ask for one (approvals), and gets it once the request completes."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from provisioning.catalog import catalog_entry_get, quota_left, region_label
from provisioning.fallbacks import fallback_link
from provisioning.models import CatalogEntry, Fallback, ModelDeployment
from provisioning.services import deployment_request_provisioning

Sku = ModelDeployment.Sku
State = ModelDeployment.State

# The token SKUs a PTU SKU spills over to, best first: the same geography, else (for a regional
# PTU whose region does not offer Standard) the region's data zone, which fallbacks may use.
TWIN_SKUS = {
    Sku.PROVISIONED: [Sku.STANDARD, Sku.DATA_ZONE_STANDARD],
    Sku.DATA_ZONE_PROVISIONED: [Sku.DATA_ZONE_STANDARD],
    Sku.GLOBAL_PROVISIONED: [Sku.GLOBAL_STANDARD],
}
# Modest: a twin absorbs bursts, it does not replace the reserved throughput.
TWIN_CAPACITY = 10


class SpilloverRefused(Exception):
    """No twin can be made as asked; the message says why, for the lead."""


@dataclass(frozen=True)
class SpilloverPlan:
    """The twin a PTU deployment would get: its SKU and capacity (K TPM), and the offer."""

    sku: str
    capacity: int
    entry: CatalogEntry

    @property
    def label(self) -> str:
        return f"{dict(Sku.choices).get(self.sku, self.sku)}, {self.capacity}K TPM, pay-as-you-go"


def spillover_plan(
    *, region: str, model_name: str, model_version: str, sku: str, subscription_id: str | None
) -> SpilloverPlan:
    """The twin for a PTU deployment of this model in this region, or a refusal saying why not."""
    if sku not in TWIN_SKUS:
        raise SpilloverRefused(
            "A spillover twin backs up provisioned (PTU) throughput; this SKU is pay-as-you-go already."
        )
    where = region_label(region)
    for twin_sku in TWIN_SKUS[Sku(sku)]:
        entry = catalog_entry_get(
            region=region, model_name=model_name, model_version=model_version, sku=twin_sku
        )
        if entry is None:
            continue
        capacity = max(entry.capacity_minimum, min(entry.capacity_default or TWIN_CAPACITY, TWIN_CAPACITY))
        left = (
            quota_left(subscription_id=subscription_id, region=region, usage_name=entry.usage_name)
            if subscription_id
            else None
        )
        if left is not None and left < Decimal(capacity):
            raise SpilloverRefused(
                f"{where} has {left.normalize():f}K TPM of {model_name} ({twin_sku}) left in this "
                f"subscription; a spillover twin needs {capacity}K TPM."
            )
        return SpilloverPlan(twin_sku, capacity, entry)
    raise SpilloverRefused(
        f"{where} offers {model_name} {model_version} in no pay-as-you-go SKU within the same data zone, "
        "so there is nothing to spill over to."
    )


def spillover_twin_of(primary: ModelDeployment) -> ModelDeployment | None:
    """The live pay-as-you-go twin among the deployment's fallbacks, if it has one."""
    links = Fallback.objects.filter(
        deployment=primary,
        fallback__landing_zone_id=primary.landing_zone_id,
        fallback__region=primary.region,
        fallback__model_name=primary.model_name,
        fallback__model_version=primary.model_version,
        fallback__sku__in=[Sku.STANDARD, Sku.DATA_ZONE_STANDARD, Sku.GLOBAL_STANDARD],
    ).exclude(fallback__state__in=[State.DECOMMISSIONED, State.FAILED])
    link = links.select_related("fallback").order_by("position").first()
    return link.fallback if link else None


def spillover_twin_create(*, primary: ModelDeployment, note: str) -> ModelDeployment:
    """Create the twin of `primary`, start provisioning it, and make it the primary's next
    fallback (on Switchyard's own account, audited). A twin it has already is returned."""
    existing = spillover_twin_of(primary)
    if existing is not None:
        return existing
    plan = spillover_plan(
        region=primary.region,
        model_name=primary.model_name,
        model_version=primary.model_version,
        sku=primary.sku,
        subscription_id=primary.landing_zone.subscription_id,
    )
    with transaction.atomic():
        twin = ModelDeployment.objects.create(
            department=primary.department,
            scope=primary.scope,
            display_name=f"{primary.display_name[:108]} (spillover)",
            system_prompt=primary.system_prompt,
            data_classification=primary.data_classification,
            landing_zone=primary.landing_zone,
            region=primary.region,
            network_mode=primary.network_mode,
            name=f"{primary.name[:58]}-spill",
            model_name=primary.model_name,
            model_version=primary.model_version,
            sku=plan.sku,
            capacity=plan.capacity,
            content_filter=primary.content_filter,
        )
        refusal = fallback_link(deployment=primary, fallback=twin, note=note)
        if refusal is not None:
            raise SpilloverRefused(refusal)
        return deployment_request_provisioning(deployment=twin)
