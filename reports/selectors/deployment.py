"""One deployment's month: usage and cost per day, who it was charged to, and who made the calls
(the chat, the gateway's callers)."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from money.allocation import Charge, CostAllocation, cost_allocation
from money.amounts import ZERO
from money.models import DailyDeploymentRollup
from money.periods import Period
from org.models import Department
from provisioning.models import ModelDeployment
from reports.selectors.callers import api_stats, by_api_caller, caller_lines, callers_table, sources_table
from reports.tables import (
    CHARGED,
    DEPARTMENT,
    FIXED_COST,
    REQUESTS,
    TOKEN_COST,
    TOKENS,
    Column,
    Report,
    Table,
    chart,
    rounded,
    split_rows,
)


def deployment_report(
    *,
    deployment: ModelDeployment,
    month: date,
    now: datetime | None = None,
    named_departments: set[int] | None = None,
) -> Report:
    """With `named_departments` (a lead's), other departments' charges are one line without
    names."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    allocation = cost_allocation(period=period, department=deployment.department)
    if deployment.pk not in allocation.deployments:
        # The owner neither used nor pays for it (a shared service): read it on its own.
        allocation = cost_allocation(period=period)
    report = Report(month=month, period=period, allocation=allocation)
    report.tables["daily"] = _daily_table(deployment, period, allocation)
    report.chart = chart(report.tables["daily"], label="Cost per day (USD)")
    report.chart["tokens"] = [row["tokens"] for row in report.tables["daily"].rows]
    names = dict(Department.objects.values_list("pk", "name"))
    report.tables["split"] = _split_table(deployment, allocation, names, named_departments=named_departments)
    entry = allocation.deployments.get(deployment.pk)
    rows = report.tables["daily"].rows
    spend = report.tables["daily"].money_total("spend")
    report.stats = {
        "spend": spend,
        "tokens": sum(row["tokens"] for row in rows),
        "requests": sum(row["requests"] for row in rows),
        "active_hours": entry.active_hours.quantize(Decimal("0.1")) if entry else ZERO,
    }
    lines = caller_lines(allocation, deployment_id=deployment.pk)
    report.tables["sources"] = sources_table(
        lines,
        total=spend,
        total_column=Column("total", "Total (USD)", "money"),
        note="The deployment's cost by who made the calls: people in the chat, or applications through "
        "the gateway.",
    )
    report.stats |= api_stats(report.tables["sources"], spend=spend)
    report.tables["callers"] = callers_table(
        by_api_caller(lines),
        total=report.stats["api"],
        department_names=names,
        named_departments=named_departments,
    )
    return report


def _daily_table(deployment: ModelDeployment, period: Period, allocation: CostAllocation) -> Table:
    return rounded(
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
            rows=_daily_rows(deployment, period, allocation),
        )
    )


def _daily_rows(
    deployment: ModelDeployment, period: Period, allocation: CostAllocation
) -> list[dict[str, Any]]:
    """A line per day of the month so far: metered tokens and hourly charges (provisioned
    capacity, a zone's search service)."""
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
    today = timezone.localdate(period.until - timedelta(microseconds=1))
    rows = []
    for day in period.days:
        if day > today:
            break
        line = usage.get(day, {})
        token_cost = line.get("cost") or ZERO
        fixed_cost = allocation.fixed_daily.get((deployment.pk, day), ZERO)
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
    return rows


def _split_table(
    deployment: ModelDeployment,
    allocation: CostAllocation,
    names: dict[int, str],
    *,
    named_departments: set[int] | None,
) -> Table:
    charges = sorted(allocation.deployment_charges(deployment.pk), key=lambda c: -c.total)

    def named(charge: Charge) -> bool:
        return named_departments is None or charge.department_id in named_departments

    shown = [charge for charge in charges if named(charge)]
    return rounded(
        Table(
            name="split",
            title="Charged to",
            columns=[
                DEPARTMENT,
                TOKENS,
                Column("share", "Share", "percent"),
                CHARGED,
            ],
            rows=split_rows(shown, [charge for charge in charges if not named(charge)], names),
        )
    )
