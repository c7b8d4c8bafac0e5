"""The one cost model for token usage: the chat's budget check and the cost reports both use it,
so they never disagree. Money is Decimal and is rounded only when shown."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from chat.models import Conversation, UsageRecord
from portal.org.models import Department, User
from provisioning.catalog import price_in_force
from provisioning.models import ModelDeployment, Price

MILLION = Decimal(1_000_000)
WARNING_SHARE = Decimal("0.8")


def usage_cost(
    *,
    deployment: ModelDeployment,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    at: datetime,
) -> tuple[Decimal, Price | None]:
    """What a call cost at the price in force when it was made (USD, unrounded)."""
    price = price_in_force(
        model_name=deployment.model_name,
        model_version=deployment.model_version,
        sku=deployment.sku,
        on=at.date(),
    )
    if price is None or deployment.is_provisioned_sku:
        # Provisioned capacity is paid by the hour whether used or not, not per token.
        return Decimal(0), price
    uncached = max(input_tokens - cached_input_tokens, 0)
    cost = (
        uncached * price.input_per_million
        + cached_input_tokens * price.cached_input_per_million
        + output_tokens * price.output_per_million
    ) / MILLION
    return cost, price


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
) -> UsageRecord:
    at = at or timezone.now()
    cost, price = usage_cost(
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=at,
    )
    return UsageRecord.objects.create(
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
    )


def month_bounds(day: date) -> tuple[datetime, datetime]:
    """The calendar month of `day`, in the portal's time zone, as [start, end)."""
    zone = timezone.get_current_timezone()
    start = datetime(day.year, day.month, 1, tzinfo=zone)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=zone)
    return start, following


def department_spend(*, department: Department, on: date) -> Decimal:
    """The department's metered spend in the calendar month of `on` (USD, unrounded)."""
    start, end = month_bounds(on)
    total = UsageRecord.objects.filter(
        department=department, created_at__gte=start, created_at__lt=end
    ).aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)


@dataclass(frozen=True)
class BudgetStatus:
    department: Department
    spent: Decimal
    budget: Decimal

    @property
    def share(self) -> Decimal:
        return self.spent / self.budget if self.budget else Decimal(0)

    @property
    def exhausted(self) -> bool:
        return self.budget > 0 and self.spent >= self.budget

    @property
    def warning(self) -> bool:
        return not self.exhausted and self.share >= WARNING_SHARE


def budget_status(*, department: Department, on: date | None = None) -> BudgetStatus:
    on = on or timezone.localdate()
    return BudgetStatus(department, department_spend(department=department, on=on), department.monthly_budget)


def conversation_cost(*, conversation: Conversation) -> Decimal:
    total = conversation.usage_records.aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)
