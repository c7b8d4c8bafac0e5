"""The limits a call is admitted against: the person's tokens and requests this minute, a shared
deployment's grant (tokens per minute, money per month) and the department's monthly budget, each
with the words that refuse a call it has no room for."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from money import windows
from money.amounts import from_units, to_units, usd
from money.budgets import department_spend
from money.models import MonthlyUsageRollup, UsageRecord
from org.models import Department, User
from provisioning.models import AccessGrant, ModelDeployment


@dataclass(frozen=True)
class Claim:
    """One call that asks to be let through: who pays, on what, and its size."""

    department: Department
    deployment: ModelDeployment
    prompt_tokens: int
    max_output_tokens: int
    source: str
    user: User | None = None
    # A gateway call's caller (an API key or a registered service principal) and its own limits
    # per minute (None: none beyond the department's).
    api_key_id: int | None = None
    principal_id: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    # Where the call may go when the deployment answers 429 or 503 first (calls.failover): the
    # call is reserved at the most any of them charges, so a spill to a dearer one never
    # takes more than was reserved.
    fallbacks: tuple[ModelDeployment, ...] = ()

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_output_tokens

    @property
    def caller_key(self) -> str | None:
        """The gateway caller's name in its windows' keys (None: not a gateway caller)."""
        if self.api_key_id is not None:
            return f"key:{self.api_key_id}"
        if self.principal_id is not None:
            return f"principal:{self.principal_id}"
        return None

    @property
    def noun(self) -> str:
        return "this message" if self.source == UsageRecord.Source.CHAT else "this call"


# Limits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyLimit:
    key: str
    limit_units: int
    spent: Callable[[], Decimal]
    refusal: Callable[[int, int], str]  # (units spent and held, this call's units) -> message
    is_budget: bool = False


@dataclass(frozen=True)
class WindowLimit:
    take: windows.Take
    refusal: Callable[[int, int], str]  # (used this minute, seconds left) -> message
    tokens: bool = True


@dataclass
class Limits:
    money: list[MoneyLimit] = field(default_factory=list)
    windows: list[WindowLimit] = field(default_factory=list)


def _month(day: date) -> str:
    # Not strftime: it reads the time zone again at every call, and every call is admitted and
    # settled through here.
    return f"{day.year:04d}-{day.month:02d}"


def department_ledger_key(department_id: int, day: date) -> str:
    return f"department:{department_id}:{_month(day)}"


def grant_ledger_key(department_id: int, deployment_id: int, day: date) -> str:
    return f"grant:{department_id}:{deployment_id}:{_month(day)}"


def _ask_leads(department: Department) -> str:
    leads = " or ".join(person.display_name for person in department.leads())
    return (
        f"Ask {leads} to raise it." if leads else "Ask your department lead or a platform admin to raise it."
    )


def _grant_spend(*, department_id: int, deployment_id: int, day: date) -> Decimal:
    total = MonthlyUsageRollup.objects.filter(
        month=day.replace(day=1), department_id=department_id, deployment_id=deployment_id
    ).aggregate(total=Sum("cost"))["total"]
    return total or Decimal(0)


class GrantNotRead(Exception):
    """`limits_for(read_grant=False)` for a shared deployment, whose grant has to be read."""


def limits_for(claim: Claim, *, now: datetime, read_grant: bool = True) -> Limits:
    """Every limit the claim is taken against, each with the words of its refusal.
    `read_grant=False`: `GrantNotRead` rather than a query, for a shared deployment."""
    limits = Limits()
    window = windows.window_number(now)
    if claim.user is not None:
        limits.windows.extend(_person_limits(claim, claim.user.pk, window))
    limits.windows.extend(_caller_limits(claim, window))
    grant = None
    if claim.deployment.scope == ModelDeployment.Scope.SHARED:
        if not read_grant:
            raise GrantNotRead(claim.deployment.gateway_name)
        grant = AccessGrant.objects.filter(deployment=claim.deployment, department=claim.department).first()
    if grant is not None:
        _add_grant_limits(limits, claim, grant, window=window, today=timezone.localdate(now))
    if claim.department.monthly_budget > 0:
        limits.money.append(_budget_limit(claim, today=timezone.localdate(now)))
    return limits


def _person_limits(claim: Claim, user_id: int, window: int) -> list[WindowLimit]:
    noun, per_minute = claim.noun, settings.CHAT_USER_TOKENS_PER_MINUTE
    return [
        WindowLimit(
            windows.Take(f"person-requests:{user_id}:{window}", 1, settings.CHAT_USER_REQUESTS_PER_MINUTE),
            lambda used, wait: (
                f"You are sending {'messages' if claim.source == UsageRecord.Source.CHAT else 'calls'} "
                f"too fast. Try again in {wait} seconds."
            ),
            tokens=False,
        ),
        WindowLimit(
            windows.Take(f"person-tokens:{user_id}:{window}", claim.tokens, per_minute),
            lambda used, wait: (
                f"You may use {per_minute:,} tokens a minute; {noun} needs up to {claim.tokens:,} "
                f"(its {claim.prompt_tokens:,}-token prompt and an answer of up to "
                f"{claim.max_output_tokens:,}) and {max(used, 0):,} are taken this minute. "
                f"Try again in {wait} seconds."
            ),
        ),
    ]


def _caller_limits(claim: Claim, window: int) -> list[WindowLimit]:
    """A gateway caller's own requests and tokens per minute, in words for its developer."""
    caller = claim.caller_key
    if caller is None:
        return []
    found = []
    rpm, tpm = claim.requests_per_minute, claim.tokens_per_minute
    who = "This API key" if claim.api_key_id is not None else "This service principal"
    if rpm:
        found.append(
            WindowLimit(
                windows.Take(f"caller-requests:{caller}:{window}", 1, rpm),
                lambda used, wait: (
                    f"{who} may make {rpm:,} requests a minute and has made them all this minute. "
                    f"Try again in {wait} seconds, or ask a department lead to raise its limit."
                ),
                tokens=False,
            )
        )
    if tpm:
        found.append(
            WindowLimit(
                windows.Take(f"caller-tokens:{caller}:{window}", claim.tokens, tpm),
                lambda used, wait: (
                    f"{who} may use {tpm:,} tokens a minute and this call needs up to {claim.tokens:,} "
                    f"(its {claim.prompt_tokens:,}-token prompt and up to {claim.max_output_tokens:,} "
                    "tokens of output): lower max_tokens or shorten the prompt."
                    if claim.tokens > tpm
                    else f"{who} may use {tpm:,} tokens a minute; this call needs up to {claim.tokens:,} "
                    f"(its {claim.prompt_tokens:,}-token prompt and up to {claim.max_output_tokens:,} "
                    f"tokens of output) and {max(used, 0):,} are taken this minute. "
                    f"Try again in {wait} seconds, or lower max_tokens."
                ),
            )
        )
    return found


def _add_grant_limits(limits: Limits, claim: Claim, grant: AccessGrant, *, window: int, today: date) -> None:
    department, deployment, noun = claim.department, claim.deployment, claim.noun
    if grant.tpm_cap:
        cap = grant.tpm_cap * 1000
        limits.windows.append(
            WindowLimit(
                windows.Take(f"grant-tokens:{department.pk}:{deployment.pk}:{window}", claim.tokens, cap),
                lambda used, wait: (
                    f"{department.name}'s share of {deployment.display_name} ({grant.tpm_cap:,}K tokens "
                    f"per minute) is used up for the moment: {noun} needs up to {claim.tokens:,} tokens. "
                    f"Try again in {wait} seconds."
                ),
            )
        )
    if grant.monthly_budget_cap is not None:
        allowance = grant.monthly_budget_cap
        limits.money.append(
            MoneyLimit(
                grant_ledger_key(department.pk, deployment.pk, today),
                to_units(allowance),
                lambda: _grant_spend(department_id=department.pk, deployment_id=deployment.pk, day=today),
                lambda taken, units: _money_refusal(
                    f"monthly allowance of {usd(allowance)} for {deployment.display_name}",
                    allowance - from_units(taken),
                    from_units(units),
                    noun,
                    department,
                ),
            )
        )


def _budget_limit(claim: Claim, *, today: date) -> MoneyLimit:
    department, budget = claim.department, claim.department.monthly_budget
    return MoneyLimit(
        department_ledger_key(department.pk, today),
        to_units(budget),
        lambda: department_spend(department=department, on=today),
        lambda taken, units: _money_refusal(
            f"monthly budget of {usd(budget)}",
            budget - from_units(taken),
            from_units(units),
            claim.noun,
            department,
        ),
        is_budget=True,
    )


def _money_refusal(what: str, left: Decimal, amount: Decimal, noun: str, department: Department) -> str:
    if left <= 0:
        return f"{department.name} has used its whole {what}. {_ask_leads(department)}"
    return (
        f"{department.name} has {usd(left)} left of its {what}, and {noun} could cost up to "
        f"{usd(amount)} (its prompt and the longest answer allowed). {_ask_leads(department)}"
    )
