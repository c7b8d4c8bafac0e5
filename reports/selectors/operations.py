"""The operations page's reads: each deployment's health over the last hour, day or week (from the
calls' rollups, `calls.models`), how much of a provisioned deployment's throughput is used, each
department's adoption over the last week, and the Microsoft Graph sync's state.

Everything is summed by the database, latency histograms bucket by bucket, so Python sees a row
per deployment (or per department) however many rollup rows there are. A window reads whole hours
from the hour rows and only its ragged ends (at most three hours) from the minute rows, so a week
of a large, busy estate reads about a sixtieth of its minutes."""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Count,
    ExpressionWrapper,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from calls.hours import hour_of, minutes_since
from calls.latency import BUCKET_COUNT, percentile, summed
from calls.models import COUNTERS, HISTOGRAMS, TOKENS, CallHour, CallMinute
from chat.models import Conversation
from money.models import UsageRecord
from org.models import Department, DirectorySyncRun, Membership
from provisioning.catalog import PtuThroughput, ptu_throughput
from provisioning.models import ModelDeployment

WINDOWS = {"hour": ("Last hour", 60), "day": ("Last 24 hours", 24 * 60), "week": ("Last 7 days", 7 * 24 * 60)}
DEFAULT_WINDOW = "day"
ADOPTION_DAYS = 7

# A provisioned deployment used below this share of its throughput on average is paid for but
# mostly idle. One that spent a good part of its minutes near full (one busy minute in a quiet day
# is a burst, not a unit too small), or that Azure answered with 429s (a provisioned deployment
# refuses only when it is full), is saturated.
PTU_IDLE_BELOW = 0.10
PTU_FULL_FROM = 0.90
PTU_SATURATED_MINUTES = 0.05
PTU_SATURATED_THROTTLES = 0.01


@dataclass(frozen=True)
class Window:
    name: str
    label: str
    minutes: int
    since: datetime
    until: datetime


def window_for(name: str, *, now: datetime) -> Window:
    """The last `minutes` whole minutes up to now, the current (partial) minute included: exactly
    the minute rows a window of that length holds."""
    label, minutes = WINDOWS[name]
    this_minute = now.replace(second=0, microsecond=0)
    return Window(name, label, minutes, this_minute - timedelta(minutes=minutes - 1), now)


@dataclass(frozen=True)
class CallFigures:
    """What a span of minute rows adds up to."""

    calls: int = 0
    answered: int = 0
    upstream_errors: int = 0
    throttled: int = 0
    failovers: int = 0
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_token_ms: list[int] = field(default_factory=list)
    answer_ms: list[int] = field(default_factory=list)

    @property
    def first_token_p50(self) -> float | None:
        return percentile(self.first_token_ms, 0.50)

    @property
    def first_token_p95(self) -> float | None:
        return percentile(self.first_token_ms, 0.95)

    @property
    def answer_p95(self) -> float | None:
        return percentile(self.answer_ms, 0.95)

    @property
    def error_rate(self) -> float | None:
        """Share of the calls sent to Azure that ended in its error, a timeout or a broken stream."""
        return self.upstream_errors / self.calls if self.calls else None

    @property
    def throttle_rate(self) -> float | None:
        """429 answers per call sent (a call may meet several, one per attempt)."""
        return self.throttled / self.calls if self.calls else None

    def per_minute(self, minutes: int) -> float:
        return self.calls / minutes


def _figures_from(row: dict[str, Any]) -> CallFigures:
    return CallFigures(
        **{name: row[name] for name in (*COUNTERS, *TOKENS)},
        first_token_ms=[row[f"first_token_ms_{i}"] for i in range(BUCKET_COUNT)],
        answer_ms=[row[f"answer_ms_{i}"] for i in range(BUCKET_COUNT)],
    )


def _sums() -> dict[str, Any]:
    """Counters and every latency bucket summed (an index into the JSON list, cast to a number:
    the database adds histograms without sending them to Python)."""
    sums: dict[str, Any] = {name: Coalesce(Sum(name), Value(0)) for name in (*COUNTERS, *TOKENS)}
    for histogram in HISTOGRAMS:
        for index in range(BUCKET_COUNT):
            bucket = Cast(KeyTextTransform(str(index), histogram), IntegerField())
            sums[f"{histogram}_{index}"] = Coalesce(Sum(bucket), Value(0))
    return sums


# Provisioned throughput ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PtuUse:
    """How much of a provisioned deployment's throughput the window used."""

    units: int
    throughput: PtuThroughput | None
    minutes: int
    tokens_per_unit_hour: float
    utilisation: float | None
    busiest_minute: float | None
    minutes_full: int
    calls: int
    throttled: int

    @property
    def tokens_per_unit_hour_offered(self) -> int | None:
        """What a unit serves in an hour, counted in input tokens (Microsoft's sizing unit)."""
        return self.throughput.input_per_minute * 60 if self.throughput else None

    @property
    def is_saturated(self) -> bool:
        throttled = self.throttled > 0 and self.throttled >= PTU_SATURATED_THROTTLES * self.calls
        return throttled or self.minutes_full >= PTU_SATURATED_MINUTES * self.minutes

    @property
    def is_idle(self) -> bool:
        return not self.is_saturated and self.utilisation is not None and self.utilisation < PTU_IDLE_BELOW

    @property
    def state(self) -> str:
        if self.is_saturated:
            return "saturated"
        if self.is_idle:
            return "idle"
        return "unknown" if self.utilisation is None else "in-use"


def _share_used(
    input_tokens: int, output_tokens: int, *, units: int, minutes: int, rates: PtuThroughput
) -> float:
    """The share of `units` PTUs' throughput over `minutes` that these tokens took: an output token
    weighs what the model's output rate says, as in Microsoft's capacity calculator."""
    return (input_tokens / rates.input_per_minute + output_tokens / rates.output_per_minute) / (
        units * minutes
    )


def _ptu_use(deployment: ModelDeployment, figures: CallFigures, window: Window) -> PtuUse:
    # A deployment made during the window has been paid for only since then.
    live_since = max(window.since, deployment.created_at.replace(second=0, microsecond=0))
    minutes = max(1, min(window.minutes, math.ceil((window.until - live_since).total_seconds() / 60)))
    units = deployment.capacity
    rates = ptu_throughput(model_name=deployment.model_name, model_version=deployment.model_version)
    tokens = figures.input_tokens + figures.output_tokens
    utilisation = busiest = None
    minutes_full = 0
    if rates is not None and units:
        utilisation = _share_used(
            figures.input_tokens, figures.output_tokens, units=units, minutes=minutes, rates=rates
        )
        busiest, minutes_full = _busy_minutes(deployment, window, units=units, rates=rates)
    return PtuUse(
        units=units,
        throughput=rates,
        minutes=minutes,
        tokens_per_unit_hour=tokens / units / (minutes / 60) if units else 0.0,
        utilisation=utilisation,
        busiest_minute=busiest,
        minutes_full=minutes_full,
        calls=figures.calls,
        throttled=figures.throttled,
    )


def _busy_minutes(
    deployment: ModelDeployment, window: Window, *, units: int, rates: PtuThroughput
) -> tuple[float, int]:
    """The share of throughput the busiest minute used, and how many minutes were nearly full,
    every department and source together: one query, the minutes summed by the database."""
    # Weighted in whole numbers (input x output rate + output x input rate) so the database
    # compares and takes the maximum; a minute's share is that over both rates and the units.
    whole = rates.input_per_minute * rates.output_per_minute * units
    # Declared 64-bit: Django takes a figure past a 32-bit column's range for one no row can match.
    weighted = ExpressionWrapper(
        Sum("input_tokens") * rates.output_per_minute + Sum("output_tokens") * rates.input_per_minute,
        output_field=BigIntegerField(),
    )
    busy = (
        CallMinute.objects.filter(deployment=deployment, minute__gte=window.since)
        .values("minute")
        .annotate(weighted=weighted)
        .aggregate(
            peak=Max("weighted"),
            full=Count("minute", filter=Q(weighted__gte=math.ceil(PTU_FULL_FROM * whole))),
        )
    )
    return (busy["peak"] or 0) / whole, busy["full"] or 0


# Deployments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: ModelDeployment
    figures: CallFigures
    calls_per_minute: float
    ptu: PtuUse | None


@dataclass(frozen=True)
class EstateHealth:
    window: Window
    deployments: list[DeploymentHealth]
    total: CallFigures

    @property
    def calls_per_minute(self) -> float:
        return self.total.per_minute(self.window.minutes)

    @property
    def provisioned(self) -> list[DeploymentHealth]:
        return [row for row in self.deployments if row.ptu is not None]


def estate_health(window: Window) -> EstateHealth:
    """Every deployment that is live or was called in the window, busiest first, with its
    figures; provisioned ones with their throughput used (an idle one is listed with no calls)."""
    rows = _figures_by_deployment(window)
    deployments = ModelDeployment.objects.filter(
        Q(state=ModelDeployment.State.ACTIVE) | Q(pk__in=list(rows))
    ).select_related("department")
    health = []
    for deployment in deployments:
        figures = rows.get(deployment.pk, CallFigures())
        health.append(
            DeploymentHealth(
                deployment=deployment,
                figures=figures,
                calls_per_minute=figures.per_minute(window.minutes),
                ptu=_ptu_use(deployment, figures, window) if deployment.is_provisioned_sku else None,
            )
        )
    health.sort(key=lambda row: (-row.figures.calls, row.deployment.display_name.lower()))
    return EstateHealth(window=window, deployments=health, total=_total(rows.values()))


def _figures_by_deployment(window: Window) -> dict[int, CallFigures]:
    """The window's figures per deployment: whole hours from the hour rows, the rest (its first,
    partial hour and the hours a fold may not have reached) from the minute rows."""
    whole_hours_from = hour_of(window.since)
    if whole_hours_from < window.since:
        whole_hours_from += timedelta(hours=1)
    minutes_from = max(minutes_since(window.until), whole_hours_from)
    spans: list[QuerySet[Any]] = [
        CallMinute.objects.filter(minute__gte=window.since, minute__lt=whole_hours_from)
    ]
    if whole_hours_from < minutes_from:
        spans.append(CallHour.objects.filter(hour__gte=whole_hours_from, hour__lt=minutes_from))
    spans.append(CallMinute.objects.filter(minute__gte=max(minutes_from, window.since)))
    found: dict[int, list[CallFigures]] = {}
    for span in spans:
        for row in span.values("deployment").annotate(**_sums()).order_by():
            found.setdefault(row["deployment"], []).append(_figures_from(row))
    return {deployment: _total(figures) for deployment, figures in found.items()}


def _total(all_figures: Any) -> CallFigures:
    figures = list(all_figures)
    return CallFigures(
        **{name: sum(getattr(one, name) for one in figures) for name in (*COUNTERS, *TOKENS)},
        first_token_ms=summed(one.first_token_ms for one in figures),
        answer_ms=summed(one.answer_ms for one in figures),
    )


# Adoption ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentAdoption:
    department: Department
    members: int
    active_people: int
    conversations: int
    chat_calls: int
    api_calls: int

    @property
    def active_share(self) -> float | None:
        return self.active_people / self.members if self.members else None


def department_adoption(*, now: datetime) -> list[DepartmentAdoption]:
    """Per department over the last week: the people who used a model (in the chat or through
    the gateway with their own token), the conversations that moved, and the calls by source.
    Three grouped queries, whatever the volume of usage."""
    since = now - timedelta(days=ADOPTION_DAYS)
    usage = {
        row["department"]: row
        for row in UsageRecord.objects.filter(created_at__gte=since)
        .values("department")
        .annotate(
            people=Count("user", distinct=True),
            chat_calls=Count("pk", filter=Q(source=UsageRecord.Source.CHAT)),
            api_calls=Count("pk", filter=Q(source=UsageRecord.Source.API)),
        )
        .order_by()
    }
    conversations = dict(
        Conversation.objects.filter(updated_at__gte=since)
        .values("department")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("department", "count")
    )
    members = dict(
        Membership.objects.values("department")
        .annotate(count=Count("user", distinct=True))
        .order_by()
        .values_list("department", "count")
    )
    adoption = []
    for department in Department.objects.order_by("name"):
        used = usage.get(department.pk, {})
        adoption.append(
            DepartmentAdoption(
                department=department,
                members=members.get(department.pk, 0),
                active_people=used.get("people", 0),
                conversations=conversations.get(department.pk, 0),
                chat_calls=used.get("chat_calls", 0),
                api_calls=used.get("api_calls", 0),
            )
        )
    adoption.sort(key=lambda row: (-row.active_people, -row.api_calls, row.department.name.lower()))
    return adoption


# The Microsoft Graph sync -------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectorySyncState:
    enabled: bool
    latest: DirectorySyncRun | None
    last_finished: DirectorySyncRun | None
    last_succeeded: DirectorySyncRun | None
    recent: list[DirectorySyncRun]
    overdue: bool

    @property
    def is_failing(self) -> bool:
        """The last run that ended failed: memberships are as last known, platform roles dropped."""
        return (
            self.last_finished is not None and self.last_finished.outcome == DirectorySyncRun.Outcome.FAILED
        )


def directory_sync_state(*, now: datetime) -> DirectorySyncState:
    recent = list(DirectorySyncRun.objects.select_related("requested_by").order_by("-started_at")[:5])
    finished = [run for run in recent if run.outcome != DirectorySyncRun.Outcome.RUNNING]
    last_finished = finished[0] if finished else None
    last_succeeded = next(
        (run for run in finished if run.outcome == DirectorySyncRun.Outcome.SUCCEEDED), None
    )
    if last_succeeded is None and recent:
        last_succeeded = (
            DirectorySyncRun.objects.filter(outcome=DirectorySyncRun.Outcome.SUCCEEDED)
            .order_by("-started_at")
            .first()
        )
    enabled = bool(settings.ENTRA_ENABLED)
    every = timedelta(seconds=getattr(settings, "ENTRA_SYNC_EVERY_SECONDS", 900))
    # Two schedules missed in a row: the scheduler or the worker is not running.
    overdue = enabled and last_finished is not None and now - last_finished.started_at > 3 * every
    return DirectorySyncState(
        enabled=enabled,
        latest=recent[0] if recent else None,
        last_finished=last_finished,
        last_succeeded=last_succeeded,
        recent=recent,
        overdue=overdue,
    )
