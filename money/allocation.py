"""Who pays what over a period: the one cost model, which the chat's budget check, admission and
the cost reports all use, so they never disagree.

- A model call costs its tokens at the price in force when it was made (`money.prices`); the
  record keeps that cost, so a later price change never reprices the past.
- A provisioned (PTU) deployment costs PTU x hourly rate for every hour it is active, used or
  not (`fixed_costs`).
- A landing zone's search service costs its hours at its SKU's rate; they land on the zone's
  embeddings deployment and are split by what each department's data sets store there
  (`money.search_costs`).
- A dedicated deployment's cost lands on its department. A shared deployment's cost (tokens and
  fixed) is split between the departments that used it by their share of its tokens in the
  period; while nobody uses it, the department that runs it carries it (`cost_allocation`).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet, Sum

from money.amounts import ONE, ZERO, cents, money
from money.periods import Period
from money.prices import PROVISIONED_SKUS, PriceBook
from money.search_costs import SearchCost, search_costs
from org.models import Department
from provisioning.models import ModelDeployment, SearchService

SECONDS_PER_HOUR = Decimal(3600)
# States in which a provisioned deployment exists on Azure and is billed by the hour.
BILLED_STATES = [
    ModelDeployment.State.ACTIVE,
    ModelDeployment.State.DECOMMISSIONING,
    ModelDeployment.State.DECOMMISSIONED,
]
# What the cost model and the report lines read of a deployment (a month loads a thousand).
DEPLOYMENT_FACTS = [
    "department_id",
    "account_id",
    "scope",
    "display_name",
    "model_name",
    "model_version",
    "sku",
    "capacity",
    "state",
    "created_at",
    "updated_at",
]


# Fixed (PTU) costs -----------------------------------------------------------------------------


def active_window(deployment: ModelDeployment) -> tuple[datetime, datetime | None] | None:
    """When the deployment existed on Azure: from its creation until it was decommissioned
    (None: still there). A deployment that never became active was never billed."""
    if deployment.state not in BILLED_STATES:
        return None
    until = deployment.updated_at if deployment.state == ModelDeployment.State.DECOMMISSIONED else None
    return deployment.created_at, until


def fixed_costs(
    *, deployments: Iterable[ModelDeployment], period: Period, prices: PriceBook | None = None
) -> dict[tuple[int, date], tuple[Decimal, Decimal]]:
    """(deployment id, day) -> (active hours, cost) for provisioned deployments: PTU x the hourly
    rate in force that day x the hours of that day the deployment was active."""
    provisioned = [deployment for deployment in deployments if deployment.is_provisioned_sku]
    if not provisioned:
        return {}
    prices = prices or PriceBook(PROVISIONED_SKUS)
    costs: dict[tuple[int, date], tuple[Decimal, Decimal]] = {}
    bounds = [(day, Period.start_of(day), Period.start_of(day + timedelta(days=1))) for day in period.days]
    for deployment in provisioned:
        window = active_window(deployment)
        if window is None:
            continue
        active_from, active_until = window
        active_until = min(active_until or period.until, period.until)
        for day, day_start, day_end in bounds:
            seconds = (min(day_end, active_until) - max(day_start, active_from)).total_seconds()
            if seconds <= 0:
                continue
            price = prices.on(
                model_name=deployment.model_name,
                model_version=deployment.model_version,
                sku=deployment.sku,
                day=day,
            )
            hours = Decimal(int(seconds)) / SECONDS_PER_HOUR
            rate = price.ptu_per_hour if price else ZERO
            costs[(deployment.pk, day)] = (hours, hours * deployment.capacity * rate)
    return costs


# Allocation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class DeploymentCost:
    """One deployment over the period: all its use and its whole cost, before any split."""

    deployment: ModelDeployment
    requests: int = 0
    tokens: int = 0
    token_cost: Decimal = ZERO
    fixed_cost: Decimal = ZERO
    active_hours: Decimal = ZERO
    # The zone's search service, when this is its embeddings deployment (its hours are in fixed_cost).
    search: SearchCost | None = None

    @property
    def total(self) -> Decimal:
        return self.token_cost + self.fixed_cost

    @property
    def tokens_per_ptu_hour(self) -> Decimal | None:
        ptu_hours = self.active_hours * self.deployment.capacity
        return Decimal(self.tokens) / ptu_hours if ptu_hours else None


@dataclass(slots=True)
class Charge:
    """What one department is charged for one deployment over the period."""

    department_id: int
    deployment_id: int
    requests: int
    tokens: int
    token_cost: Decimal
    fixed_cost: Decimal
    share: Decimal  # of the deployment's tokens (1 for a dedicated deployment's owner)

    @property
    def total(self) -> Decimal:
        return self.token_cost + self.fixed_cost


@dataclass
class CostAllocation:
    period: Period
    deployments: dict[int, DeploymentCost] = field(default_factory=dict)
    charges: list[Charge] = field(default_factory=list)
    # (deployment id, day) -> that day's PTU cost, for charts and daily tables.
    fixed_daily: dict[tuple[int, date], Decimal] = field(default_factory=dict)

    def department_totals_in_cents(self) -> dict[int, Decimal]:
        """Every charged department's total, rounded once across the whole company so they add up
        to the company total: the figure every page shows for the department."""
        exact = {department_id: self.department_total(department_id) for department_id in self._by_department}
        ids = sorted(exact)
        rounded, _total = cents([exact[department_id] for department_id in ids])
        return dict(zip(ids, rounded, strict=True))

    @cached_property
    def _by_department(self) -> dict[int, list[Charge]]:
        grouped: dict[int, list[Charge]] = defaultdict(list)
        for charge in self.charges:
            grouped[charge.department_id].append(charge)
        return grouped

    @cached_property
    def _by_deployment(self) -> dict[int, list[Charge]]:
        grouped: dict[int, list[Charge]] = defaultdict(list)
        for charge in self.charges:
            grouped[charge.deployment_id].append(charge)
        return grouped

    def department_total(self, department_id: int) -> Decimal:
        return sum((charge.total for charge in self.department_charges(department_id)), ZERO)

    def department_charges(self, department_id: int) -> list[Charge]:
        return self._by_department.get(department_id, [])

    def deployment_charges(self, deployment_id: int) -> list[Charge]:
        return self._by_deployment.get(deployment_id, [])

    @property
    def total(self) -> Decimal:
        return sum((charge.total for charge in self.charges), ZERO)

    def shares(self, deployment_id: int) -> dict[int, Decimal]:
        """department id -> share of the deployment's cost."""
        return {charge.department_id: charge.share for charge in self.deployment_charges(deployment_id)}


class UsageLine(NamedTuple):
    """One department's use of one deployment over a period, summed from the rollups."""

    department_id: int
    deployment_id: int
    requests: int
    tokens: int
    cost: Decimal


def _usage_by_department_and_deployment(
    period: Period, deployment_ids: Iterable[int] | None
) -> list[UsageLine]:
    rows = period.usage_rows()
    if deployment_ids is not None:
        rows = rows.filter(deployment_id__in=list(deployment_ids))
    grouped = (
        rows.order_by()
        .values_list("department_id", "deployment_id")
        .annotate(Sum("requests"), Sum("input_tokens"), Sum("output_tokens"), Sum("cost"))
    )
    return [
        UsageLine(department_id, deployment_id, int(requests), int(input_tokens + output_tokens), money(cost))
        for department_id, deployment_id, requests, input_tokens, output_tokens, cost in fetch_rows(grouped)
    ]


def fetch_rows(queryset: "QuerySet[Any]") -> list[tuple[Any, ...]]:
    """The rows of an aggregate query as the database driver gives them, without Django's
    per-value converters: on a month of the whole company they cost more than the query."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return []  # a filter on an empty list: the ORM knows there is nothing to ask
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def deployments_for_costs() -> list[ModelDeployment]:
    """Every deployment with the facts the cost model reads: a report that allocates two months
    loads them once and passes them to both."""
    return list(ModelDeployment.objects.only(*DEPLOYMENT_FACTS))


def cost_allocation(
    *,
    period: Period,
    department: Department | None = None,
    deployments: list[ModelDeployment] | None = None,
) -> CostAllocation:
    """Who pays what for the period: every department, or only what `department` needs (its own
    deployments and the shared ones it used, with everyone's use of those, so its shares are
    exactly the ones the company-wide report shows). `deployments`, when given, is every
    deployment (`deployments_for_costs`), which saves reading them again."""
    if department is None:
        usage = _usage_by_department_and_deployment(period, None)
        if deployments is None:
            deployments = list(
                ModelDeployment.objects.filter(
                    Q(pk__in=period.usage_rows().values("deployment_id")) | _billed_provisioned(period)
                )
                .distinct()
                .only(*DEPLOYMENT_FACTS)
            )
        else:
            used = {line.deployment_id for line in usage}
            searching = _search_deployment_ids(period)
            deployments = [
                d for d in deployments if d.pk in used or _is_billed_provisioned(d, period, searching)
            ]
    else:
        used_by_department = period.usage_rows().filter(department=department).values("deployment_id")
        if deployments is None:
            deployments = list(
                ModelDeployment.objects.filter(
                    Q(pk__in=used_by_department)
                    | (Q(department=department) & _billed_provisioned(period))
                    | Q(pk__in=_search_deployment_ids(period, department))
                )
                .distinct()
                .only(*DEPLOYMENT_FACTS)
            )
        else:
            used = {row[0] for row in fetch_rows(used_by_department.values_list("deployment_id"))}
            searching = _search_deployment_ids(period)
            storing = _search_deployment_ids(period, department)
            deployments = [
                d
                for d in deployments
                if d.pk in used
                or d.pk in storing
                or (d.department_id == department.pk and _is_billed_provisioned(d, period, searching))
            ]
        usage = _usage_by_department_and_deployment(period, [deployment.pk for deployment in deployments])
    return _allocate(period=period, deployments=deployments, usage=usage)


def _billed_provisioned(period: Period) -> Q:
    """Deployments billed by the hour in the period: provisioned ones, and embeddings deployments
    whose zone's search service is running."""
    return Q(sku__in=PROVISIONED_SKUS, state__in=BILLED_STATES, created_at__lt=period.until) | Q(
        search_services__provisioned_at__lt=period.until
    )


def _is_billed_provisioned(deployment: ModelDeployment, period: Period, searching: set[int]) -> bool:
    return (
        deployment.sku in PROVISIONED_SKUS
        and deployment.state in BILLED_STATES
        and deployment.created_at < period.until
    ) or deployment.pk in searching


def _search_deployment_ids(period: Period, department: Department | None = None) -> set[int]:
    """The embeddings deployments whose zone's search service ran in the period (for `department`:
    whose service held some of its data sets' passages by the period's end)."""
    services = SearchService.objects.filter(
        provisioned_at__lt=period.until, embeddings_deployment__isnull=False
    )
    if department is not None:
        services = services.filter(
            storage_days__department=department, storage_days__day__lte=period.last_day
        )
    return set(services.values_list("embeddings_deployment_id", flat=True))


def _allocate(
    *, period: Period, deployments: list[ModelDeployment], usage: list[UsageLine]
) -> CostAllocation:
    allocation = CostAllocation(period=period)
    for deployment in deployments:
        allocation.deployments[deployment.pk] = DeploymentCost(deployment=deployment)
    for (deployment_id, day), (hours, cost) in fixed_costs(deployments=deployments, period=period).items():
        allocation.fixed_daily[(deployment_id, day)] = cost
        entry = allocation.deployments[deployment_id]
        entry.fixed_cost += cost
        entry.active_hours += hours
    for deployment_id, search in search_costs(deployments=deployments, period=period).items():
        entry = allocation.deployments[deployment_id]
        entry.search = search
        entry.fixed_cost += search.total
        for day, cost in search.daily.items():
            key = (deployment_id, day)
            allocation.fixed_daily[key] = allocation.fixed_daily.get(key, ZERO) + cost
    by_deployment: dict[int, list[UsageLine]] = defaultdict(list)
    for line in usage:
        found = allocation.deployments.get(line.deployment_id)
        if found is None:
            continue
        found.requests += line.requests
        found.tokens += line.tokens
        found.token_cost += line.cost
        by_deployment[line.deployment_id].append(line)
    charges = allocation.charges
    for deployment_id, entry in allocation.deployments.items():
        lines = by_deployment.get(deployment_id, [])
        if entry.search is not None:
            charges.extend(_search_charges(entry, lines))
            continue
        deployment = entry.deployment
        if deployment.scope == ModelDeployment.Scope.SHARED and entry.tokens:
            whole = Decimal(entry.tokens)
            for line in lines:
                share = line.tokens / whole
                charges.append(
                    Charge(
                        line.department_id,
                        deployment_id,
                        line.requests,
                        line.tokens,
                        entry.token_cost * share,
                        entry.fixed_cost * share,
                        share,
                    )
                )
            continue
        # Dedicated (or a shared one nobody used): each department pays its own metered tokens,
        # and the owner the fixed cost.
        owner_charged = False
        for line in lines:
            is_owner = line.department_id == deployment.department_id
            owner_charged = owner_charged or is_owner
            charges.append(
                Charge(
                    line.department_id,
                    deployment_id,
                    line.requests,
                    line.tokens,
                    line.cost,
                    entry.fixed_cost if is_owner else ZERO,
                    ONE if is_owner else ZERO,
                )
            )
        if not owner_charged and entry.fixed_cost:
            charges.append(Charge(deployment.department_id, deployment_id, 0, 0, ZERO, entry.fixed_cost, ONE))
    return allocation


def _search_charges(entry: DeploymentCost, lines: list[UsageLine]) -> list[Charge]:
    """The embeddings deployment of a zone with a search service: each department pays its own
    embedding tokens and its share of the service's hours by what its data sets store."""
    assert entry.search is not None
    split = entry.search.by_department
    charged = {line.department_id for line in lines}
    charges = [
        Charge(
            line.department_id,
            entry.deployment.pk,
            line.requests,
            line.tokens,
            line.cost,
            split.get(line.department_id, ZERO),
            Decimal(line.tokens) / entry.tokens if entry.tokens else ZERO,
        )
        for line in lines
    ]
    charges.extend(
        Charge(department_id, entry.deployment.pk, 0, 0, ZERO, cost, ZERO)
        for department_id, cost in split.items()
        if department_id not in charged and cost
    )
    return charges
