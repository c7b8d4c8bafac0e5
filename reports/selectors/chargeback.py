"""Chargeback statements: every line a cost center is charged for in a month."""

from datetime import date, datetime
from typing import Any

from django.utils import timezone

from money.allocation import CostAllocation, cost_allocation
from money.amounts import ZERO, cents
from money.periods import Period
from org.models import Department
from provisioning.models import ModelDeployment
from reports.tables import (
    DEPARTMENT,
    FIXED_COST,
    TOKEN_COST,
    TOKENS,
    Column,
    Report,
    Table,
    rounded,
    share_percent,
)


def cost_centers() -> list[str]:
    return list(Department.objects.order_by("cost_center").values_list("cost_center", flat=True).distinct())


def chargeback_statement(*, cost_center: str, month: date, now: datetime | None = None) -> Report:
    """One line per department and deployment."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    departments = list(Department.objects.filter(cost_center=cost_center).order_by("name"))
    allocation = cost_allocation(period=period)
    shown = allocation.department_totals_in_cents()
    report = Report(month=month, period=period, allocation=allocation)
    rows: list[dict[str, Any]] = []
    for department in departments:
        lines = _department_lines(department, allocation)
        # Each department's lines add up to the figure its own pages show.
        amounts, _total = cents([line["amount"] for line in lines], total=shown.get(department.pk, ZERO))
        for line, amount in zip(lines, amounts, strict=True):
            line["amount"] = amount
        rows.extend(lines)
    report.tables["lines"] = rounded(
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


def _department_lines(department: Department, allocation: CostAllocation) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for charge in sorted(allocation.department_charges(department.pk), key=lambda c: -c.total):
        deployment = allocation.deployments[charge.deployment_id].deployment
        shared = deployment.scope == ModelDeployment.Scope.SHARED
        basis = f"{share_percent(charge.share)}% of the shared service's tokens" if shared else "dedicated"
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
    return lines
