"""The catalog as the request form shows it: what Azure offers in the regions a department's
landing zone allows, the quota left there, and the prices in force.

It is for those who may ask for a deployment (department leads, and platform admins on a
department's behalf: `approvals.access.departments_for_author`); anyone else gets a 403, as the
request form does. A lead sees the offers, regions and quota of the landing zones their
departments deploy into; a platform admin those of every landing zone. `department=` narrows to
one department's zone, as the form does once a department is chosen: another department is a 404.
Prices are the same for everyone who may see the catalog."""

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from api.pagination import Page, PageParams, page_of
from api.params import user_of
from api.schemas import Day, utc
from approvals.access import departments_for_author
from org.access import get_department_for
from org.models import User
from provisioning.catalog import catalog_offers, prices_in_force, region_data_zone, region_label
from provisioning.models import CatalogEntry, LandingZone, ModelDeployment, Price, Quota

router = Router(tags=["catalog"])

SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"
REGION_PATTERN = r"^[a-z0-9]+$"
# Model names and versions as Azure spells them: gpt-4o-mini, 2024-07-18, text-embedding-3-small.
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
Sku = ModelDeployment.Sku


# Shapes ------------------------------------------------------------------------------------------


class CapacityOut(Schema):
    unit: Literal["K TPM", "PTU"] = Field(
        ..., description="Thousands of tokens per minute, or provisioned throughput units."
    )
    minimum: int
    maximum: int | None
    step: int
    default: int | None


class OfferOut(Schema):
    id: int
    model_name: str
    model_version: str
    sku: Sku
    region: str
    region_label: str = Field(..., examples=["Sweden Central"])
    data_zone: str | None = Field(
        ..., description="The Azure data zone of the region (EU, US); null outside every data zone."
    )
    usage_name: str = Field(..., description="The quota it counts against (see /catalog/quotas).")
    lifecycle_status: str = Field(..., examples=["GenerallyAvailable"])
    is_default_version: bool
    retirement_date: datetime | None
    retired: bool = Field(..., description="Past its retirement date: Azure may stop serving it any day.")
    capacity: CapacityOut
    max_context_tokens: int | None
    max_output_tokens: int | None = Field(..., description="Null for an embeddings model.")
    requests_per_minute_per_unit: str | None = Field(None, description="A decimal string.")
    synced_at: datetime


class RegionOut(Schema):
    name: str = Field(..., examples=["swedencentral"])
    label: str = Field(..., examples=["Sweden Central"])
    data_zone: str | None
    offers: int = Field(..., description="Offers synced from Azure in the region; 0 until the first sync.")


class QuotaOut(Schema):
    subscription_id: str
    landing_zones: list[str] = Field(..., description="Slugs of the landing zones in that subscription.")
    region: str
    region_label: str
    usage_name: str = Field(..., examples=["OpenAI.GlobalStandard.gpt-4o-mini"])
    display_name: str
    used: str = Field(
        ...,
        description="Decimal strings, in the units Azure counts the quota in: thousands of tokens per "
        "minute, or PTUs for a provisioned pool.",
    )
    limit: str
    left: str
    synced_at: datetime


class UnitPrice(Schema):
    amount: str = Field(..., pattern=r"^\d+\.\d{2,6}$", examples=["0.15", "0.075"])
    currency: Literal["USD"] = "USD"


class PriceOut(Schema):
    id: int
    model_name: str | None = Field(..., description="Null: every model (a provisioned pool's price).")
    model_version: str | None = Field(..., description="Null: every version of the model.")
    sku: str
    valid_from: date
    billed: Literal["per_token", "per_ptu_hour"]
    input_per_million: UnitPrice | None = Field(..., description="Per 1M input tokens; null for PTU.")
    cached_input_per_million: UnitPrice | None
    output_per_million: UnitPrice | None
    ptu_per_hour: UnitPrice | None = Field(..., description="Per PTU and hour; null for token SKUs.")
    source: str


# Filters -----------------------------------------------------------------------------------------


class Scope(Schema):
    department: str | None = Field(
        None,
        pattern=SLUG_PATTERN,
        max_length=60,
        description="Only this department's landing zone (its slug), as the request form shows it.",
    )


class OfferFilters(Scope):
    region: str | None = Field(None, pattern=REGION_PATTERN, max_length=40)
    model: str | None = Field(None, pattern=NAME_PATTERN, max_length=60, description="A model name.")
    version: str | None = Field(None, pattern=NAME_PATTERN, max_length=30)
    sku: Sku | None = None
    current_only: bool = Field(False, description="Leave out offers past their retirement date.")
    sort: Literal["model_name", "-model_name", "region", "-region", "sku", "-sku"] = "model_name"


class QuotaFilters(Scope):
    region: str | None = Field(None, pattern=REGION_PATTERN, max_length=40)
    model: str | None = Field(
        None, pattern=NAME_PATTERN, max_length=60, description="Quotas named for this model."
    )
    sku: Sku | None = Field(None, description="Quotas of this SKU (its pool, for provisioned SKUs).")
    sort: Literal["usage_name", "-usage_name", "region", "-region"] = "usage_name"


class PriceFilters(Schema):
    on: Day | None = Field(None, description="The day whose prices to show; today if left out.")
    model: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        max_length=60,
        description="This model's prices, and those that apply to every model (provisioned pools).",
    )
    sku: Sku | None = None
    sort: Literal["model_name", "-model_name", "sku", "-sku", "valid_from", "-valid_from"] = "model_name"


# Who sees what -----------------------------------------------------------------------------------


def _require_requester(user: User) -> None:
    if not departments_for_author(user):
        raise PermissionDenied(
            "The catalog is for those who ask for deployments: department leads and platform admins."
        )


def _zones(user: User, department_slug: str | None) -> list[LandingZone]:
    """The landing zones whose regions and quota `user` sees: the chosen department's, else
    those of every department they may ask for (every zone, for a platform admin)."""
    _require_requester(user)
    if department_slug:
        departments = [get_department_for(user, department_slug, lead_only=True)]
    elif user.is_platform_admin:
        return list(LandingZone.objects.order_by("pk"))
    else:
        departments = departments_for_author(user)
    zones = {}
    for department in departments:
        zone = LandingZone.for_department(department)
        if zone is not None:
            zones[zone.pk] = zone
    return list(zones.values())


def _regions(zones: list[LandingZone]) -> list[str]:
    return list(dict.fromkeys(region for zone in zones for region in zone.allowed_regions))


def _decimal(value: Decimal) -> str:
    """A quantity as a plain decimal string without trailing zeros: 100, 12.5."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _unit_price(value: Decimal) -> UnitPrice:
    """A price per unit with as many decimals as it has (at least two): 2.50, 0.075."""
    text = format(value.quantize(Decimal("0.000001")), "f").rstrip("0")
    whole, _, fraction = text.partition(".")
    return UnitPrice(amount=f"{whole}.{fraction.ljust(2, '0')}")


# Operations --------------------------------------------------------------------------------------


def _offer_out(entry: CatalogEntry, now: datetime) -> OfferOut:
    provisioned = entry.sku.endswith("ProvisionedManaged")
    rpm = entry.requests_per_minute_per_unit
    return OfferOut(
        id=entry.pk,
        model_name=entry.model_name,
        model_version=entry.model_version,
        sku=Sku(entry.sku),
        region=entry.region,
        region_label=region_label(entry.region),
        data_zone=region_data_zone(entry.region),
        usage_name=entry.usage_name,
        lifecycle_status=entry.lifecycle_status,
        is_default_version=entry.is_default_version,
        retirement_date=utc(entry.retirement_date) if entry.retirement_date else None,
        retired=entry.retirement_date is not None and entry.retirement_date <= now,
        capacity=CapacityOut(
            unit="PTU" if provisioned else "K TPM",
            minimum=entry.capacity_minimum,
            maximum=entry.capacity_maximum,
            step=entry.capacity_step,
            default=entry.capacity_default,
        ),
        max_context_tokens=entry.max_context_tokens,
        max_output_tokens=entry.max_output_tokens,
        requests_per_minute_per_unit=_decimal(rpm) if rpm is not None else None,
        synced_at=utc(entry.synced_at),
    )


@router.get("/catalog/models", response=Page[OfferOut], summary="Models on offer")
def list_offers(
    request: HttpRequest, filters: Query[OfferFilters], page: Query[PageParams]
) -> dict[str, object]:
    """What a new deployment can be: one item per model version, SKU and region that Azure offers
    (synced hourly from `models.list`) in the regions your landing zones allow, with its
    lifecycle, retirement date and capacity bounds. Retired offers stay listed, as on the request
    form (Azure keeps serving them a while); `current_only=true` leaves them out.

    For department leads and platform admins. `usage_name` names the quota an offer draws on."""
    user = user_of(request)
    offers = catalog_offers(
        regions=_regions(_zones(user, filters.department)), exclude_retired=filters.current_only
    )
    if filters.region:
        offers = offers.filter(region=filters.region)
    if filters.model:
        offers = offers.filter(model_name=filters.model)
    if filters.version:
        offers = offers.filter(model_version=filters.version)
    if filters.sku:
        offers = offers.filter(sku=filters.sku)
    chunk = page_of(
        offers,
        order=filters.sort,
        list_name=f"catalog/models?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    now = timezone.now()
    return {"items": [_offer_out(entry, now) for entry in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/catalog/regions", response=list[RegionOut], summary="Regions you may deploy to")
def list_regions(request: HttpRequest, scope: Query[Scope]) -> list[RegionOut]:
    """The Azure regions your landing zones allow, in their order, with the name people know each
    by and its data zone (EU, US; null outside every data zone), which decides where a Data Zone
    deployment may process prompts and which fallbacks it may have. For department leads and
    platform admins."""
    regions = _regions(_zones(user_of(request), scope.department))
    counts = dict(
        CatalogEntry.objects.filter(region__in=regions)
        .order_by()
        .values_list("region")
        .annotate(offers=Count("pk"))
        .values_list("region", "offers")
    )
    return [
        RegionOut(
            name=region,
            label=region_label(region),
            data_zone=region_data_zone(region),
            offers=counts.get(region, 0),
        )
        for region in regions
    ]


def _quotas(zones: list[LandingZone]) -> QuerySet[Quota]:
    """The quota rows of the zones' subscriptions in the regions each zone allows."""
    where = Q(pk__in=[])
    for zone in zones:
        where |= Q(subscription_id=zone.subscription_id, region__in=zone.allowed_regions)
    return Quota.objects.filter(where)


@router.get("/catalog/quotas", response=Page[QuotaOut], summary="Quota left")
def list_quotas(
    request: HttpRequest, filters: Query[QuotaFilters], page: Query[PageParams]
) -> dict[str, object]:
    """Quota used, its limit and what is left per subscription, region and quota name (synced
    hourly from Azure's `usages.list`), for the subscriptions of your landing zones: what the
    request form checks a new deployment's capacity against. Quota names follow Azure's
    `OpenAI.{SKU}.{model}` (a provisioned SKU's pool is `OpenAI.{SKU}`). For department leads and
    platform admins."""
    zones = _zones(user_of(request), filters.department)
    quotas = _quotas(zones)
    if filters.region:
        quotas = quotas.filter(region=filters.region)
    if filters.sku:
        quotas = quotas.filter(
            Q(usage_name=f"OpenAI.{filters.sku}") | Q(usage_name__startswith=f"OpenAI.{filters.sku}.")
        )
    if filters.model:
        quotas = quotas.filter(usage_name__endswith=f".{filters.model}")
    chunk = page_of(
        quotas,
        order=filters.sort,
        list_name=f"catalog/quotas?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    zone_slugs: dict[str, list[str]] = {}
    for zone in zones:
        zone_slugs.setdefault(zone.subscription_id, []).append(zone.slug)
    items = [
        QuotaOut(
            subscription_id=quota.subscription_id,
            landing_zones=zone_slugs.get(quota.subscription_id, []),
            region=quota.region,
            region_label=region_label(quota.region),
            usage_name=quota.usage_name,
            display_name=quota.display_name,
            used=_decimal(quota.current_value),
            limit=_decimal(quota.limit),
            left=_decimal(quota.available),
            synced_at=utc(quota.synced_at),
        )
        for quota in chunk.rows
    ]
    return {"items": items, "next_cursor": chunk.next_cursor}


def _price_out(price: Price) -> PriceOut:
    provisioned = price.sku.endswith("ProvisionedManaged")
    return PriceOut(
        id=price.pk,
        model_name=price.model_name or None,
        model_version=price.model_version or None,
        sku=price.sku,
        valid_from=price.valid_from,
        billed="per_ptu_hour" if provisioned else "per_token",
        input_per_million=None if provisioned else _unit_price(price.input_per_million),
        cached_input_per_million=None if provisioned else _unit_price(price.cached_input_per_million),
        output_per_million=None if provisioned else _unit_price(price.output_per_million),
        ptu_per_hour=_unit_price(price.ptu_per_hour) if provisioned else None,
        source=price.source,
    )


@router.get("/catalog/prices", response=Page[PriceOut], summary="Prices in force")
def list_prices(
    request: HttpRequest, filters: Query[PriceFilters], page: Query[PageParams]
) -> dict[str, object]:
    """The USD list prices in force today, or on the day `on` names: per 1M input, cached
    input and output tokens for token-billed SKUs, per PTU and hour for provisioned ones. A price
    change is a new row with a later `valid_from`, so usage is always priced at its day's price.
    A call is priced by the most specific row: model and version, then the model, then a row
    for every model. For department leads and platform admins."""
    _require_requester(user_of(request))
    on = filters.on or timezone.localdate()
    prices = prices_in_force(on=on)
    if filters.model:
        prices = prices.filter(model_name__in=[filters.model, ""])
    if filters.sku:
        prices = prices.filter(sku=filters.sku)
    chunk = page_of(
        prices,
        order=filters.sort,
        list_name=f"catalog/prices?{on.isoformat()}&{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    return {"items": [_price_out(price) for price in chunk.rows], "next_cursor": chunk.next_cursor}
