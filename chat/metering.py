"""The one cost model: the chat's budget check and the cost reports both use it, so they never
disagree.

- A model call costs its tokens at the price in force when it was made (`usage_cost`); the
  record keeps that cost, so a later price change never reprices the past.
- A provisioned (PTU) deployment costs PTU x hourly rate for every hour it is active, used or
  not (`fixed_costs`).
- A dedicated deployment's cost lands on its department. A shared deployment's cost (tokens and
  fixed) is split between the departments that used it by their share of its tokens in the
  period; while nobody uses it, the department that runs it carries it (`cost_allocation`).

Money is Decimal and is rounded only when shown (`cents`), so totals add up.
"""

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any, NamedTuple
from uuid import UUID

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from chat.models import (
    Conversation,
    DailyDeploymentRollup,
    DepartmentUsageRollup,
    MonthlyPersonRollup,
    MonthlyUsageRollup,
    UsageRecord,
    UsageRollup,
)
from org.models import Department, User
from provisioning.catalog import price_in_force
from provisioning.models import ModelDeployment, Price

MILLION = Decimal(1_000_000)
WARNING_SHARE = Decimal("0.8")
ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
TEN_PLACES = Decimal("1e-10")
SECONDS_PER_HOUR = Decimal(3600)
PROVISIONED_SKUS = [sku for sku in ModelDeployment.Sku.values if sku.endswith("ProvisionedManaged")]
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
ROLLUP_COUNTERS = ["requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost"]


# Token usage -----------------------------------------------------------------------------------


def usage_cost(
    *,
    deployment: ModelDeployment,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    at: datetime,
    prices: "PriceBook | None" = None,
) -> tuple[Decimal, Price | None]:
    """What a call cost at the price in force when it was made (USD, unrounded). `prices` saves
    the query per call when many calls are priced at once."""
    lookup = prices.on if prices is not None else _price_in_force
    price = lookup(
        model_name=deployment.model_name,
        model_version=deployment.model_version,
        sku=deployment.sku,
        day=timezone.localdate(at),
    )
    if price is None or deployment.is_provisioned_sku:
        # Provisioned capacity is paid by the hour whether used or not, not per token.
        return ZERO, price
    uncached = max(input_tokens - cached_input_tokens, 0)
    cost = (
        uncached * price.input_per_million
        + cached_input_tokens * price.cached_input_per_million
        + output_tokens * price.output_per_million
    ) / MILLION
    return cost, price


# Every answer is priced as it is saved: the price in force is remembered in the process for a
# minute instead of costing a query per answer. A price saved in this process is seen at once,
# one saved elsewhere (admin in another web process) within the minute.
PRICE_MEMO_SECONDS = 60.0
_price_memo: dict[tuple[str, str, str, date], tuple[float, Price | None]] = {}


def _price_in_force(*, model_name: str, model_version: str, sku: str, day: date) -> Price | None:
    key = (model_name, model_version, sku, day)
    now = time.monotonic()
    remembered = _price_memo.get(key)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    price = price_in_force(model_name=model_name, model_version=model_version, sku=sku, on=day)
    if len(_price_memo) > 1000:  # days gone by
        _price_memo.clear()
    _price_memo[key] = (now + PRICE_MEMO_SECONDS, price)
    return price


def prices_changed(**_signal: Any) -> None:
    """A receiver for saved and deleted prices."""
    _price_memo.clear()


def usage_record_create(
    *,
    department: Department,
    user: User | None,
    deployment: ModelDeployment,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    conversation: Conversation | None = None,
    source: str = UsageRecord.Source.CHAT,
    at: datetime | None = None,
    reservation_id: UUID | None = None,
    estimated: bool = False,
) -> UsageRecord:
    at = at or timezone.now()
    cost, price = usage_cost(
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=at,
    )
    # The record and its rollups commit together: a report never sees one without the other.
    # Inside a caller's transaction (a chat answer's, with its message) they are part of that one,
    # without a savepoint of their own: two statements fewer per answer.
    with transaction.atomic(savepoint=False):
        record = UsageRecord.objects.create(
            department=department,
            user=user,
            deployment=deployment,
            conversation=conversation,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            price=price,
            source=source,
            created_at=at,
            reservation_id=reservation_id,
            estimated=estimated,
        )
        usage_rollup_add(record=record)
    return record


def usage_record_correct(
    *, record: UsageRecord, input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> UsageRecord:
    """Replace an estimated record's counts with Azure's, repriced as of its time, and move its
    rollups by the difference. The caller holds the record's lock."""
    cost, price = usage_cost(
        deployment=record.deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=record.created_at,
    )
    difference = [
        0,
        input_tokens - record.input_tokens,
        cached_input_tokens - record.cached_input_tokens,
        output_tokens - record.output_tokens,
        cost - record.cost,
    ]
    record.input_tokens, record.cached_input_tokens, record.output_tokens = (
        input_tokens,
        cached_input_tokens,
        output_tokens,
    )
    record.cost, record.price, record.estimated = cost, price, False
    with transaction.atomic(savepoint=False):
        record.save(
            update_fields=[
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "cost",
                "price",
                "estimated",
            ]
        )
        usage_rollup_add(record=record, counters=difference)
    return record


def usage_rollup_add(*, record: UsageRecord, counters: list[Any] | None = None) -> None:
    """Add one record (or, with `counters`, a correction of it: requests, input, cached and
    output tokens, cost) to its day's and month's rollups. An upsert that adds in the database,
    so concurrent calls (several web workers) never lose each other's counts."""
    requests, input_tokens, cached_tokens, output_tokens, cost = counters or [
        1,
        record.input_tokens,
        record.cached_input_tokens,
        record.output_tokens,
        record.cost,
    ]
    values = [
        requests,
        input_tokens,
        cached_tokens,
        output_tokens,
        connection.ops.adapt_decimalfield_value(cost, 20, 10),
    ]
    local_day = timezone.localdate(record.created_at)
    day = connection.ops.adapt_datefield_value(local_day)
    month = connection.ops.adapt_datefield_value(local_day.replace(day=1))
    department, deployment, user_key = record.department_id, record.deployment_id, record.user_id or 0
    for model, keys in [
        (
            UsageRollup,
            {"day": day, "department_id": department, "deployment_id": deployment, "user_key": user_key},
        ),
        (DepartmentUsageRollup, {"day": day, "department_id": department, "deployment_id": deployment}),
        (DailyDeploymentRollup, {"day": day, "deployment_id": deployment}),
        (MonthlyUsageRollup, {"month": month, "department_id": department, "deployment_id": deployment}),
        (MonthlyPersonRollup, {"month": month, "department_id": department, "user_key": user_key}),
    ]:
        table = model._meta.db_table
        columns = ", ".join([*keys, *ROLLUP_COUNTERS])
        placeholders = ", ".join(["%s"] * (len(keys) + len(values)))
        updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_COUNTERS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608 (names from _meta)
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}",
                [*keys.values(), *values],
            )


def usage_rollups_rebuild(*, first_day: date, last_day: date) -> int:
    """Recompute the rollups of [first_day, last_day] from the usage records (backfill, repair);
    the monthly ones of the months it touches, from the daily ones. Returns the number of
    per-person daily rows written."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    counters = {
        "rollup_requests": "requests",
        "rollup_input": "input_tokens",
        "rollup_cached": "cached_input_tokens",
        "rollup_output": "output_tokens",
        "rollup_cost": "cost",
    }
    records = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(rollup_day=TruncDate("created_at"), rollup_user=Coalesce("user_id", Value(0)))
        .values("rollup_day", "department_id", "deployment_id", "rollup_user")
        # A record is one request; its other counters have the rollups' names.
        .annotate(
            rollup_requests=Count("id"),
            **{name: Sum(field) for name, field in counters.items() if name != "rollup_requests"},
        )
    )
    first_month = first_day.replace(day=1)
    last_month_end = month_bounds(last_day)[1].date() - timedelta(days=1)

    def from_daily(keys: list[str]) -> "QuerySet[Any]":
        return (
            UsageRollup.objects.filter(day__gte=first_month, day__lte=last_month_end)
            .order_by()
            .annotate(rollup_month=TruncMonth("day"))
            .values("rollup_month", *keys)
            .annotate(**{name: Sum(field) for name, field in counters.items()})
        )

    def adapt(day: date) -> Any:
        return connection.ops.adapt_datefield_value(day)

    days = [adapt(first_day), adapt(last_day)]
    months = [adapt(first_month), adapt(last_day.replace(day=1))]
    fine = UsageRollup._meta.db_table
    coarse = DepartmentUsageRollup._meta.db_table
    by_deployment = DailyDeploymentRollup._meta.db_table
    monthly = MonthlyUsageRollup._meta.db_table
    people = MonthlyPersonRollup._meta.db_table
    # (table, its period column, the period to clear, source query, source column -> table column)
    steps: list[tuple[str, str, list[Any], QuerySet[Any], dict[str, str]]] = [
        (
            fine,
            "day",
            days,
            records,
            {
                "rollup_day": "day",
                "department_id": "department_id",
                "deployment_id": "deployment_id",
                "rollup_user": "user_key",
                **counters,
            },
        ),
        (
            coarse,
            "day",
            days,
            UsageRollup.objects.filter(day__gte=first_day, day__lte=last_day)
            .order_by()
            .values("day", "department_id", "deployment_id")
            .annotate(
                rollup_requests=Sum("requests"),
                rollup_input=Sum("input_tokens"),
                rollup_cached=Sum("cached_input_tokens"),
                rollup_output=Sum("output_tokens"),
                rollup_cost=Sum("cost"),
            ),
            {"day": "day", "department_id": "department_id", "deployment_id": "deployment_id", **counters},
        ),
        (
            by_deployment,
            "day",
            days,
            UsageRollup.objects.filter(day__gte=first_day, day__lte=last_day)
            .order_by()
            .values("day", "deployment_id")
            .annotate(
                rollup_requests=Sum("requests"),
                rollup_input=Sum("input_tokens"),
                rollup_cached=Sum("cached_input_tokens"),
                rollup_output=Sum("output_tokens"),
                rollup_cost=Sum("cost"),
            ),
            {"day": "day", "deployment_id": "deployment_id", **counters},
        ),
        (
            monthly,
            "month",
            months,
            from_daily(["department_id", "deployment_id"]),
            {
                "rollup_month": "month",
                "department_id": "department_id",
                "deployment_id": "deployment_id",
                **counters,
            },
        ),
        (
            people,
            "month",
            months,
            from_daily(["department_id", "user_key"]),
            {"rollup_month": "month", "department_id": "department_id", "user_key": "user_key", **counters},
        ),
    ]
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Usage metered meanwhile waits for the rebuild and then adds itself: without the
            # lock its upsert could land in rows the rebuild is about to replace.
            cursor.execute(
                f"LOCK TABLE {fine}, {coarse}, {by_deployment}, {monthly}, {people} IN EXCLUSIVE MODE"
            )
        for table, period_column, bounds, source, columns in steps:
            select_sql, params = source.query.sql_with_params()
            cursor.execute(f"DELETE FROM {table} WHERE {period_column} BETWEEN %s AND %s", bounds)  # noqa: S608
            # Selected by name from a subquery: the ORM decides the order of its own SELECT list.
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns.values())}) "  # noqa: S608
                f"SELECT {', '.join(columns)} FROM ({select_sql}) source",
                params,
            )
            if table == fine:
                written = cursor.rowcount
    return written


# Periods ---------------------------------------------------------------------------------------


def month_bounds(day: date) -> tuple[datetime, datetime]:
    """The calendar month of `day`, in the portal's time zone, as [start, end)."""
    zone = timezone.get_current_timezone()
    start = datetime(day.year, day.month, 1, tzinfo=zone)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=zone)
    return start, following


@dataclass(frozen=True)
class Period:
    """Whole days [first_day, last_day] in the portal's time zone; fixed costs accrue until
    `until` (now, for a period that has not ended)."""

    first_day: date
    last_day: date
    until: datetime

    @classmethod
    def month(cls, day: date, *, now: datetime | None = None) -> "Period":
        start, end = month_bounds(day)
        now = now or timezone.now()
        return cls(start.date(), (end - timedelta(days=1)).date(), min(end, max(now, start)))

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime:
        return self.start_of(self.last_day + timedelta(days=1))

    @staticmethod
    def start_of(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())

    @property
    def whole_months(self) -> bool:
        return self.first_day.day == 1 and (self.last_day + timedelta(days=1)).day == 1

    def usage_rows(self) -> "QuerySet[Any]":
        """The rollup rows of the period, with `department`, `deployment` and the counters: the
        monthly ones when the period is whole months (fewer rows), else the daily ones."""
        if self.whole_months:
            return MonthlyUsageRollup.objects.filter(month__gte=self.first_day, month__lte=self.last_day)
        return DepartmentUsageRollup.objects.filter(day__gte=self.first_day, day__lte=self.last_day)

    def usage_rows_by_person(self) -> "QuerySet[Any]":
        if self.whole_months:
            return MonthlyPersonRollup.objects.filter(month__gte=self.first_day, month__lte=self.last_day)
        return UsageRollup.objects.filter(day__gte=self.first_day, day__lte=self.last_day)

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range((self.last_day - self.first_day).days + 1)]


# Fixed (PTU) costs -----------------------------------------------------------------------------


class PriceBook:
    """Every price of the given SKUs, read once: the per-day lookups of a report then cost no
    queries. Same rule as `price_in_force`: the most specific row, then the latest start."""

    def __init__(self, skus: Iterable[str]) -> None:
        self.prices = list(Price.objects.filter(sku__in=list(skus)).order_by("-valid_from"))

    def on(self, *, model_name: str, model_version: str, sku: str, day: date) -> Price | None:
        best: tuple[int, date] | None = None
        found = None
        for price in self.prices:
            if price.sku != sku or price.valid_from > day:
                continue
            if price.model_name == model_name and price.model_version == model_version:
                rank = 2
            elif price.model_name == model_name and price.model_version == "":
                rank = 1
            elif price.model_name == "" and price.model_version == "":
                rank = 0
            else:
                continue
            if best is None or (rank, price.valid_from) > best:
                best, found = (rank, price.valid_from), price
        return found


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


def money(value: Any) -> Decimal:
    """A summed amount as Decimal: PostgreSQL gives one already; SQLite sums decimals as floats,
    so they get the field's 10 places back, as Django's own converter does."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)).quantize(TEN_PLACES)


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
                ).only(*DEPLOYMENT_FACTS)
            )
        else:
            used = {line.deployment_id for line in usage}
            deployments = [d for d in deployments if d.pk in used or _is_billed_provisioned(d, period)]
    else:
        used_by_department = period.usage_rows().filter(department=department).values("deployment_id")
        if deployments is None:
            deployments = list(
                ModelDeployment.objects.filter(
                    Q(pk__in=used_by_department) | (Q(department=department) & _billed_provisioned(period))
                ).only(*DEPLOYMENT_FACTS)
            )
        else:
            used = {row[0] for row in fetch_rows(used_by_department.values_list("deployment_id"))}
            deployments = [
                d
                for d in deployments
                if d.pk in used or (d.department_id == department.pk and _is_billed_provisioned(d, period))
            ]
        usage = _usage_by_department_and_deployment(period, [deployment.pk for deployment in deployments])
    return _allocate(period=period, deployments=deployments, usage=usage)


def _billed_provisioned(period: Period) -> Q:
    return Q(sku__in=PROVISIONED_SKUS, state__in=BILLED_STATES, created_at__lt=period.until)


def _is_billed_provisioned(deployment: ModelDeployment, period: Period) -> bool:
    return (
        deployment.sku in PROVISIONED_SKUS
        and deployment.state in BILLED_STATES
        and deployment.created_at < period.until
    )


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


# Budgets ---------------------------------------------------------------------------------------


def department_spend(*, department: Department, on: date, now: datetime | None = None) -> Decimal:
    """The department's spend in the calendar month of `on` up to now (USD, unrounded): its
    dedicated deployments, its share of shared ones and the PTU hours accrued so far."""
    allocation = cost_allocation(period=Period.month(on, now=now), department=department)
    return allocation.department_total(department.pk)


@dataclass(frozen=True)
class BudgetStatus:
    department: Department
    spent: Decimal
    budget: Decimal

    @property
    def share(self) -> Decimal:
        return self.spent / self.budget if self.budget else ZERO

    @property
    def exhausted(self) -> bool:
        return self.budget > 0 and self.spent >= self.budget

    @property
    def warning(self) -> bool:
        return not self.exhausted and self.share >= WARNING_SHARE


def budget_status(
    *, department: Department, on: date | None = None, now: datetime | None = None
) -> BudgetStatus:
    now = now or timezone.now()
    on = on or timezone.localdate(now)
    return BudgetStatus(
        department, department_spend(department=department, on=on, now=now), department.monthly_budget
    )


def conversation_cost(*, conversation: Conversation) -> Decimal:
    total = conversation.usage_records.aggregate(total=Sum("cost"))["total"]
    return total or ZERO


# Presentation ----------------------------------------------------------------------------------


def cents(amounts: list[Decimal], *, total: Decimal | None = None) -> tuple[list[Decimal], Decimal]:
    """Round a column of amounts to cents once, so that the rounded lines add up to the rounded
    total (largest remainder: the cents lost to rounding go to the lines that lost most). With
    `total`, the lines add up to that already rounded figure instead (a department's lines to the
    department total the company-wide report shows)."""
    if total is None:
        total = sum(amounts, ZERO).quantize(CENT, rounding=ROUND_HALF_UP)
    floors = [(amount / CENT).to_integral_value(rounding="ROUND_FLOOR") * CENT for amount in amounts]
    leftover = int(((total - sum(floors, ZERO)) / CENT).to_integral_value())
    order = sorted(range(len(amounts)), key=lambda i: (amounts[i] - floors[i], -i), reverse=True)
    rounded = list(floors)
    if leftover >= 0:
        for i in order[:leftover]:
            rounded[i] += CENT
    else:
        for i in list(reversed(order))[:-leftover]:
            rounded[i] -= CENT
    return rounded, total
