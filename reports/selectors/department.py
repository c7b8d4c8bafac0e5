"""One department's month (its leads, admins and finance): its deployments with its shares of
shared ones, chat against API and the API calls by key, its people, and the budget burn-down with
a projection to month end."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from money.allocation import CostAllocation, cost_allocation, deployments_for_costs, fetch_rows
from money.amounts import ZERO, cents, money
from money.models import DepartmentUsageRollup
from money.periods import Period
from org.models import Department
from provisioning.models import ModelDeployment
from reports.months import previous_month
from reports.selectors.callers import api_stats, by_api_caller, caller_lines, callers_table, sources_table
from reports.selectors.people import users_table
from reports.tables import (
    CHARGED,
    DEPLOYMENT,
    FIXED_COST,
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
    share_percent,
)


def department_report(*, department: Department, month: date, now: datetime | None = None) -> Report:
    now = now or timezone.now()
    period = Period.month(month, now=now)
    # Company-wide, not only this department's deployments: its figure is the one the overview
    # shows, rounded to cents together with every other department's.
    known = deployments_for_costs()
    allocation = cost_allocation(period=period, deployments=known)
    previous = cost_allocation(period=Period.month(previous_month(month), now=now), deployments=known)
    report = Report(month=month, period=period, allocation=allocation)
    shown = allocation.department_totals_in_cents().get(department.pk, ZERO)
    report.tables["deployments"] = _deployments_table(department, allocation, month=month, shown=shown)
    api = _api_tables(report, department=department, shown=shown)
    report.tables["users"] = users_table(period=period, department=department, limit=None)

    daily = _department_daily(department=department, period=period, allocation=allocation)
    today = timezone.localdate(period.until - timedelta(microseconds=1))
    report.tables["daily"] = daily_table("daily", period, daily, until=today, total=shown)
    report.chart = chart(
        report.tables["daily"], label="Spent so far (USD)", budget=department.monthly_budget, cumulative=True
    )
    report.stats = _budget_stats(department, period, allocation, previous, shown=shown) | api
    report.chart["projection"] = str(report.stats["projection"]) if report.is_current_month else None
    report.chart["month_days"] = [day.isoformat() for day in period.days]
    return report


def _api_tables(report: Report, *, department: Department, shown: Decimal) -> dict[str, Any]:
    """Chat against API, the API calls by key, and the figures of the API's stat."""
    lines = caller_lines(report.allocation, department_ids=[department.pk])
    sources = report.tables["sources"] = sources_table(
        lines,
        total=shown,
        note="The department's charges by who made the calls: people in the chat, or applications "
        "through the gateway.",
    )
    stats = api_stats(sources, spend=shown)
    report.tables["callers"] = callers_table(by_api_caller(lines), total=stats["api"])
    return stats


def _budget_stats(
    department: Department,
    period: Period,
    allocation: CostAllocation,
    previous: CostAllocation,
    *,
    shown: Decimal,
) -> dict[str, Any]:
    """Spend against the budget, last month, and where the month ends at this pace."""
    exact_spent = allocation.department_total(department.pk)
    last_month = previous.department_total(department.pk)
    elapsed = period.until - period.start
    length = period.end - period.start
    projection = (
        exact_spent * Decimal(length.total_seconds()) / Decimal(elapsed.total_seconds()) if elapsed else ZERO
    )
    projected = cents([projection])[1]
    return {
        "spend": shown,
        "budget": department.monthly_budget,
        "used": budget_used(exact_spent, department.monthly_budget),
        "last_month": previous.department_totals_in_cents().get(department.pk, ZERO),
        "change": percent(exact_spent - last_month, last_month),
        "projection": projected,
        "projection_used": percent(projected, department.monthly_budget),
        "over_budget": department.monthly_budget > 0 and projected > department.monthly_budget,
    }


def _deployments_table(
    department: Department, allocation: CostAllocation, *, month: date, shown: Decimal
) -> Table:
    rows = []
    for charge in sorted(allocation.department_charges(department.pk), key=lambda c: -c.total):
        deployment = allocation.deployments[charge.deployment_id].deployment
        shared = deployment.scope == ModelDeployment.Scope.SHARED
        rows.append(
            {
                "deployment": deployment.display_name,
                "deployment_id": deployment.pk,
                "url": month_url("reports:deployment", deployment.pk, month),
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
    return rounded(
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
