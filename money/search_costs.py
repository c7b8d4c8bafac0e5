"""What a landing zone's Azure AI Search service costs, and who pays it.

Azure bills a search service by the hour for its SKU (one replica, one partition here), used or
not. The cost model puts those hours on the zone's embeddings deployment, the shared service
grounding runs on, and splits them day by day across the data sets indexed there by the bytes
their passages hold (`SearchStorage`), so each department pays for the room its documents take.
On a day nothing is stored the department that runs the service carries it, as for any shared
service nobody used.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Max, Q

from money.amounts import ZERO
from money.periods import Period
from provisioning.models import ModelDeployment, SearchService, SearchStorage

SECONDS_PER_HOUR = Decimal(3600)
# USD per hour of one search unit (a replica on a partition), pay-as-you-go, from Azure AI Search's
# published price list (azure.microsoft.com/pricing/details/search): Basic $73.73 a month, S1
# $245.28, S2 $981.12, S3 $1,962.24, L1 $2,802.47, L2 $5,604.21 (730 hours).
SEARCH_HOURLY_USD = {
    "free": ZERO,
    "basic": Decimal("0.101"),
    "standard": Decimal("0.336"),
    "standard2": Decimal("1.344"),
    "standard3": Decimal("2.688"),
    "storage_optimized_l1": Decimal("3.839"),
    "storage_optimized_l2": Decimal("7.677"),
}


def search_hourly_rate(sku: str) -> Decimal:
    return SEARCH_HOURLY_USD.get(sku.lower(), ZERO)


@dataclass
class SearchCost:
    """A search service over a period: its cost by day and by paying department."""

    service: SearchService
    daily: dict[date, Decimal] = field(default_factory=dict)
    by_department: dict[int, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    by_data_set: dict[int, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    hours: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum(self.daily.values(), ZERO)


def search_costs(*, deployments: Iterable[ModelDeployment], period: Period) -> dict[int, SearchCost]:
    """embeddings deployment id -> its zone's search service cost over the period, split."""
    by_id = {deployment.pk: deployment for deployment in deployments}
    services = list(
        SearchService.objects.filter(
            embeddings_deployment_id__in=list(by_id),
            provisioned_at__isnull=False,
            provisioned_at__lt=period.until,
        )
    )
    if not services:
        return {}
    stored = _stored_by_day(services, period)
    costs = {}
    for service in services:
        assert service.embeddings_deployment_id is not None
        assert service.provisioned_at is not None
        runner = by_id[service.embeddings_deployment_id].department_id
        cost = SearchCost(service=service)
        rate = search_hourly_rate(service.sku)
        holding: dict[int, tuple[int, int]] = {}  # data set id -> (department id, bytes)
        for day in period.days:
            holding.update(stored.get((service.pk, day), {}))
            start = max(Period.start_of(day), service.provisioned_at)
            end = min(Period.start_of(day + timedelta(days=1)), period.until)
            seconds = (end - start).total_seconds()
            if seconds <= 0:
                continue
            hours = Decimal(int(seconds)) / SECONDS_PER_HOUR
            day_cost = hours * rate
            cost.hours += hours
            cost.daily[day] = day_cost
            _split(cost, day_cost, holding, runner)
        costs[service.embeddings_deployment_id] = cost
    return costs


def data_set_search_cost(*, data_set_id: int, landing_zone_id: int, period: Period) -> Decimal | None:
    """The data set's share of its zone's search service over the period, as the chargeback
    splits it; None when no search service runs in the zone."""
    service = (
        SearchService.objects.filter(
            landing_zone_id=landing_zone_id,
            embeddings_deployment__isnull=False,
            provisioned_at__isnull=False,
        )
        .select_related("embeddings_deployment")
        .first()
    )
    if service is None or service.embeddings_deployment is None:
        return None
    cost = search_costs(deployments=[service.embeddings_deployment], period=period).get(
        service.embeddings_deployment.pk
    )
    return cost.by_data_set.get(data_set_id, ZERO) if cost is not None else ZERO


def _split(cost: SearchCost, day_cost: Decimal, holding: dict[int, tuple[int, int]], runner: int) -> None:
    whole = sum(size for _department, size in holding.values())
    if not whole:
        cost.by_department[runner] += day_cost
        return
    for data_set_id, (department_id, size) in holding.items():
        part = day_cost * size / whole
        cost.by_department[department_id] += part
        cost.by_data_set[data_set_id] += part


def _stored_by_day(
    services: list[SearchService], period: Period
) -> dict[tuple[int, date], dict[int, tuple[int, int]]]:
    """(service id, day) -> {data set id: (department id, bytes)} for the days with a snapshot;
    the last snapshot before the period stands for its first day, so a quiet week still splits."""
    latest_before = (
        SearchStorage.objects.filter(service__in=services, day__lt=period.first_day)
        .values("service_id", "data_set_id")
        .annotate(last=Max("day"))
    )
    carried = Q(pk__in=[])
    for row in latest_before:
        carried |= Q(service_id=row["service_id"], data_set_id=row["data_set_id"], day=row["last"])
    rows = (
        SearchStorage.objects.filter(
            Q(service__in=services, day__gte=period.first_day, day__lte=period.last_day) | carried
        )
        .order_by("day")
        .values_list("service_id", "data_set_id", "department_id", "day", "stored_bytes")
    )
    stored: dict[tuple[int, date], dict[int, tuple[int, int]]] = defaultdict(dict)
    for service_id, data_set_id, department_id, day, size in rows:
        stored[(service_id, max(day, period.first_day))][data_set_id] = (department_id, size)
    return stored
