"""Cost reports, chargeback statements, budget alerts and reconciliation.

Every figure comes from the one cost model in `money` (which reads the daily rollups,
never raw usage), so a report and the chat's budget check agree. Amounts stay exact Decimals
until a table is built; each money column is then rounded once (`cents`) so its lines add up to
its total, on the page and in the CSV alike.
"""

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from azure.core.exceptions import AzureError
from azure.mgmt.costmanagement.models import (
    QueryAggregation,
    QueryDataset,
    QueryDefinition,
    QueryGrouping,
    QueryTimePeriod,
)
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from base.text import one_line
from money.allocation import (
    Charge,
    CostAllocation,
    cost_allocation,
    deployments_for_costs,
    fetch_rows,
    fixed_costs,
)
from money.amounts import ZERO, cents, money
from money.models import DailyDeploymentRollup, DepartmentUsageRollup
from money.periods import Period
from org.models import Department, Membership, PlatformGroup, User
from provisioning.azure import cost_management_client
from provisioning.models import LandingZone, ModelDeployment, OpenAIAccount
from reports.models import BudgetAlert, ReconciliationLine

logger = logging.getLogger(__name__)

HUNDRED = Decimal(100)
ALERT_THRESHOLDS = [80, 100]
TOP = 10
# Fewer tokens than this per PTU-hour and a provisioned deployment is paying for idle capacity.
IDLE_TOKENS_PER_PTU_HOUR = Decimal(1000)


# Tables ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | money | number | percent


# Columns that several tables have, so that they read alike everywhere.
DEPARTMENT = Column("department", "Department")
DEPLOYMENT = Column("deployment", "Deployment")
MODEL = Column("model", "Model")
REQUESTS = Column("requests", "Requests", "number")
TOKENS = Column("tokens", "Tokens", "number")
TOKEN_COST = Column("token_cost", "Tokens (USD)", "money")
FIXED_COST = Column("fixed_cost", "PTU hours (USD)", "money")
CHARGED = Column("total", "Charged (USD)", "money")


@dataclass
class Table:
    """A table as the page shows it and the CSV exports it: same rows, same rounded figures."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    note: str = ""
    csv_url: str = ""

    def money_total(self, key: str) -> Decimal:
        return self.totals[key] if self.totals else sum((row[key] for row in self.rows), ZERO)


def _rounded(
    table: Table, *, total_label: str | None = "Total", anchors: dict[str, Decimal] | None = None
) -> Table:
    """Round each money column once; the totals row (if any) is the rounded exact total, or the
    figure given in `anchors` (a department total the company-wide report already rounded)."""
    totals: dict[str, Any] = {table.columns[0].key: total_label} if total_label else {}
    for column in table.columns:
        if column.kind != "money":
            continue
        anchor = (anchors or {}).get(column.key) if table.rows else None
        rounded, total = cents([row[column.key] for row in table.rows], total=anchor)
        for row, amount in zip(table.rows, rounded, strict=True):
            row[column.key] = amount
        totals[column.key] = total
    if total_label:
        for column in table.columns:
            if column.kind == "number" and all(isinstance(row.get(column.key), int) for row in table.rows):
                totals[column.key] = sum(row[column.key] for row in table.rows)
        table.totals = totals
    return table


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return share_percent(part / whole) if whole else None


def share_percent(share: Decimal) -> Decimal:
    """A share (0 to 1) as a percentage to one decimal."""
    return (share * HUNDRED).quantize(Decimal("0.1"))


def budget_used(spent: Decimal, budget: Decimal) -> Decimal | None:
    """Share of the budget used, from the exact spend and rounded down, so a page says 100% exactly
    when the chat's budget check (which compares exact figures) stops."""
    return (spent / budget * HUNDRED).quantize(Decimal("0.1"), rounding=ROUND_DOWN) if budget else None


# Months ----------------------------------------------------------------------------------------


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(day: date) -> date:
    return month_start(month_start(day) - timedelta(days=1))


def next_month(day: date) -> date:
    return month_start(month_start(day) + timedelta(days=32))


# The first month a cost page shows: no Azure OpenAI cost is older, and the pages' month
# arithmetic (the month before, for comparisons) stays inside the calendar.
EARLIEST_MONTH = date(2000, 1, 1)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


class MonthInvalid(Exception):
    """A month the cost pages cannot show; the message says what to enter instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def month_parse(value: str | None, *, today: date) -> date:
    """`2026-10` -> 1 Oct 2026; nothing -> this month. Anything else (not YYYY-MM, a future month
    or one before EARLIEST_MONTH) raises MonthInvalid."""
    latest = month_start(today)
    if not value:
        return latest
    found = _MONTH.fullmatch(value)
    try:
        parsed = date(int(found[1]), int(found[2]), 1) if found else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise MonthInvalid(f"Enter a month as year and month, for example {latest:%Y-%m}.")
    if not EARLIEST_MONTH <= parsed <= latest:
        raise MonthInvalid(f"Choose a month from {EARLIEST_MONTH:%B %Y} to {latest:%B %Y}.")
    return parsed


# Overview --------------------------------------------------------------------------------------


@dataclass
class Report:
    """Everything one cost page shows for one month."""

    month: date
    period: Period
    allocation: CostAllocation
    tables: dict[str, Table] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)

    @property
    def is_current_month(self) -> bool:
        return self.period.until < self.period.end


def _deployment_label(deployment: ModelDeployment) -> str:
    return deployment.display_name


def _daily_totals(period: Period, allocation: CostAllocation) -> dict[date, Decimal]:
    daily: dict[date, Decimal] = dict.fromkeys(period.days, ZERO)
    rows = (
        DailyDeploymentRollup.objects.filter(day__gte=period.first_day, day__lte=period.last_day)
        .order_by()
        .values("day")
        .annotate(cost=Sum("cost"))
    )
    for row in rows:
        daily[row["day"]] += row["cost"] or ZERO
    for (_deployment_id, day), cost in allocation.fixed_daily.items():
        daily[day] += cost
    return daily


def _daily_table(
    name: str, period: Period, daily: dict[date, Decimal], *, until: date, total: Decimal | None = None
) -> Table:
    days = [day for day in period.days if day <= until]
    table = Table(
        name=name,
        title="Spend per day",
        columns=[Column("day", "Day"), Column("spend", "Spend (USD)", "money")],
        rows=[{"day": day, "spend": daily.get(day, ZERO)} for day in days],
    )
    return _rounded(table, anchors={"spend": total} if total is not None else None)


def _chart(
    table: Table, *, label: str, budget: Decimal | None = None, cumulative: bool = False
) -> dict[str, Any]:
    values = [row["spend"] for row in table.rows]
    running: list[str] = []
    total = ZERO
    for value in values:
        total += value
        running.append(str(total))
    return {
        "label": label,
        "days": [row["day"].isoformat() for row in table.rows],
        "spend": [str(value) for value in values],
        "cumulative": running if cumulative else None,
        "budget": str(budget) if budget is not None else None,
    }


def overview_report(*, month: date, now: datetime | None = None, complete: bool = False) -> Report:
    """The company-wide month: departments, cost centers, daily spend, top deployments, models and
    users, shared services and their split, idle provisioned deployments. The page shows the top
    lines of the long tables; `complete` (the CSV exports) gives every line."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    known = deployments_for_costs()
    allocation = cost_allocation(period=period, deployments=known)
    previous = cost_allocation(period=Period.month(previous_month(month), now=now), deployments=known)
    report = Report(month=month, period=period, allocation=allocation)
    departments = list(Department.objects.order_by("name"))
    exact = {department.pk: allocation.department_total(department.pk) for department in departments}
    shown = allocation.department_totals_in_cents()
    shown_before = previous.department_totals_in_cents()
    spend = {department.pk: shown.get(department.pk, ZERO) for department in departments}
    before = {department.pk: shown_before.get(department.pk, ZERO) for department in departments}

    department_table = Table(
        name="departments",
        title="Departments",
        columns=[
            DEPARTMENT,
            Column("cost_center", "Cost center"),
            Column("spend", "Spend (USD)", "money"),
            Column("budget", "Budget (USD)", "money"),
            Column("used", "% of budget", "percent"),
            Column("last_month", "Last month (USD)", "money"),
            Column("change", "vs last month", "percent"),
        ],
        rows=[
            {
                "department": department.name,
                "url": reverse("reports:department", args=[department.slug]) + f"?month={month:%Y-%m}",
                "cost_center": department.cost_center,
                "spend": spend[department.pk],
                "budget": department.monthly_budget,
                "used": budget_used(exact[department.pk], department.monthly_budget),
                "last_month": before[department.pk],
                "change": percent(spend[department.pk] - before[department.pk], before[department.pk]),
            }
            for department in departments
        ],
    )
    department_table.rows.sort(key=lambda row: (-row["spend"], row["department"]))
    # Already in cents (rounded across the company); the totals are their sums.
    report.tables["departments"] = _rounded(
        department_table,
        anchors={
            "spend": sum(spend.values(), ZERO),
            "last_month": sum(before.values(), ZERO),
            "budget": sum((d.monthly_budget for d in departments), ZERO),
        },
    )
    totals = report.tables["departments"].totals or {}
    totals["used"] = budget_used(sum(exact.values(), ZERO), totals["budget"])
    totals["change"] = percent(totals["spend"] - totals["last_month"], totals["last_month"])

    by_center: dict[str, dict[str, Any]] = {}
    for department in departments:
        line = by_center.setdefault(
            department.cost_center,
            {"cost_center": department.cost_center, "departments": [], "spend": ZERO, "budget": ZERO},
        )
        line["departments"].append(department.name)
        line["spend"] += spend[department.pk]
        line["budget"] += department.monthly_budget
    center_rows = []
    for line in sorted(by_center.values(), key=lambda line: (-line["spend"], line["cost_center"])):
        center_rows.append(
            {
                **line,
                "departments": ", ".join(line["departments"]),
                "used": percent(line["spend"], line["budget"]),
                "url": reverse("reports:chargeback", args=[line["cost_center"]]) + f"?month={month:%Y-%m}",
            }
        )
    report.tables["cost_centers"] = _rounded(
        Table(
            name="cost-centers",
            title="Cost centers",
            columns=[
                Column("cost_center", "Cost center"),
                Column("departments", "Departments"),
                Column("spend", "Spend (USD)", "money"),
                Column("budget", "Budget (USD)", "money"),
                Column("used", "% of budget", "percent"),
            ],
            rows=center_rows,
        )
    )

    daily = _daily_totals(period, allocation)
    report.tables["daily"] = _daily_table(
        "daily", period, daily, until=timezone.localdate(period.until), total=sum(spend.values(), ZERO)
    )
    report.chart = _chart(report.tables["daily"], label="Spend per day (USD)")

    department_names = {department.pk: department.name for department in departments}
    limit = None if complete else TOP
    report.tables["deployments"] = _deployments_table(allocation, department_names, month=month, limit=limit)
    report.tables["models"] = _models_table(allocation)
    report.tables["users"] = _users_table(period=period, department=None, limit=limit)
    report.tables["shared"] = _shared_table(allocation, department_names, per_service=None if complete else 5)
    report.tables["idle"] = _idle_table(allocation, department_names, month=month)

    total = report.tables["departments"].money_total("spend")
    budget = report.tables["departments"].money_total("budget")
    previous_total = report.tables["departments"].money_total("last_month")
    report.stats = {
        "spend": total,
        "budget": budget,
        "used": percent(total, budget),
        "last_month": previous_total,
        "change": percent(total - previous_total, previous_total),
        "departments_over": sum(
            1 for row in report.tables["departments"].rows if (row["used"] or 0) >= HUNDRED
        ),
    }
    return report


def _deployments_table(
    allocation: CostAllocation, department_names: dict[int, str], *, month: date, limit: int | None
) -> Table:
    entries = sorted(allocation.deployments.values(), key=lambda entry: (-entry.total, entry.deployment.pk))
    rows: list[dict[str, Any]] = []
    for entry in entries:
        deployment = entry.deployment
        if not entry.total and not entry.tokens:
            continue
        rows.append(
            {
                "entry": entry,
                "requests": entry.requests,
                "tokens": entry.tokens,
                "token_cost": entry.token_cost,
                "fixed_cost": entry.fixed_cost,
                "total": entry.total,
            }
        )
    note = ""
    if limit is not None and len(rows) > limit:
        rest = rows[limit:]
        rows = rows[:limit]
        rows.append(
            {
                "deployment": f"{len(rest)} more deployments",
                "scope": "",
                "model": "",
                "departments": "",
                "requests": sum(row["requests"] for row in rest),
                "tokens": sum(row["tokens"] for row in rest),
                "token_cost": sum((row["token_cost"] for row in rest), ZERO),
                "fixed_cost": sum((row["fixed_cost"] for row in rest), ZERO),
                "total": sum((row["total"] for row in rest), ZERO),
            }
        )
        note = "The top deployments by cost; the rest are summed in the last line."
    for row in rows:
        # Labels and links only for the lines shown: a thousand reverse() calls cost more than
        # the figures.
        entry = row.pop("entry", None)
        if entry is None:
            continue
        deployment = entry.deployment
        payers = sorted(department_names.get(d, "") for d in allocation.shares(deployment.pk))
        row.update(
            {
                "deployment": _deployment_label(deployment),
                "url": reverse("reports:deployment", args=[deployment.pk]) + f"?month={month:%Y-%m}",
                "scope": deployment.get_scope_display(),
                "model": f"{deployment.model_name} · {deployment.get_sku_display()}",
                "departments": ", ".join(payers) if len(payers) <= 3 else f"{len(payers)} departments",
            }
        )
    return _rounded(
        Table(
            name="deployments",
            title="Top deployments" if limit else "Deployments",
            columns=[
                DEPLOYMENT,
                Column("scope", "Scope"),
                MODEL,
                Column("departments", "Charged to"),
                REQUESTS,
                TOKENS,
                TOKEN_COST,
                FIXED_COST,
                Column("total", "Total (USD)", "money"),
            ],
            rows=rows,
            note=note,
        )
    )


def _models_table(allocation: CostAllocation) -> Table:
    by_model: dict[str, dict[str, Any]] = {}
    for entry in allocation.deployments.values():
        deployment = entry.deployment
        key = f"{deployment.model_name} {deployment.model_version}"
        line = by_model.setdefault(
            key, {"model": key, "deployments": 0, "tokens": 0, "requests": 0, "total": ZERO}
        )
        line["deployments"] += 1
        line["tokens"] += entry.tokens
        line["requests"] += entry.requests
        line["total"] += entry.total
    rows = sorted(by_model.values(), key=lambda line: (-line["total"], line["model"]))
    return _rounded(
        Table(
            name="models",
            title="Models",
            columns=[
                MODEL,
                Column("deployments", "Deployments", "number"),
                REQUESTS,
                TOKENS,
                Column("total", "Cost (USD)", "money"),
            ],
            rows=rows,
        )
    )


def _users_table(*, period: Period, department: Department | None, limit: int | None = TOP) -> Table:
    rows_query = period.usage_rows_by_person()
    if department is not None:
        rows_query = rows_query.filter(department=department)
    grouped = (
        rows_query.order_by()
        .values("user_key")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by("-cost", "user_key")
    )
    if limit is not None:
        grouped = grouped[:limit]
    lines = list(grouped)
    names = dict(User.objects.filter(pk__in=[line["user_key"] for line in lines]).values_list("pk", "email"))
    rows = [
        {
            "user": names.get(
                line["user_key"], "Without a person (API)" if not line["user_key"] else "Former user"
            ),
            "requests": int(line["requests"]),
            "tokens": int(line["input_tokens"]) + int(line["output_tokens"]),
            "cost": line["cost"] or ZERO,
        }
        for line in lines
    ]
    return _rounded(
        Table(
            name="users",
            title="Top users" if limit else "People",
            columns=[
                Column("user", "Person"),
                REQUESTS,
                TOKENS,
                Column("cost", "Metered (USD)", "money"),
            ],
            rows=rows,
            note="What each person's calls cost at the price in force, before shared deployments are split.",
        ),
        total_label=None,
    )


def _split_rows(shown: list[Charge], rest: list[Charge], names: dict[int, str]) -> list[dict[str, Any]]:
    """How a shared deployment's cost is split: a line per department in `shown`, the `rest` in
    one line without names."""
    rows: list[dict[str, Any]] = [
        {
            "department": names.get(charge.department_id, ""),
            "tokens": charge.tokens,
            "share": share_percent(charge.share),
            "total": charge.total,
        }
        for charge in shown
    ]
    if rest:
        rows.append(
            {
                "department": f"{len(rest)} other department{'s' if len(rest) != 1 else ''}",
                "tokens": sum(charge.tokens for charge in rest),
                "share": share_percent(sum((charge.share for charge in rest), ZERO)),
                "total": sum((charge.total for charge in rest), ZERO),
            }
        )
    return rows


def _shared_table(
    allocation: CostAllocation, department_names: dict[int, str], *, per_service: int | None
) -> Table:
    """Each shared service's split; on the page its largest `per_service` departments and the
    rest in one line (a service granted to every department would otherwise fill the page)."""
    rows: list[dict[str, Any]] = []
    for entry in sorted(allocation.deployments.values(), key=lambda entry: -entry.total):
        deployment = entry.deployment
        if deployment.scope != ModelDeployment.Scope.SHARED:
            continue
        charges = sorted(allocation.deployment_charges(deployment.pk), key=lambda c: -c.total)
        shown, rest = (charges, []) if per_service is None else (charges[:per_service], charges[per_service:])
        for row in _split_rows(shown, rest, department_names):
            rows.append({"service": deployment.display_name, **row})
    return _rounded(
        Table(
            name="shared",
            title="Shared services and how their cost is split",
            columns=[
                Column("service", "Shared service"),
                DEPARTMENT,
                TOKENS,
                Column("share", "Share of tokens", "percent"),
                CHARGED,
            ],
            rows=rows,
            note="A shared deployment's whole cost (tokens and PTU hours) is split by each department's "
            "share of its tokens this month.",
        )
    )


def _idle_table(allocation: CostAllocation, department_names: dict[int, str], *, month: date) -> Table:
    rows: list[dict[str, Any]] = []
    for entry in allocation.deployments.values():
        if not entry.fixed_cost:
            continue
        rate = entry.tokens_per_ptu_hour
        if rate is not None and rate >= IDLE_TOKENS_PER_PTU_HOUR:
            continue
        deployment = entry.deployment
        rows.append(
            {
                "deployment": deployment.display_name,
                "url": reverse("reports:deployment", args=[deployment.pk]) + f"?month={month:%Y-%m}",
                "department": department_names.get(deployment.department_id, ""),
                "capacity": deployment.capacity_label,
                "tokens": entry.tokens,
                "fixed_cost": entry.fixed_cost,
            }
        )
    rows.sort(key=lambda row: -row["fixed_cost"])
    return _rounded(
        Table(
            name="idle",
            title="Idle provisioned deployments",
            columns=[
                DEPLOYMENT,
                DEPARTMENT,
                Column("capacity", "Capacity"),
                TOKENS,
                FIXED_COST,
            ],
            rows=rows,
            note=f"Provisioned deployments that served fewer than {IDLE_TOKENS_PER_PTU_HOUR:,.0f} tokens "
            "per PTU-hour this month: capacity paid for and hardly used.",
        )
    )


# One department --------------------------------------------------------------------------------


def department_report(*, department: Department, month: date, now: datetime | None = None) -> Report:
    """One department's month: its deployments (with shares of shared ones), its people, the
    budget burn-down with a projection to month end."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    # Company-wide, not only this department's deployments: its figure is the one the overview
    # shows, rounded to cents together with every other department's.
    known = deployments_for_costs()
    allocation = cost_allocation(period=period, deployments=known)
    previous = cost_allocation(period=Period.month(previous_month(month), now=now), deployments=known)
    report = Report(month=month, period=period, allocation=allocation)
    charges = allocation.department_charges(department.pk)
    shown = allocation.department_totals_in_cents().get(department.pk, ZERO)

    rows = []
    for charge in sorted(charges, key=lambda c: -c.total):
        deployment = allocation.deployments[charge.deployment_id].deployment
        shared = deployment.scope == ModelDeployment.Scope.SHARED
        rows.append(
            {
                "deployment": deployment.display_name,
                "url": reverse("reports:deployment", args=[deployment.pk]) + f"?month={month:%Y-%m}",
                "scope": deployment.get_scope_display(),
                "model": f"{deployment.model_name} · {deployment.get_sku_display()}",
                "share": share_percent(charge.share) if shared else None,
                "requests": charge.requests,
                "tokens": charge.tokens,
                "token_cost": charge.token_cost,
                "fixed_cost": charge.fixed_cost,
                "total": charge.total,
            }
        )
    report.tables["deployments"] = _rounded(
        Table(
            name="deployments",
            title="Deployments",
            columns=[
                DEPLOYMENT,
                Column("scope", "Scope"),
                MODEL,
                Column("share", "Share of tokens", "percent"),
                REQUESTS,
                TOKENS,
                TOKEN_COST,
                FIXED_COST,
                CHARGED,
            ],
            rows=rows,
            note="Shared services are charged by this department's share of their tokens this month.",
        ),
        anchors={"total": shown},
    )
    report.tables["users"] = _users_table(period=period, department=department, limit=None)

    daily = _department_daily(department=department, period=period, allocation=allocation)
    today = timezone.localdate(period.until - timedelta(microseconds=1))
    report.tables["daily"] = _daily_table("daily", period, daily, until=today, total=shown)
    report.chart = _chart(
        report.tables["daily"], label="Spent so far (USD)", budget=department.monthly_budget, cumulative=True
    )

    exact_spent = allocation.department_total(department.pk)
    last_month = previous.department_total(department.pk)
    elapsed = period.until - period.start
    length = period.end - period.start
    projection = (
        exact_spent * Decimal(length.total_seconds()) / Decimal(elapsed.total_seconds()) if elapsed else ZERO
    )
    projected = cents([projection])[1]
    report.stats = {
        "spend": shown,
        "budget": department.monthly_budget,
        "used": budget_used(exact_spent, department.monthly_budget),
        "last_month": previous.department_totals_in_cents().get(department.pk, ZERO),
        "change": percent(exact_spent - last_month, last_month),
        "projection": projected,
        "projection_used": percent(projected, department.monthly_budget),
        "over_budget": department.monthly_budget > 0 and projected > department.monthly_budget,
    }
    report.chart["projection"] = str(projected) if report.is_current_month else None
    report.chart["month_days"] = [day.isoformat() for day in period.days]
    return report


def _department_daily(
    *, department: Department, period: Period, allocation: CostAllocation
) -> dict[date, Decimal]:
    """The department's charges spread over the days, adding up to the month: its own metered
    tokens by day; for a shared deployment, each day's tokens of this department at the
    deployment's cost per token for the month; provisioned hours of its own by day."""
    daily: dict[date, Decimal] = dict.fromkeys(period.days, ZERO)
    charges = allocation.department_charges(department.pk)
    shared = {
        charge.deployment_id: allocation.deployments[charge.deployment_id]
        for charge in charges
        if allocation.deployments[charge.deployment_id].deployment.scope == ModelDeployment.Scope.SHARED
        and allocation.deployments[charge.deployment_id].tokens
    }
    rows = (
        DepartmentUsageRollup.objects.filter(
            department=department, day__gte=period.first_day, day__lte=period.last_day
        )
        .order_by()
        .values_list("day", "deployment_id")
        .annotate(Sum("input_tokens"), Sum("output_tokens"), Sum("cost"))
    )
    for day, deployment_id, input_tokens, output_tokens, cost in fetch_rows(rows):
        day = day if isinstance(day, date) else date.fromisoformat(day)
        entry = shared.get(deployment_id)
        if entry is not None:
            daily[day] += (
                Decimal(int(input_tokens) + int(output_tokens)) / Decimal(entry.tokens) * entry.total
            )
        else:
            daily[day] += money(cost)
    fixed_share = {
        c.deployment_id: c.fixed_cost for c in charges if c.fixed_cost and c.deployment_id not in shared
    }
    for (deployment_id, day), cost in allocation.fixed_daily.items():
        whole = allocation.deployments[deployment_id].fixed_cost
        if deployment_id in fixed_share and whole:
            daily[day] += cost * fixed_share[deployment_id] / whole
    return daily


# One deployment --------------------------------------------------------------------------------


def deployment_report(
    *,
    deployment: ModelDeployment,
    month: date,
    now: datetime | None = None,
    named_departments: set[int] | None = None,
) -> Report:
    """Usage and cost of one deployment per day, and who it was charged to. With
    `named_departments` (a lead's), other departments' charges are one line without names."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    allocation = cost_allocation(period=period, department=deployment.department)
    if deployment.pk not in allocation.deployments:
        # The owner neither used nor pays for it (a shared service): read it on its own.
        allocation = cost_allocation(period=period)
    report = Report(month=month, period=period, allocation=allocation)
    usage = {
        row["day"]: row
        for row in DailyDeploymentRollup.objects.filter(
            deployment=deployment, day__gte=period.first_day, day__lte=period.last_day
        )
        .order_by()
        .values("day")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
    }
    fixed = fixed_costs(deployments=[deployment], period=period)
    today = timezone.localdate(period.until - timedelta(microseconds=1))
    rows = []
    for day in period.days:
        if day > today:
            break
        line = usage.get(day, {})
        token_cost = line.get("cost") or ZERO
        fixed_cost = fixed.get((deployment.pk, day), (ZERO, ZERO))[1]
        rows.append(
            {
                "day": day,
                "requests": int(line.get("requests") or 0),
                "tokens": int(line.get("input_tokens") or 0) + int(line.get("output_tokens") or 0),
                "token_cost": token_cost,
                "fixed_cost": fixed_cost,
                "spend": token_cost + fixed_cost,
            }
        )
    report.tables["daily"] = _rounded(
        Table(
            name="daily",
            title="Usage and cost per day",
            columns=[
                Column("day", "Day"),
                REQUESTS,
                TOKENS,
                TOKEN_COST,
                FIXED_COST,
                Column("spend", "Total (USD)", "money"),
            ],
            rows=rows,
        )
    )
    report.chart = _chart(report.tables["daily"], label="Cost per day (USD)")
    report.chart["tokens"] = [row["tokens"] for row in report.tables["daily"].rows]
    names = dict(Department.objects.values_list("pk", "name"))
    charges = sorted(allocation.deployment_charges(deployment.pk), key=lambda c: -c.total)

    def named(charge: Charge) -> bool:
        return named_departments is None or charge.department_id in named_departments

    shown = [charge for charge in charges if named(charge)]
    split = _split_rows(shown, [charge for charge in charges if not named(charge)], names)
    report.tables["split"] = _rounded(
        Table(
            name="split",
            title="Charged to",
            columns=[
                DEPARTMENT,
                TOKENS,
                Column("share", "Share", "percent"),
                CHARGED,
            ],
            rows=split,
        )
    )
    entry = allocation.deployments.get(deployment.pk)
    report.stats = {
        "spend": report.tables["daily"].money_total("spend"),
        "tokens": sum(row["tokens"] for row in rows),
        "requests": sum(row["requests"] for row in rows),
        "active_hours": entry.active_hours.quantize(Decimal("0.1")) if entry else ZERO,
    }
    return report


# Chargeback ------------------------------------------------------------------------------------


def chargeback_statement(*, cost_center: str, month: date, now: datetime | None = None) -> Report:
    """Every line a cost center is charged for in a month: one per department and deployment."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    departments = list(Department.objects.filter(cost_center=cost_center).order_by("name"))
    allocation = cost_allocation(period=period)
    shown = allocation.department_totals_in_cents()
    report = Report(month=month, period=period, allocation=allocation)
    rows: list[dict[str, Any]] = []
    for department in departments:
        lines: list[dict[str, Any]] = []
        for charge in sorted(allocation.department_charges(department.pk), key=lambda c: -c.total):
            deployment = allocation.deployments[charge.deployment_id].deployment
            shared = deployment.scope == ModelDeployment.Scope.SHARED
            basis = (
                f"{share_percent(charge.share)}% of the shared service's tokens" if shared else "dedicated"
            )
            lines.append(
                {
                    "department": department.name,
                    "description": f"{deployment.display_name} ({deployment.model_name}, "
                    f"{deployment.get_sku_display()}, {basis})",
                    "tokens": charge.tokens,
                    "token_cost": charge.token_cost,
                    "fixed_cost": charge.fixed_cost,
                    "amount": charge.total,
                }
            )
        # Each department's lines add up to the figure its own pages show.
        amounts, _total = cents([line["amount"] for line in lines], total=shown.get(department.pk, ZERO))
        for line, amount in zip(lines, amounts, strict=True):
            line["amount"] = amount
        rows.extend(lines)
    report.tables["lines"] = _rounded(
        Table(
            name="chargeback",
            title="Charges",
            columns=[
                DEPARTMENT,
                Column("description", "Charged for"),
                TOKENS,
                TOKEN_COST,
                FIXED_COST,
                Column("amount", "Amount (USD)", "money"),
            ],
            rows=rows,
        ),
        anchors={"amount": sum((shown.get(department.pk, ZERO) for department in departments), ZERO)},
    )
    report.stats = {
        "departments": departments,
        "amount": report.tables["lines"].money_total("amount"),
        "budget": sum((department.monthly_budget for department in departments), ZERO),
        "final": not report.is_current_month,
    }
    return report


def cost_centers() -> list[str]:
    return list(Department.objects.order_by("cost_center").values_list("cost_center", flat=True).distinct())


# Budget alerts ---------------------------------------------------------------------------------


def budget_alerts_send(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Email the leads (and finance) of every department that crossed 80% or 100% of its monthly
    budget, once per threshold and month. Safe to run twice: the unique alert row is the guard."""
    now = now or timezone.now()
    month = month_start(timezone.localdate(now))
    allocation = cost_allocation(period=Period.month(month, now=now))
    sent: list[BudgetAlert] = []
    finance = list(
        User.objects.filter(groups__name=PlatformGroup.FINANCE.value, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    already = set(BudgetAlert.objects.filter(month=month).values_list("department_id", "threshold"))
    for department in Department.objects.filter(monthly_budget__gt=0):
        spent = allocation.department_total(department.pk)
        crossed = [t for t in ALERT_THRESHOLDS if spent * HUNDRED >= department.monthly_budget * t]
        new = [t for t in crossed if (department.pk, t) not in already]
        if not new:
            continue
        leads = list(
            department.memberships.filter(role=Membership.Role.LEAD, user__is_active=True).values_list(
                "user__email", flat=True
            )
        )
        recipients = sorted(set(leads) | set(finance))
        created = []
        for threshold in new:
            try:
                with transaction.atomic():
                    created.append(
                        BudgetAlert.objects.create(
                            department=department,
                            month=month,
                            threshold=threshold,
                            spent=cents([spent])[1],
                            budget=department.monthly_budget,
                            recipients=recipients,
                        )
                    )
            except IntegrityError:
                continue  # another run sent it meanwhile
        if not created:
            continue
        # One email names the highest threshold crossed; a jump past both does not send two.
        alert = max(created, key=lambda alert: alert.threshold)
        if recipients:
            _budget_alert_email(alert=alert, department=department, recipients=recipients)
        sent.extend(created)
    return sent


def _budget_alert_email(*, alert: BudgetAlert, department: Department, recipients: list[str]) -> None:
    used = percent(alert.spent, alert.budget)
    if alert.threshold >= 100:
        subject = f"{department.name} has used its whole Azure OpenAI budget for {alert.month:%B %Y}"
        consequence = "The chat is paused for the department until the budget is raised or the month ends."
    else:
        subject = (
            f"{department.name} has used {alert.threshold}% of its Azure OpenAI budget "
            f"for {alert.month:%B %Y}"
        )
        consequence = "At 100% the chat pauses for the department until the budget is raised."
    body = (
        f"{department.name} (cost center {department.cost_center}) has spent ${alert.spent:,.2f} of its "
        f"${alert.budget:,.2f} monthly budget ({used}%).\n\n{consequence}\n\n"
        f"See where the money goes: "
        f"{settings.SITE_URL.rstrip('/')}{reverse('reports:department', args=[department.slug])}\n"
    )
    # A name with a line break would make the subject an invalid header and the alert unsent.
    send_mail(one_line(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)


# Reconciliation --------------------------------------------------------------------------------


def reconciliation_run(*, month: date, now: datetime | None = None) -> list[ReconciliationLine]:
    """Ask Azure Cost Management what each account cost in the month and keep it next to the
    metered cost. An Azure failure for one landing zone is recorded on its accounts; the others
    are still reconciled."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    allocation = cost_allocation(period=period)
    metered: dict[int, Decimal] = defaultdict(Decimal)
    for entry in allocation.deployments.values():
        if entry.deployment.account_id is not None:
            metered[entry.deployment.account_id] += entry.total
    accounts = list(
        OpenAIAccount.objects.filter(arm_id__gt="")
        .select_related("landing_zone")
        .order_by("landing_zone", "name")
    )
    by_zone: dict[int, list[OpenAIAccount]] = defaultdict(list)
    for account in accounts:
        if account.pk in metered or account.state == OpenAIAccount.State.ACTIVE:
            by_zone[account.landing_zone_id].append(account)
    lines = []
    with cost_management_client(retries=2) as client:
        for zone_accounts in by_zone.values():
            zone = zone_accounts[0].landing_zone
            try:
                billed, error = _billed_by_resource(client=client, zone=zone, period=period), ""
            except AzureError as failure:
                logger.warning("Cost Management query for %s failed: %s", zone, failure)
                billed, error = None, (getattr(failure, "message", "") or str(failure)).splitlines()[0]
            for account in zone_accounts:
                line, _ = ReconciliationLine.objects.update_or_create(
                    month=month,
                    account=account,
                    defaults={
                        "metered": metered.get(account.pk, ZERO),
                        "billed": None if billed is None else billed.get(account.arm_id.lower(), ZERO),
                        "error": error,
                        "checked_at": now,
                    },
                )
                lines.append(line)
    return lines


def _billed_by_resource(*, client: Any, zone: LandingZone, period: Period) -> dict[str, Decimal]:
    scope = f"/subscriptions/{zone.subscription_id}/resourceGroups/{zone.resource_group}"
    last = timezone.localdate(period.until - timedelta(microseconds=1))
    zone_info = timezone.get_current_timezone()
    query = QueryDefinition(
        type="ActualCost",
        timeframe="Custom",
        time_period=QueryTimePeriod(
            from_property=datetime.combine(period.first_day, time.min, tzinfo=zone_info),
            to=datetime.combine(last, time(23, 59, 59), tzinfo=zone_info),
        ),
        dataset=QueryDataset(
            granularity="None",
            aggregation={"totalCost": QueryAggregation(name="Cost", function="Sum")},
            grouping=[QueryGrouping(type="Dimension", name="ResourceId")],
        ),
    )
    result = client.query.usage(scope, query)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    if result is None:
        return billed
    names = [column.name for column in result.columns or []]
    cost_at = next(i for i, name in enumerate(names) if name in {"Cost", "PreTaxCost", "CostUSD"})
    resource_at = names.index("ResourceId")
    for row in result.rows or []:
        # Cost Management answers JSON numbers; str() keeps the digits Azure sent.
        billed[str(row[resource_at]).lower()] += Decimal(str(row[cost_at]))
    return billed


def reconciliation_lines(*, month: date) -> list[ReconciliationLine]:
    return list(
        ReconciliationLine.objects.filter(month=month).select_related("account", "account__landing_zone")
    )


def months_with_usage() -> Iterable[date]:
    return DepartmentUsageRollup.objects.dates("day", "month", order="DESC")
