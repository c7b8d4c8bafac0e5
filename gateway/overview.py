"""A department's API keys as its page lists them: where each stands, what it may call, and what
its calls cost this month (from the monthly rollup by caller, so the page never scans usage)."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from gateway.models import LIVE_STATUSES, STATUS_LABELS, ApiKey
from money.amounts import ZERO
from money.models import MonthlyCallerRollup, UsageRecord
from org.models import Department

# Ended keys (revoked, expired, rejected, replaced) stay listed this long, under the live ones.
ENDED_SHOWN_DAYS = 90
ENDED_SHOWN_MOST = 50


@dataclass(frozen=True)
class KeyUsage:
    requests: int = 0
    tokens: int = 0
    cost: Decimal = ZERO


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    status: str
    usage: KeyUsage
    approval_url: str = ""

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def may_rotate(self) -> bool:
        return self.status == "active"

    @property
    def may_revoke(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True)
class KeysOverview:
    department: Department
    month: date
    live: list[KeyRow] = field(default_factory=list)
    ended: list[KeyRow] = field(default_factory=list)
    may_manage: bool = False

    @property
    def month_total(self) -> KeyUsage:
        rows = self.live + self.ended
        return KeyUsage(
            requests=sum(row.usage.requests for row in rows),
            tokens=sum(row.usage.tokens for row in rows),
            cost=sum((row.usage.cost for row in rows), ZERO),
        )


def usage_by_key(*, department: Department, month: date) -> dict[int, KeyUsage]:
    """This month's calls, tokens and cost per key of `department`."""
    sums = (
        MonthlyCallerRollup.objects.filter(
            department=department, month=month, source=UsageRecord.Source.API, api_key_key__gt=0
        )
        .values("api_key_key")
        .annotate(
            calls=Sum("requests"),
            input_tokens_sum=Sum("input_tokens"),
            output_tokens_sum=Sum("output_tokens"),
            cost_sum=Sum("cost"),
        )
    )
    return {
        row["api_key_key"]: KeyUsage(
            requests=row["calls"] or 0,
            tokens=(row["input_tokens_sum"] or 0) + (row["output_tokens_sum"] or 0),
            cost=row["cost_sum"] or ZERO,
        )
        for row in sums
    }


def department_keys_overview(
    *,
    department: Department,
    may_manage: bool,
    approval_urls: dict[int, str] | None = None,
    now: datetime | None = None,
) -> KeysOverview:
    """The department's live keys (working, waiting for approval, in their grace period) and the
    keys that ended lately. `approval_urls` links a waiting key to its approval request."""
    now = now or timezone.now()
    month = timezone.localdate(now).replace(day=1)
    usage = usage_by_key(department=department, month=month)
    approval_urls = approval_urls or {}
    keys = (
        ApiKey.objects.filter(department=department)
        .select_related("replaces")
        .prefetch_related("deployments")
        .order_by("name", "-created_at")
    )
    live, ended = [], []
    ended_since = now - timedelta(days=ENDED_SHOWN_DAYS)
    for key in keys:
        row = KeyRow(
            key=key,
            status=key.status(now),
            usage=usage.get(key.pk, KeyUsage()),
            approval_url=approval_urls.get(key.pk, ""),
        )
        if row.is_live:
            live.append(row)
        elif _ended_at(key) >= ended_since:
            ended.append(row)
    ended.sort(key=lambda row: _ended_at(row.key), reverse=True)
    return KeysOverview(
        department=department, month=month, live=live, ended=ended[:ENDED_SHOWN_MOST], may_manage=may_manage
    )


def _ended_at(key: ApiKey) -> datetime:
    """When the key stopped working, as near as its row says (a rejection's time is its
    request's; the key was made shortly before)."""
    if key.revoked_at is not None:
        return key.revoked_at
    if key.state == ApiKey.State.REJECTED:
        return key.created_at
    if key.grace_until is not None:
        return min(key.grace_until, key.expires_at)
    return key.expires_at
