"""The company-wide month (admins and finance): departments, cost centers, chat against API, daily
spend, top deployments, models, people and API callers, shared services and their split, idle
provisioned deployments."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from money.allocation import CostAllocation, cost_allocation, deployments_for_costs
from money.amounts import ZERO
from money.models import DailyDeploymentRollup
from money.periods import Period
from org.models import Department
from provisioning.models import ModelDeployment
from reports.months import previous_month
from reports.selectors.callers import api_stats, by_api_caller, caller_lines, callers_table, sources_table
from reports.selectors.people import TOP, users_table
from reports.tables import (
    CHARGED,
    DEPARTMENT,
    DEPLOYMENT,
    FIXED_COST,
    HUNDRED,
    MODEL,
    REQUESTS,
    TOKEN_COST,
    TOKENS,
    Column,
    Report,
    Table,
    budget_used,
    chart,
    daily_table,
    month_url,
    percent,
    rounded,
    split_rows,
)

# Fewer tokens than this per PTU-hour and a provisioned deployment is paying for idle capacity.
IDLE_TOKENS_PER_PTU_HOUR = Decimal(1000)


@dataclass(frozen=True)
class DepartmentSpend:
    """Each department's spend this month and last, by department id: exact (what budget shares
    are taken of) and in cents, rounded across the company as every page shows them."""

    exact: dict[int, Decimal]
    spend: dict[int, Decimal]
    before: dict[int, Decimal]

    @classmethod
    def of(
        cls, departments: list[Department], allocation: CostAllocation, previous: CostAllocation
    ) -> "DepartmentSpend":
        shown = allocation.department_totals_in_cents()
        shown_before = previous.department_totals_in_cents()
        return cls(
            exact={department.pk: allocation.department_total(department.pk) for department in departments},
            spend={department.pk: shown.get(department.pk, ZERO) for department in departments},
            before={department.pk: shown_before.get(department.pk, ZERO) for department in departments},
        )


def overview_report(*, month: date, now: datetime | None = None, complete: bool = False) -> Report:
    """The company-wide month. The page shows the top lines of the long tables; `complete` (the
    CSV exports) gives every line."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    known = deployments_for_costs()
    allocation = cost_allocation(period=period, deployments=known)
    previous = cost_allocation(period=Period.month(previous_month(month), now=now), deployments=known)
    report = Report(month=month, period=period, allocation=allocation)
    departments = list(Department.objects.order_by("name"))
    spend = DepartmentSpend.of(departments, allocation, previous)
    report.tables["departments"] = _departments_table(departments, spend, month=month)
    report.tables["cost_centers"] = _cost_centers_table(departments, spend, month=month)

    daily = _daily_totals(period, allocation)
    report.tables["daily"] = daily_table(
        "daily", period, daily, until=timezone.localdate(period.until), total=sum(spend.spend.values(), ZERO)
    )
    report.chart = chart(report.tables["daily"], label="Spend per day (USD)")

    names = {department.pk: department.name for department in departments}
    limit = None if complete else TOP
    report.tables["deployments"] = _deployments_table(allocation, names, month=month, limit=limit)
    report.tables["models"] = _models_table(allocation)
    report.tables["users"] = users_table(period=period, department=None, limit=limit)
    report.tables["shared"] = _shared_table(allocation, names, per_service=None if complete else 5)
    report.tables["idle"] = _idle_table(allocation, names, month=month)
    report.stats = _stats(report.tables["departments"]) | _api_tables(report, names, limit=limit)
    return report


def _api_tables(report: Report, department_names: dict[int, str], *, limit: int | None) -> dict[str, Any]:
    """Chat against API for the company, and its largest API callers."""
    lines = caller_lines(report.allocation)
    spend = report.tables["departments"].money_total("spend")
    sources = report.tables["sources"] = sources_table(
        lines,
        total=spend,
        note="Every department's charges by who made the calls: people in the chat, or applications "
        "through the gateway.",
    )
    stats = api_stats(sources, spend=spend)
    report.tables["callers"] = callers_table(
        by_api_caller(lines),
        total=stats["api"],
        department_names=department_names,
        limit=limit,
    )
    return stats


def _stats(departments: Table) -> dict[str, Any]:
    total = departments.money_total("spend")
    budget = departments.money_total("budget")
    previous_total = departments.money_total("last_month")
    return {
        "spend": total,
        "budget": budget,
        "used": percent(total, budget),
        "last_month": previous_total,
        "change": percent(total - previous_total, previous_total),
        "departments_over": sum(1 for row in departments.rows if (row["used"] or 0) >= HUNDRED),
    }


def _departments_table(departments: list[Department], spend: DepartmentSpend, *, month: date) -> Table:
    shown, before = spend.spend, spend.before
    table = Table(
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
                "department_slug": department.slug,
                "url": month_url("reports:department", department.slug, month),
                "cost_center": department.cost_center,
                "spend": shown[department.pk],
                "budget": department.monthly_budget,
                "used": budget_used(spend.exact[department.pk], department.monthly_budget),
                "last_month": before[department.pk],
                "change": percent(shown[department.pk] - before[department.pk], before[department.pk]),
            }
            for department in departments
        ],
    )
    table.rows.sort(key=lambda row: (-row["spend"], row["department"]))
    # Already in cents (rounded across the company); the totals are their sums.
    rounded(
        table,
        anchors={
            "spend": sum(shown.values(), ZERO),
            "last_month": sum(before.values(), ZERO),
            "budget": sum((d.monthly_budget for d in departments), ZERO),
        },
    )
    totals = table.totals or {}
    totals["used"] = budget_used(sum(spend.exact.values(), ZERO), totals["budget"])
    totals["change"] = percent(totals["spend"] - totals["last_month"], totals["last_month"])
    return table


def _cost_centers_table(departments: list[Department], spend: DepartmentSpend, *, month: date) -> Table:
    by_center: dict[str, dict[str, Any]] = {}
    for department in departments:
        line = by_center.setdefault(
            department.cost_center,
            {"cost_center": department.cost_center, "departments": [], "spend": ZERO, "budget": ZERO},
        )
        line["departments"].append(department.name)
        line["spend"] += spend.spend[department.pk]
        line["budget"] += department.monthly_budget
    rows = [
        {
            **line,
            "departments": ", ".join(line["departments"]),
            "used": percent(line["spend"], line["budget"]),
            "url": month_url("reports:chargeback", line["cost_center"], month),
        }
        for line in sorted(by_center.values(), key=lambda line: (-line["spend"], line["cost_center"]))
    ]
    return rounded(
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
            rows=rows,
        )
    )


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


# Deployments -----------------------------------------------------------------------------------


def _deployments_table(
    allocation: CostAllocation, department_names: dict[int, str], *, month: date, limit: int | None
) -> Table:
    rows = _deployment_rows(allocation)
    note = ""
    if limit is not None and len(rows) > limit:
        rows = [*rows[:limit], _the_rest(rows[limit:])]
        note = "The top deployments by cost; the rest are summed in the last line."
    for row in rows:
        # Labels and links only for the lines shown: a thousand reverse() calls cost more than
        # the figures.
        entry = row.pop("entry", None)
        if entry is not None:
            row.update(_deployment_labels(entry.deployment, allocation, department_names, month=month))
    return rounded(
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


def _deployment_rows(allocation: CostAllocation) -> list[dict[str, Any]]:
    """A line per deployment that cost or served anything, the most expensive first."""
    entries = sorted(allocation.deployments.values(), key=lambda entry: (-entry.total, entry.deployment.pk))
    return [
        {
            "entry": entry,
            "requests": entry.requests,
            "tokens": entry.tokens,
            "token_cost": entry.token_cost,
            "fixed_cost": entry.fixed_cost,
            "total": entry.total,
        }
        for entry in entries
        if entry.total or entry.tokens
    ]


def _the_rest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployments past the top ones, summed in one line."""
    return {
        "deployment": f"{len(rows)} more deployments",
        "scope": "",
        "model": "",
        "departments": "",
        "requests": sum(row["requests"] for row in rows),
        "tokens": sum(row["tokens"] for row in rows),
        "token_cost": sum((row["token_cost"] for row in rows), ZERO),
        "fixed_cost": sum((row["fixed_cost"] for row in rows), ZERO),
        "total": sum((row["total"] for row in rows), ZERO),
    }


def _deployment_labels(
    deployment: ModelDeployment, allocation: CostAllocation, department_names: dict[int, str], *, month: date
) -> dict[str, Any]:
    payers = sorted(department_names.get(d, "") for d in allocation.shares(deployment.pk))
    return {
        "deployment": deployment.display_name,
        "deployment_id": deployment.pk,
        "url": month_url("reports:deployment", deployment.pk, month),
        "scope": deployment.get_scope_display(),
        "model": f"{deployment.model_name} · {deployment.get_sku_display()}",
        "departments": ", ".join(payers) if len(payers) <= 3 else f"{len(payers)} departments",
    }


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
    return rounded(
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
        for row in split_rows(shown, rest, department_names):
            rows.append({"service": deployment.display_name, **row})
    return rounded(
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
                "url": month_url("reports:deployment", deployment.pk, month),
                "department": department_names.get(deployment.department_id, ""),
                "capacity": deployment.capacity_label,
                "tokens": entry.tokens,
                "fixed_cost": entry.fixed_cost,
            }
        )
    rows.sort(key=lambda row: -row["fixed_cost"])
    return rounded(
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
