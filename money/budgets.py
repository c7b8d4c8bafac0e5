"""Budgets: a department's spend this month, as the cost model counts it, against its budget."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from money.allocation import cost_allocation
from money.amounts import ZERO, from_units
from money.models import SpendLedger
from money.periods import Period
from org.models import Department

WARNING_SHARE = Decimal("0.8")


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


def budgets_in_use(*, now: datetime | None = None) -> list[BudgetStatus]:
    """Every department with a monthly budget and what it has spent this month, read from the
    admission ledgers (kept within a minute of the cost model while calls come in); a department
    without a ledger this month (no call yet) from the cost model itself."""
    from money.limits import department_ledger_key  # money.limits reads budgets from here

    now = now or timezone.now()
    today = timezone.localdate(now)
    departments = list(Department.objects.filter(monthly_budget__gt=0).order_by("slug"))
    keys = {department_ledger_key(department.pk, today): department for department in departments}
    spent = dict(SpendLedger.objects.filter(key__in=keys).values_list("key", "spent_units"))
    return [
        BudgetStatus(
            department,
            from_units(spent[key])
            if key in spent
            else department_spend(department=department, on=today, now=now),
            department.monthly_budget,
        )
        for key, department in keys.items()
    ]
