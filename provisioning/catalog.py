"""What Azure offers where, how much quota is left, and what it costs.

The catalog (`CatalogEntry`) and quota (`Quota`) mirror Azure's `models.list` and `usages.list`
per region; beat refreshes them hourly and admins can from the landing zone admin. Prices ship
as provisioning/data/prices.json and admins edit them; a price change is a new row with a later
`valid_from`, so past usage keeps the price that was in force.
"""

import functools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import CallRateLimit, Model, ModelSku, Usage
from django.db import transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.services import audit_record
from org.models import User
from provisioning.azure import cognitive_services_client
from provisioning.models import CatalogEntry, LandingZone, ModelDeployment, Price, Quota

logger = logging.getLogger(__name__)

PRICES_FILE = Path(__file__).resolve().parent / "data" / "prices.json"
# Azure's regions with the names people know them by, shipped with the catalog the emulator serves.
CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"

# Switchyard deploys chat and embedding models in the SKUs a request can ask for; image, audio,
# completion-only models and SKUs such as GlobalBatch are not offered.
DEPLOYABLE_SKUS = frozenset(ModelDeployment.Sku.values)
RELEVANT_CAPABILITIES = ("chatCompletion", "embeddings")
# The accounts Switchyard creates are of kind OpenAI; Azure lists the same OpenAI models again
# under kind AIServices.
ACCOUNT_KIND = "OpenAI"
MODEL_FORMAT = "OpenAI"

# The sync runs hourly and its Celery task retries a failed run, so a region that keeps failing
# gives up after a few quick retries instead of holding a worker (or an admin's request) for
# minutes, as azure-core's default of 10 retries with exponential backoff would.
SYNC_RETRY_OPTIONS: dict[str, Any] = {"retry_total": 3}

CATALOG_KEY = ["region", "model_name", "model_version", "sku"]
CATALOG_VALUES = [
    "usage_name",
    "lifecycle_status",
    "is_default_version",
    "capacity_minimum",
    "capacity_maximum",
    "capacity_step",
    "capacity_default",
    "requests_per_minute_per_unit",
    "retirement_date",
    "synced_at",
]
QUOTA_KEY = ["subscription_id", "region", "usage_name"]
QUOTA_VALUES = ["display_name", "current_value", "limit", "synced_at"]
PRICE_KEY = ["model_name", "model_version", "sku", "valid_from"]
PRICE_VALUES = [
    "input_per_million",
    "cached_input_per_million",
    "output_per_million",
    "ptu_per_hour",
    "source",
]
CENTS = Decimal("0.01")


# Sync ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionFailure:
    subscription_id: str
    region: str
    message: str


@dataclass
class CatalogSyncResult:
    """What a sync did: regions synced, rows written and removed, and the regions that failed."""

    regions: list[str] = field(default_factory=list)
    entries: int = 0
    entries_removed: int = 0
    quotas: int = 0
    failures: list[RegionFailure] = field(default_factory=list)
    # The offers that came and went, by region: "model version (SKU)".
    offers_added: dict[str, list[str]] = field(default_factory=dict)
    offers_removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed_regions(self) -> list[str]:
        return [failure.region for failure in self.failures]

    def summary(self) -> str:
        parts = []
        if self.regions:
            parts.append(
                f"Synced {self.entries} catalog entries and {self.quotas} quotas "
                f"in {', '.join(dict.fromkeys(self.regions))}"
                + (
                    f"; removed {self.entries_removed} that Azure no longer offers."
                    if self.entries_removed
                    else "."
                )
            )
        if self.failures:
            parts.append(
                "Not synced: "
                + "; ".join(f"{failure.region} ({failure.message})" for failure in self.failures)
                + ". Their last synced figures are kept."
            )
        return " ".join(parts) or "No regions to sync."


def catalog_sync(*, landing_zone: LandingZone, actor: User | None = None) -> CatalogSyncResult:
    """Refresh the catalog and the subscription's quota in every region the zone allows."""
    result = _regions_sync(
        subscription_regions=[
            (landing_zone.subscription_id, region) for region in landing_zone.allowed_regions
        ]
    )
    _sync_record(zones=[landing_zone], result=result, actor=actor)
    return result


def catalog_sync_all() -> CatalogSyncResult:
    """Refresh every landing zone's regions; each subscription's quota once per region."""
    zones = list(
        LandingZone.objects.order_by("pk").only(
            "name", "subscription_id", "allowed_regions", "owner_department_id"
        )
    )
    result = _regions_sync(
        subscription_regions=[
            (zone.subscription_id, region) for zone in zones for region in zone.allowed_regions
        ]
    )
    _sync_record(zones=zones, result=result, actor=None)
    return result


def _sync_record(*, zones: list[LandingZone], result: CatalogSyncResult, actor: User | None) -> None:
    """Audit, per landing zone, the offers that came and went in its regions (and the regions
    that failed). A scheduled sync that changed nothing is not an event; one asked for is."""
    for zone in zones:
        added = {
            region: result.offers_added[region]
            for region in zone.allowed_regions
            if region in result.offers_added
        }
        removed = {
            region: result.offers_removed[region]
            for region in zone.allowed_regions
            if region in result.offers_removed
        }
        failed = [failure.region for failure in result.failures if failure.region in zone.allowed_regions]
        if not (added or removed or failed or actor):
            continue
        audit_record(
            actor=actor,
            verb="catalog.synced",
            target=zone,
            department=zone.owner_department,
            after={"offers_added": added, "offers_removed": removed, "regions_failed": failed},
            note=result.summary(),
        )


def _regions_sync(*, subscription_regions: Iterable[tuple[str, str]]) -> CatalogSyncResult:
    result = CatalogSyncResult()
    catalog_done: set[str] = set()
    by_subscription: dict[str, list[str]] = {}
    for subscription_id, region in dict.fromkeys(subscription_regions):
        by_subscription.setdefault(subscription_id, []).append(region)
    for subscription_id, regions in by_subscription.items():
        with cognitive_services_client(subscription_id) as client:
            for region in regions:
                # The catalog is per region: one subscription's answer is enough per run.
                with_catalog = region not in catalog_done
                if _region_sync(
                    client=client,
                    subscription_id=subscription_id,
                    region=region,
                    with_catalog=with_catalog,
                    result=result,
                ):
                    catalog_done.add(region)
    return result


def _region_sync(
    *,
    client: CognitiveServicesManagementClient,
    subscription_id: str,
    region: str,
    with_catalog: bool,
    result: CatalogSyncResult,
) -> bool:
    """Sync one region; on an Azure error record it and leave the region's rows as they were."""
    try:
        # Read everything first: no database transaction stays open while Azure answers.
        models = list(client.models.list(region, **SYNC_RETRY_OPTIONS)) if with_catalog else []
        usages = list(client.usages.list(region, **SYNC_RETRY_OPTIONS))
    except AzureError as error:
        logger.warning("Catalog sync of %s for subscription %s failed: %s", region, subscription_id, error)
        result.failures.append(RegionFailure(subscription_id, region, _azure_error_text(error)))
        return False
    synced_at = timezone.now()
    with transaction.atomic():
        if with_catalog:
            entries = _catalog_entries(region=region, models=models, synced_at=synced_at)
            result.entries += len(entries)
            added, removed = _catalog_region_replace(region=region, entries=entries)
            result.entries_removed += len(removed)
            if added:
                result.offers_added[region] = added
            if removed:
                result.offers_removed[region] = removed
        quotas = _quotas(subscription_id=subscription_id, region=region, usages=usages, synced_at=synced_at)
        result.quotas += len(quotas)
        _quota_region_replace(subscription_id=subscription_id, region=region, quotas=quotas)
    result.regions.append(region)
    return True


def _azure_error_text(error: AzureError) -> str:
    if isinstance(error, HttpResponseError) and error.error is not None and error.error.message:
        return f"{error.error.code}: {error.error.message}" if error.error.code else error.error.message
    return (error.message or str(error)).splitlines()[0]


def _catalog_entries(*, region: str, models: Iterable[Model], synced_at: datetime) -> list[CatalogEntry]:
    entries: dict[tuple[str, str, str], CatalogEntry] = {}
    for offer in models:
        model = offer.model
        if offer.kind != ACCOUNT_KIND or model is None or model.format != MODEL_FORMAT:
            continue
        if not model.name or not model.version or not _is_relevant(model.capabilities):
            continue
        deprecation = model.deprecation.inference if model.deprecation else None
        for sku in model.skus or []:
            if sku.name not in DEPLOYABLE_SKUS or not sku.usage_name:
                continue
            # Azure may list an offer twice; the database upsert must see each key once.
            entries[(model.name, model.version, sku.name)] = CatalogEntry(
                region=region,
                model_name=model.name,
                model_version=model.version,
                sku=sku.name,
                usage_name=sku.usage_name,
                lifecycle_status=model.lifecycle_status or "",
                is_default_version=bool(model.is_default_version),
                **_capacity(sku),
                requests_per_minute_per_unit=_requests_per_minute(sku.rate_limits),
                max_context_tokens=_positive(model.capabilities, "maxContextToken"),
                max_output_tokens=_positive(model.capabilities, "maxOutputToken"),
                retirement_date=_as_datetime(deprecation) or sku.deprecation_date,
                synced_at=synced_at,
            )
    return list(entries.values())


def _is_relevant(capabilities: dict[str, str] | None) -> bool:
    return any((capabilities or {}).get(name, "").lower() == "true" for name in RELEVANT_CAPABILITIES)


def _positive(capabilities: dict[str, str] | None, name: str) -> int | None:
    value = (capabilities or {}).get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _capacity(sku: ModelSku) -> dict[str, int | None]:
    capacity = sku.capacity
    return {
        "capacity_minimum": (capacity.minimum if capacity else None) or 1,
        "capacity_maximum": capacity.maximum if capacity else None,
        "capacity_step": (capacity.step if capacity else None) or 1,
        "capacity_default": capacity.default if capacity else None,
    }


def _requests_per_minute(rate_limits: list[CallRateLimit] | None) -> Decimal | None:
    # The SDK's CallRateLimit has no field for the limit's "key" (request / token); it arrives
    # in additional_properties.
    for limit in rate_limits or []:
        if (limit.additional_properties or {}).get("key") != "request":
            continue
        if limit.count is None or not limit.renewal_period:
            return None
        per_minute = Decimal(str(limit.count)) * 60 / Decimal(str(limit.renewal_period))
        return per_minute.quantize(CENTS)
    return None


def _as_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def _catalog_region_replace(*, region: str, entries: list[CatalogEntry]) -> tuple[list[str], list[str]]:
    """Upsert the region's offers and delete the ones Azure no longer lists; returns the offers
    added and removed."""
    known = set(CatalogEntry.objects.filter(region=region).values_list("model_name", "model_version", "sku"))
    if entries:
        CatalogEntry.objects.bulk_create(
            entries, update_conflicts=True, unique_fields=CATALOG_KEY, update_fields=CATALOG_VALUES
        )
    listed = {(entry.model_name, entry.model_version, entry.sku) for entry in entries}
    stale = {
        (model_name, model_version, sku): pk
        for pk, model_name, model_version, sku in CatalogEntry.objects.filter(region=region).values_list(
            "pk", "model_name", "model_version", "sku"
        )
        if (model_name, model_version, sku) not in listed
    }
    if stale:
        CatalogEntry.objects.filter(pk__in=stale.values()).delete()
    return _offer_labels(listed - known), _offer_labels(set(stale))


def _offer_labels(offers: Iterable[tuple[str, str, str]]) -> list[str]:
    return [f"{model_name} {model_version} ({sku})" for model_name, model_version, sku in sorted(offers)]


def _quotas(
    *, subscription_id: str, region: str, usages: Iterable[Usage], synced_at: datetime
) -> list[Quota]:
    quotas: dict[str, Quota] = {}
    for usage in usages:
        if usage.name is None or not usage.name.value:
            continue
        quotas[usage.name.value] = Quota(
            subscription_id=subscription_id,
            region=region,
            usage_name=usage.name.value,
            display_name=usage.name.localized_value or "",
            current_value=Decimal(str(usage.current_value or 0)),
            limit=Decimal(str(usage.limit or 0)),
            synced_at=synced_at,
        )
    return list(quotas.values())


def _quota_region_replace(*, subscription_id: str, region: str, quotas: list[Quota]) -> None:
    if quotas:
        Quota.objects.bulk_create(
            quotas, update_conflicts=True, unique_fields=QUOTA_KEY, update_fields=QUOTA_VALUES
        )
    Quota.objects.filter(subscription_id=subscription_id, region=region).exclude(
        usage_name__in=[quota.usage_name for quota in quotas]
    ).delete()


# What a request form asks ---------------------------------------------------------------------


def catalog_offers(*, regions: Iterable[str], exclude_retired: bool = False) -> QuerySet[CatalogEntry]:
    """The offers in these regions. Retired ones stay unless asked: Azure keeps serving a model
    for a while after its planned retirement date, so the form should warn rather than hide."""
    offers = CatalogEntry.objects.filter(region__in=list(regions))
    if exclude_retired:
        offers = offers.filter(Q(retirement_date__isnull=True) | Q(retirement_date__gt=timezone.now()))
    return offers


@functools.cache
def _regions() -> dict[str, dict[str, Any]]:
    data = json.loads(CATALOG_FILE.read_text())
    return {region["name"]: region for region in data["regions"]}


@functools.cache
def _region_names() -> dict[str, str]:
    return {name: region["displayName"] for name, region in _regions().items()}


@dataclass(frozen=True)
class PtuThroughput:
    """What one provisioned throughput unit (PTU) of a model serves per minute, as Microsoft's
    provisioned-throughput docs give it (shipped in the catalog file: models.list has no such
    field). An output token takes more of a unit than an input token, so each has its own rate."""

    input_per_minute: int
    output_per_minute: int


@functools.cache
def _ptu_throughputs() -> dict[tuple[str, str], PtuThroughput]:
    data = json.loads(CATALOG_FILE.read_text())
    throughputs = {}
    for model in data["models"]:
        rates = model.get("ptuThroughput")
        if not rates:
            continue
        input_rate = int(rates["inputTPMperPTU"])
        ratio = int(rates.get("outputToInputRatio") or 1)
        output_rate = int(rates.get("outputTPMperPTU") or input_rate // ratio)
        throughputs[(model["name"], model["version"])] = PtuThroughput(input_rate, output_rate)
    return throughputs


def ptu_throughput(*, model_name: str, model_version: str) -> PtuThroughput | None:
    """A model's throughput per PTU; another version of the same model when this one is not in
    the shipped catalog (versions of a model share their PTU rates); None for a model without
    provisioned throughput (embeddings) or one the catalog does not know."""
    throughputs = _ptu_throughputs()
    found = throughputs.get((model_name, model_version))
    if found is None:
        found = next((rates for (name, _), rates in throughputs.items() if name == model_name), None)
    return found


def region_data_zone(region: str) -> str | None:
    """The Azure data zone a region belongs to ("EU", "US"), or None for a region outside every
    data zone (Japan East, Australia East) or one the shipped catalog does not know."""
    zone = _regions().get(region, {}).get("dataZone")
    return str(zone) if zone else None


def region_label(region: str) -> str:
    """The name people know a region by ("Sweden Central" for swedencentral); an unknown region
    as it is written."""
    return _region_names().get(region, region)


def catalog_entry_get(*, region: str, model_name: str, model_version: str, sku: str) -> CatalogEntry | None:
    return CatalogEntry.objects.filter(
        region=region, model_name=model_name, model_version=model_version, sku=sku
    ).first()


@dataclass(frozen=True)
class ModelLimits:
    """How many tokens a model reads (prompt and answer together) and writes in one call."""

    context_tokens: int
    output_tokens: int


# A model the catalog has not synced yet is assumed to be like the smallest the catalog offers.
DEFAULT_MODEL_LIMITS = ModelLimits(context_tokens=128_000, output_tokens=4_096)


def model_limits(*, model_name: str, model_version: str) -> ModelLimits:
    """The model's limits from the synced catalog (the same in every region and SKU)."""
    limits = (
        CatalogEntry.objects.filter(model_name=model_name, model_version=model_version)
        .exclude(max_context_tokens=None)
        .values_list("max_context_tokens", "max_output_tokens")
        .first()
    )
    context, output = limits or (None, None)
    if context is None:
        return DEFAULT_MODEL_LIMITS
    return ModelLimits(
        context_tokens=context, output_tokens=output or min(context, DEFAULT_MODEL_LIMITS.output_tokens)
    )


def quota_left(*, subscription_id: str, region: str, usage_name: str) -> Decimal | None:
    """Capacity units still free under a quota (K TPM or PTU), or None when never synced."""
    quota = Quota.objects.filter(
        subscription_id=subscription_id, region=region, usage_name=usage_name
    ).first()
    return quota.available if quota else None


def price_in_force(*, model_name: str, model_version: str, sku: str, on: date) -> Price | None:
    """The price valid on `on`: the most specific row (model + version, then model, then the
    model-agnostic PTU pool row), and of those the one with the latest start not after `on`."""
    specificity = Case(
        When(model_name=model_name, model_version=model_version, then=Value(2)),
        When(model_name=model_name, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return (
        Price.objects.filter(sku=sku, valid_from__lte=on)
        .filter(
            Q(model_name=model_name, model_version__in=[model_version, ""])
            | Q(model_name="", model_version="")
        )
        .annotate(specificity=specificity)
        .order_by("-specificity", "-valid_from")
        .first()
    )


def prices_in_force(*, on: date) -> QuerySet[Price]:
    """Every price row in force on `on`: of the rows for one model, version and SKU, the one with
    the latest start not after `on` (which of them applies to a call `price_in_force` says)."""
    superseded = Price.objects.filter(
        model_name=OuterRef("model_name"),
        model_version=OuterRef("model_version"),
        sku=OuterRef("sku"),
        valid_from__gt=OuterRef("valid_from"),
        valid_from__lte=on,
    )
    return Price.objects.filter(valid_from__lte=on).exclude(Exists(superseded))


# Shipped prices -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PricesLoaded:
    valid_from: date
    created: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


def prices_load_shipped(*, price_model: type[Price] = Price, path: Path = PRICES_FILE) -> PricesLoaded:
    """Load the shipped price table into `price_model` rows, once per (model, version, SKU, start).

    Running it again changes nothing unless the file changed. `price_model` is a parameter so
    the data migration can pass its historical model and share this one copy of the logic.
    """
    table = json.loads(path.read_text())
    valid_from = date.fromisoformat(table["validFrom"])
    rows = [_token_price(row) for row in table["tokens"]] + [_ptu_price(row) for row in table["provisioned"]]
    created = updated = 0
    with transaction.atomic():
        for row_key, values in rows:
            key = {**row_key, "valid_from": valid_from}
            price = price_model.objects.filter(**key).first()
            if price is None:
                price = price_model.objects.create(**key, **values)
                created += 1
                before: dict[str, Any] | None = None
            elif any(getattr(price, name) != value for name, value in values.items()):
                before = {
                    name: getattr(price, name)
                    for name, value in values.items()
                    if getattr(price, name) != value
                }
                price_model.objects.filter(pk=price.pk).update(**values)
                updated += 1
            else:
                continue
            # The data migration passes its historical model: the trail starts with the app.
            if price_model is Price:
                audit_record(
                    actor=None,
                    verb="price.created" if before is None else "price.changed",
                    target=price,
                    before=before,
                    after={**key, **values} if before is None else {name: values[name] for name in before},
                    note=f"Loaded from {path.name}",
                )
    return PricesLoaded(valid_from, created, updated, len(rows) - created - updated)


def _token_price(row: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    key = {"model_name": row["model"], "model_version": row["version"], "sku": row["sku"]}
    return key, {
        "input_per_million": Decimal(row["inputPer1M"]),
        "cached_input_per_million": Decimal(row["cachedInputPer1M"]),
        "output_per_million": Decimal(row["outputPer1M"]),
        "ptu_per_hour": Decimal(0),
        "source": str(row.get("source", "")),
    }


def _ptu_price(row: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    # A provisioned pool's row without a model applies to every model in the pool.
    key = {"model_name": row.get("model") or "", "model_version": row.get("version") or "", "sku": row["sku"]}
    return key, {
        "input_per_million": Decimal(0),
        "cached_input_per_million": Decimal(0),
        "output_per_million": Decimal(0),
        "ptu_per_hour": Decimal(row["perPtuHour"]),
        "source": str(row.get("source", "")),
    }
