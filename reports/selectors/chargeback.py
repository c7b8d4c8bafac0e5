"""Chargeback statements: every line a cost center is charged for in a month."""

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from django.utils import timezone

from money.allocation import Charge, CostAllocation, DeploymentCost, cost_allocation
from money.amounts import ZERO, cents
from money.models import UsageRecord
from money.periods import Period
from org.models import Department
from provisioning.models import ModelDeployment
from reports.selectors.callers import (
    SOURCE_LABELS,
    Caller,
    CallerLabel,
    CallerLine,
    caller_ids,
    caller_labels,
    caller_lines,
)
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
    """One line per department, deployment and caller (the chat, each API key and service
    principal)."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    departments = list(Department.objects.filter(cost_center=cost_center).order_by("name"))
    allocation = cost_allocation(period=period)
    shown = allocation.department_totals_in_cents()
    report = Report(month=month, period=period, allocation=allocation)
    rows: list[dict[str, Any]] = []
    by_charge, labels = _callers_by_charge(allocation, departments)
    for department in departments:
        lines = _department_lines(department, allocation, by_charge, labels)
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
                Column("source", "Source"),
                Column("caller", "Caller"),
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


def _callers_by_charge(
    allocation: CostAllocation, departments: list[Department]
) -> tuple[dict[tuple[int, int], list[CallerLine]], dict[Caller, CallerLabel]]:
    """The departments' charges split between their callers, by (department, deployment), and
    the callers' names."""
    by_charge: dict[tuple[int, int], list[CallerLine]] = defaultdict(list)
    for part in caller_lines(allocation, department_ids=[department.pk for department in departments]):
        by_charge[(part.department_id, part.deployment_id)].append(part)
    labels = caller_labels({part.caller for parts in by_charge.values() for part in parts})
    return by_charge, labels


def _department_lines(
    department: Department,
    allocation: CostAllocation,
    by_charge: dict[tuple[int, int], list[CallerLine]],
    labels: dict[Caller, CallerLabel],
) -> list[dict[str, Any]]:
    """A line per deployment and caller: the chat's calls together, each API key's and service
    principal's apart, provisioned hours nobody used on their own."""
    lines: list[dict[str, Any]] = []
    for charge in sorted(allocation.department_charges(department.pk), key=lambda c: -c.total):
        entry = allocation.deployments[charge.deployment_id]
        deployment = entry.deployment
        basis = _basis(entry, charge, department)
        description = (
            f"{deployment.display_name} ({deployment.model_name}, {deployment.get_sku_display()}, {basis})"
        )
        parts = sorted(
            by_charge.get((department.pk, charge.deployment_id), []),
            key=lambda part: (SOURCE_ORDER.get(part.caller.source, 9), -part.total),
        )
        for part in parts:
            lines.append(
                {
                    "department": department.name,
                    "department_slug": department.slug,
                    "deployment_id": deployment.pk,
                    **caller_ids(part.caller),
                    "description": description,
                    "source": SOURCE_LABELS.get(part.caller.source, part.caller.source),
                    "caller": _caller_name(part.caller, labels),
                    "tokens": part.tokens,
                    "token_cost": part.token_cost,
                    "fixed_cost": part.fixed_cost,
                    "amount": part.total,
                }
            )
    return lines


def _basis(entry: DeploymentCost, charge: Charge, department: Department) -> str:
    """How the department's part of the deployment was worked out."""
    if entry.search is not None and entry.search.total:
        stored = entry.search.by_department.get(department.pk, ZERO) / entry.search.total
        return (
            f"own embedding tokens, {share_percent(stored)}% of the search service's hours by the documents "
            "its data sets store"
        )
    if entry.deployment.scope == ModelDeployment.Scope.SHARED:
        return f"{share_percent(charge.share)}% of the shared service's tokens"
    return "dedicated"


SOURCE_ORDER = {source: position for position, source in enumerate(SOURCE_LABELS)}


def _caller_name(caller: Caller, labels: dict[Caller, CallerLabel]) -> str:
    if caller.source != UsageRecord.Source.API:
        return ""
    label = labels[caller]
    return f"{label.name} ({label.identifier})" if caller.api_key_id and label.identifier else label.name
