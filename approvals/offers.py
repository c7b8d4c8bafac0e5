"""What a new deployment can be chosen from: the synced catalog's offers in the regions its
landing zone allows, each choice narrowing the next (region, then model, version and SKU)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from approvals.spec import TEXT_LIMITS, readable_text
from provisioning.catalog import catalog_offers
from provisioning.models import CatalogEntry, LandingZone

# What each choice falls back to when nothing (or nothing on offer) is chosen: the first option
# unless the preferred one is offered.
PREFERRED = {"region": "", "model_name": "gpt-4o-mini", "model_version": "", "sku": "GlobalStandard"}
OFFER_FIELDS = tuple(PREFERRED)
# The capacity a new deployment starts from, at most: small enough to fit most quotas.
SUGGESTED_CAPACITY = 20
CATALOG_NOT_SYNCED = (
    "The model catalog for this landing zone has not been synced yet, so nothing can be "
    "checked. A platform admin can sync it from Administration → Catalog entries."
)


@dataclass(frozen=True)
class OfferChoices:
    """The options of each choice, given the choices before it, and the values chosen."""

    regions: list[str]
    models: list[str]
    versions: list[str]
    skus: list[str]
    chosen: dict[str, str]
    entry: CatalogEntry | None
    catalog_missing: bool

    @property
    def provisioned(self) -> bool:
        return self.chosen["sku"].endswith("ProvisionedManaged")

    @property
    def suggested_capacity(self) -> int | None:
        default = self.entry.capacity_default if self.entry is not None else None
        return min(default, SUGGESTED_CAPACITY) if default else None


def offer_choices(*, zone: LandingZone | None, wanted: Mapping[str, Any], as_submitted: bool) -> OfferChoices:
    """The choices for the values `wanted` (by field name). Each wanted value stays when it is on
    offer; otherwise the preferred or first option takes its place, unless `as_submitted`: then
    it stays whatever it is (when it can be read as text), so the checks can say why it does not
    fit, or that it is missing."""
    regions = list(zone.allowed_regions) if zone else []
    # Retired versions stay on offer: Azure keeps serving them a while, and the form warns instead.
    offers = list(catalog_offers(regions=regions))
    offered_regions = [region for region in regions if any(o.region == region for o in offers)]

    def settle(name: str, options: list[str]) -> str:
        if as_submitted:
            return readable_text(wanted.get(name), TEXT_LIMITS[name])
        current = wanted.get(name)
        if current and current in options:
            return str(current)
        return PREFERRED[name] if PREFERRED[name] in options else (options[0] if options else "")

    region = settle("region", offered_regions or regions)
    in_region = [o for o in offers if o.region == region]
    models = sorted({o.model_name for o in in_region})
    model = settle("model_name", models)
    versions = sorted({o.model_version for o in in_region if o.model_name == model}, reverse=True)
    version = settle("model_version", versions)
    skus = sorted({o.sku for o in in_region if o.model_name == model and o.model_version == version})
    sku = settle("sku", skus)
    entry = next(
        (o for o in in_region if (o.model_name, o.model_version, o.sku) == (model, version, sku)), None
    )
    return OfferChoices(
        regions=offered_regions or regions,
        models=models,
        versions=versions,
        skus=skus,
        chosen={"region": region, "model_name": model, "model_version": version, "sku": sku},
        entry=entry,
        catalog_missing=not offers,
    )
