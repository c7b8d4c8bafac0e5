"""Who made the calls a charge is for: the chat, or the gateway's callers (an API key, a service
principal, a person's own Entra ID token). Read from the monthly caller rollups and laid over the
cost model's charges, so the parts of a department's charge add up to the charge itself: the
figure its pages and the chat's budget check use.

A charge is split between its callers the way the cost model splits a shared deployment between
departments: a shared deployment's cost by each caller's share of the department's tokens on it;
a dedicated one's tokens at their metered cost, its provisioned hours by share of tokens. What no
call accounts for (provisioned hours nobody used) stays one line of its own."""

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from gateway.models import ApiKey, ServicePrincipal
from money.allocation import Charge, CostAllocation, fetch_rows
from money.amounts import ZERO, money
from money.models import MonthlyCallerRollup, UsageRecord
from provisioning.models import ModelDeployment
from reports.tables import (
    CHARGED,
    DEPARTMENT,
    FIXED_COST,
    REQUESTS,
    TOKEN_COST,
    TOKENS,
    Column,
    Table,
    percent,
    rounded,
)

# The source of what no call accounts for: provisioned hours of a month without calls.
NO_CALLS = ""
SOURCE_LABELS = {
    UsageRecord.Source.CHAT: "Chat",
    UsageRecord.Source.API: "API",
    UsageRecord.Source.INGESTION: "Document ingestion",
    NO_CALLS: "Provisioned hours without calls",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called, as the caller rollup keys it: a key or a principal id, 0 for neither."""

    source: str
    api_key_id: int = 0
    principal_id: int = 0


@dataclass(slots=True)
class CallerLine:
    """One caller's part of one department's charge for one deployment."""

    department_id: int
    deployment_id: int
    caller: Caller
    requests: int = 0
    tokens: int = 0
    token_cost: Decimal = ZERO
    fixed_cost: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.token_cost + self.fixed_cost


@dataclass(slots=True)
class _Used:
    caller: Caller
    requests: int
    tokens: int
    metered: Decimal


def caller_lines(
    allocation: CostAllocation,
    *,
    department_ids: Collection[int] | None = None,
    deployment_id: int | None = None,
) -> list[CallerLine]:
    """The charges of the allocation's month (some departments' or a deployment's, when given)
    split between their callers. Their sum is exactly the charges' sum."""
    period = allocation.period
    # The caller rollups are monthly: the cost pages show calendar months, nothing shorter.
    assert period.whole_months, "caller lines need a period of whole months"
    rows = MonthlyCallerRollup.objects.filter(month__gte=period.first_day, month__lte=period.last_day)
    charges = allocation.charges
    if department_ids is not None:
        rows = rows.filter(department_id__in=list(department_ids))
        charges = [charge for pk in department_ids for charge in allocation.department_charges(pk)]
    if deployment_id is not None:
        rows = rows.filter(deployment_id=deployment_id)
        charges = [charge for charge in charges if charge.deployment_id == deployment_id]
    grouped = (
        rows.order_by()
        .values_list("department_id", "deployment_id", "source", "api_key_key", "principal_key")
        .annotate(Sum("requests"), Sum("input_tokens"), Sum("output_tokens"), Sum("cost"))
    )
    used: dict[tuple[int, int], list[_Used]] = defaultdict(list)
    for department, deployment, source, key, principal, requests, inputs, outputs, cost in fetch_rows(
        grouped
    ):
        used[(department, deployment)].append(
            _Used(Caller(source, key, principal), int(requests), int(inputs) + int(outputs), money(cost))
        )
    lines: list[CallerLine] = []
    for charge in charges:
        deployment = allocation.deployments[charge.deployment_id]
        by_tokens = deployment.deployment.scope == ModelDeployment.Scope.SHARED and deployment.tokens > 0
        lines.extend(_split(charge, used.get((charge.department_id, charge.deployment_id), []), by_tokens))
    return lines


def _split(charge: Charge, used: list[_Used], by_tokens: bool) -> list[CallerLine]:
    """One charge between its callers. `by_tokens`: the token cost too goes by share of tokens
    (a shared deployment, whose cost per token is the same for every department)."""
    used = sorted(
        used,
        key=lambda part: (part.tokens, part.caller.source, part.caller.api_key_id, part.caller.principal_id),
    )
    covered = bool(used) and sum(part.tokens for part in used) == charge.tokens
    token_left, fixed_left = charge.token_cost, charge.fixed_cost
    lines = []
    for index, part in enumerate(used):
        if covered and index == len(used) - 1:
            # The largest part takes what is left, so the parts add up to the charge exactly.
            token_cost, fixed_cost = token_left, fixed_left
        else:
            share = Decimal(part.tokens) / Decimal(charge.tokens) if charge.tokens else ZERO
            token_cost = charge.token_cost * share if by_tokens else part.metered
            fixed_cost = charge.fixed_cost * share
        token_left -= token_cost
        fixed_left -= fixed_cost
        lines.append(
            CallerLine(
                charge.department_id,
                charge.deployment_id,
                part.caller,
                part.requests,
                part.tokens,
                token_cost,
                fixed_cost,
            )
        )
    if not covered and (token_left or fixed_left):
        lines.append(
            CallerLine(
                charge.department_id,
                charge.deployment_id,
                Caller(NO_CALLS),
                charge.requests - sum(part.requests for part in used),
                charge.tokens - sum(part.tokens for part in used),
                token_left,
                fixed_left,
            )
        )
    return lines


# Sums of the lines --------------------------------------------------------------------------------


@dataclass(slots=True)
class CallerSum:
    """Lines added up: calls, tokens and what they were charged."""

    lines: int = 0
    requests: int = 0
    tokens: int = 0
    token_cost: Decimal = ZERO
    fixed_cost: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.token_cost + self.fixed_cost

    def add(self, line: CallerLine) -> None:
        self.lines += 1
        self.requests += line.requests
        self.tokens += line.tokens
        self.token_cost += line.token_cost
        self.fixed_cost += line.fixed_cost


def by_source(lines: Iterable[CallerLine]) -> dict[str, CallerSum]:
    """Chat, API and provisioned hours without calls, in that order (those there are)."""
    sums: dict[str, CallerSum] = {source: CallerSum() for source in SOURCE_LABELS}
    for line in lines:
        sums.setdefault(line.caller.source, CallerSum()).add(line)
    return {source: found for source, found in sums.items() if found.lines}


def by_api_caller(lines: Iterable[CallerLine]) -> dict[tuple[int, Caller], CallerSum]:
    """(department id, caller) -> the gateway's calls: each key, each service principal, and
    each department's calls with people's own tokens."""
    sums: dict[tuple[int, Caller], CallerSum] = defaultdict(CallerSum)
    for line in lines:
        if line.caller.source == UsageRecord.Source.API:
            sums[(line.department_id, line.caller)].add(line)
    return dict(sums)


# Names ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallerLabel:
    """How a caller reads in a table: its name, what it is (and, for a key or a principal that no
    longer calls, why not) and how to tell it apart."""

    name: str
    kind: str
    identifier: str = ""


PERSON_TOKENS = CallerLabel("People's own Entra ID tokens", "Person's token")


def caller_labels(callers: Iterable[Caller], *, now: datetime | None = None) -> dict[Caller, CallerLabel]:
    """The callers' names, with the keys' states (a revoked key's calls are still its own)."""
    callers = list(callers)
    now = now or timezone.now()
    key_ids = {caller.api_key_id for caller in callers if caller.api_key_id}
    principal_ids = {caller.principal_id for caller in callers if caller.principal_id}
    keys = {key.pk: key for key in ApiKey.objects.filter(pk__in=key_ids)} if key_ids else {}
    principals = (
        {principal.pk: principal for principal in ServicePrincipal.objects.filter(pk__in=principal_ids)}
        if principal_ids
        else {}
    )
    labels = {}
    for caller in callers:
        if caller.api_key_id:
            key = keys.get(caller.api_key_id)
            labels[caller] = (
                CallerLabel(key.name, _with_state("API key", key_state(key, now=now)), f"{key.prefix}…")
                if key
                else CallerLabel(f"Deleted key #{caller.api_key_id}", "API key")
            )
        elif caller.principal_id:
            principal = principals.get(caller.principal_id)
            labels[caller] = (
                CallerLabel(
                    principal.name,
                    _with_state("Service principal", "" if principal.enabled else "disabled"),
                    str(principal.object_id),
                )
                if principal
                else CallerLabel(f"Deleted service principal #{caller.principal_id}", "Service principal")
            )
        else:
            labels[caller] = PERSON_TOKENS
    return labels


def caller_ids(caller: Caller) -> dict[str, int | None]:
    """The key's or service principal's id, beside a table's columns, for a script to look it up."""
    return {"api_key_id": caller.api_key_id or None, "service_principal_id": caller.principal_id or None}


def _with_state(kind: str, state: str) -> str:
    return f"{kind}, {state}" if state else kind


def key_state(key: ApiKey, *, now: datetime) -> str:
    """Why a key no longer opens the gateway ("" while it does)."""
    if key.revoked_at is not None:
        return "revoked"
    if key.state != ApiKey.State.ACTIVE:
        return key.get_state_display().lower()
    if key.expires_at <= now:
        return "expired"
    if key.grace_until is not None:
        return "replaced" if key.grace_until <= now else "being replaced"
    return ""


# Tables -----------------------------------------------------------------------------------------------

SOURCE = Column("source", "Source")
SHARE = Column("share", "Share of tokens", "percent")


def sources_table(
    lines: Iterable[CallerLine], *, total: Decimal | None, total_column: Column = CHARGED, note: str = ""
) -> Table:
    """Chat against API: calls, tokens and cost of each. `total`: the rounded figure the lines'
    sum is shown as elsewhere on the page (the department's spend)."""
    sums = by_source(lines)
    tokens = Decimal(sum(part.tokens for part in sums.values()))
    rows = [
        {
            "source": SOURCE_LABELS.get(source, source),
            "requests": part.requests,
            "tokens": part.tokens,
            "share": percent(Decimal(part.tokens), tokens) if source != NO_CALLS else None,
            "token_cost": part.token_cost,
            "fixed_cost": part.fixed_cost,
            total_column.key: part.total,
        }
        for source, part in sums.items()
    ]
    table = Table(
        name="sources",
        title="Chat and API",
        columns=[SOURCE, REQUESTS, TOKENS, SHARE, TOKEN_COST, FIXED_COST, total_column],
        rows=rows,
        note=note,
    )
    return rounded(table, anchors={total_column.key: total} if total is not None else None)


def api_stats(sources: Table, *, spend: Decimal) -> dict[str, Any]:
    """The API's line of a `sources_table` as the page's stat shows it: its rounded amount, its
    calls and its part of the spend."""
    label, key = SOURCE_LABELS[UsageRecord.Source.API], sources.columns[-1].key
    row = next((row for row in sources.rows if row["source"] == label), None)
    api = row[key] if row else ZERO
    return {"api": api, "api_requests": row["requests"] if row else 0, "api_used": percent(api, spend)}


def callers_table(
    sums: dict[tuple[int, Caller], CallerSum],
    *,
    total: Decimal | None,
    department_names: dict[int, str] | None = None,
    named_departments: set[int] | None = None,
    limit: int | None = None,
) -> Table:
    """The gateway's calls by caller, the largest first. With `department_names`, a column says
    whose caller it is; callers of departments outside `named_departments` (when given) are one
    line without names; past `limit` the rest are one line. `total`: the API amount as the page's
    Chat and API table shows it."""
    ranked = sorted(sums.items(), key=lambda item: (-item[1].total, item[0][0], item[0][1].api_key_id))
    hidden = [part for (department, _), part in ranked if not _named(department, named_departments)]
    shown = [(key, part) for key, part in ranked if _named(key[0], named_departments)]
    rest = shown[limit:] if limit is not None else []
    shown = shown[:limit] if limit is not None else shown
    labels = caller_labels(caller for (_, caller), _ in shown)
    rows = [
        _caller_row(caller, labels[caller], part, department=(department_names or {}).get(department))
        for (department, caller), part in shown
    ]
    if rest:
        rows.append(_summed_row(f"{len(rest)} more callers", [part for _, part in rest]))
    if hidden:
        rows.append(_summed_row("Other departments' callers", hidden))
    columns = [Column("caller", "Caller")]
    if department_names is not None:
        columns.append(DEPARTMENT)
    columns += [
        Column("kind", "Kind"),
        Column("identifier", "Key or object id"),
        REQUESTS,
        TOKENS,
        CHARGED,
    ]
    table = Table(
        name="callers",
        title="API calls by key" if limit is None else "Top API callers",
        columns=columns,
        rows=rows,
        note="Applications' calls through the gateway, by API key and service principal, with what "
        "they add to their department's charges (a shared service's cost by their share of its tokens).",
    )
    return rounded(table, anchors={"total": total} if total is not None else None)


def _named(department_id: int, named_departments: set[int] | None) -> bool:
    return named_departments is None or department_id in named_departments


def _caller_row(
    caller: Caller, label: CallerLabel, part: CallerSum, *, department: str | None
) -> dict[str, Any]:
    return {
        "caller": label.name,
        **caller_ids(caller),
        "department": department or "",
        "kind": label.kind,
        "identifier": label.identifier,
        "requests": part.requests,
        "tokens": part.tokens,
        "total": part.total,
    }


def _summed_row(caller: str, parts: list[CallerSum]) -> dict[str, Any]:
    return {
        "caller": caller,
        "requests": sum(part.requests for part in parts),
        "tokens": sum(part.tokens for part in parts),
        "total": sum((part.total for part in parts), ZERO),
    }
