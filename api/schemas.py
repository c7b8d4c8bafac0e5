"""The shapes the API answers with. Money is a decimal string with its currency (never a float);
times are ISO 8601 in UTC."""

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import BeforeValidator, ConfigDict

from base.limits import SMALLINT_MAX
from money.amounts import CENT

AMOUNT_PATTERN = r"^-?\d+\.\d{2}$"


class Money(Schema):
    amount: str = Field(..., pattern=AMOUNT_PATTERN, examples=["1250.00"], description="A decimal string.")
    currency: Literal["USD"] = "USD"

    @classmethod
    def of(cls, value: Decimal) -> "Money":
        # The currency is set, not left to its default: an answer that leaves out unset fields
        # (`exclude_unset`) still says it.
        return cls(amount=str(value.quantize(CENT, rounding=ROUND_HALF_UP)), currency="USD")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def written(value: object) -> object:
    """Dates and times as the document offers them, in ISO 8601. Pydantic would also read a number
    as a Unix time, which no caller means and the document does not promise."""
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("An ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T09:00:00Z), not a number.")
    return value


# A date or a moment a caller gives, in ISO 8601 only.
Day = Annotated[date, BeforeValidator(written)]
Moment = Annotated[datetime, BeforeValidator(written)]


class Input(Schema):
    """A body the API takes: a field it does not know is refused (a 422 naming it), never ignored,
    so a misspelt option cannot pass for a default."""

    model_config = ConfigDict(extra="forbid")


class MoneyIn(Input):
    """An amount a body gives: a decimal string of at most two decimals, in USD."""

    amount: str = Field(
        ..., pattern=r"^-?\d{1,10}(\.\d{1,2})?$", examples=["1250.00"], description="A decimal string."
    )
    currency: Literal["USD"] = "USD"

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


Role = Literal["member", "lead"]


class DepartmentOut(Schema):
    slug: str
    name: str
    cost_center: str
    monthly_budget: Money
    chat_retention_days: int = Field(..., description="0: chat history is off.")
    approvers_may_audit_chats: bool
    your_role: Role | None = Field(None, description="Yours in this department; null if you are not in it.")


class DepartmentChange(Input):
    """What a platform admin changes on a department; a field left out (or null) stays as it is."""

    monthly_budget: MoneyIn | None = Field(None, description="USD per calendar month; 0 or more.")
    chat_retention_days: int | None = Field(
        None, ge=0, le=SMALLINT_MAX, description="How long chat history is kept; 0 turns it off."
    )
    approvers_may_audit_chats: bool | None = Field(
        None, description="Whether approvers may read the department's chats (each read is audited)."
    )


class BudgetOut(Schema):
    monthly_budget: Money
    spent_this_month: Money = Field(
        ..., description="This calendar month (UTC) so far, as the cost report counts it."
    )
    share_used: str = Field(..., pattern=r"^\d+\.\d{4}$", description="Spent over budget, a decimal string.")
    exhausted: bool


class DepartmentDetailOut(DepartmentOut):
    member_count: int
    lead_count: int
    budget: BudgetOut


class MembershipOut(Schema):
    id: int
    email: str
    name: str
    role: Role
    source: Literal["manual", "entra"] = Field(..., description="Set by an admin, or from an Entra ID group.")
    since: datetime


class MyMembershipOut(Schema):
    department: str = Field(..., description="The department's slug.")
    department_name: str
    role: Role


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    status: Literal["active", "expired", "revoked"]


class MeOut(Schema):
    email: str
    name: str
    platform_admin: bool
    finance_approver: bool
    security_approver: bool
    memberships: list[MyMembershipOut]
    authenticated_with: Literal["access_token", "entra", "session"]
    access_token: TokenOut | None = Field(None, description="The personal access token of this call, if any.")
