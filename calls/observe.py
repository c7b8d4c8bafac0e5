"""One observation per model call, made when the call ends, for the chat and the gateway alike:
which deployment and department, from where (the chat or the gateway), how it ended (answered,
Azure's error, stopped by the caller, refused at admission and why), how long to the first token
and to the full answer, Azure's 429s on the way, and a failover's from and to.

It goes two ways. Prometheus's series (`record`) are counted in memory when the call ends, on the
request path: a few additions, no I/O (in multi-process mode, to a memory-mapped file). The
operations page's minute rollups (`CallMinute`) are written later, by the settlement's own
database job (`call_minutes_add`, in its transaction: no round trip of their own). A call refused
at admission has no settlement: its observation waits in this process (`refusal_observed`) for the
next settlement, or for a job of its own soon after (`call_minutes_flush_soon`).
"""

import asyncio
import contextvars
import functools
import json
import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Field, Q
from prometheus_client import Counter, Histogram

from base.metrics import prometheus_ready
from calls.database import database_later
from calls.latency import BUCKETS_MS, bucket_index, empty_buckets
from calls.models import COUNTERS, HISTOGRAMS, CallMinute
from calls.models import TOKENS as TOKEN_FIELDS

logger = logging.getLogger(__name__)

ANSWERED, UPSTREAM_ERROR, STOPPED, REFUSED = "answered", "upstream_error", "stopped", "refused"
CHAT, API = CallMinute.Source.CHAT.value, CallMinute.Source.API.value


@dataclass(frozen=True, slots=True)
class CallObservation:
    """How one model call went. `deployment` and `department` are names for Prometheus's labels
    (the gateway name, the department's slug); the ids key the minute rollups."""

    deployment_id: int
    deployment: str
    department_id: int
    department: str
    source: str  # CHAT or API
    outcome: str  # ANSWERED, UPSTREAM_ERROR, STOPPED or REFUSED
    at: datetime
    # Azure's HTTP status for an upstream error, or what broke: "timeout", "connection", "stream".
    upstream_status: str = ""
    refused_reason: str = ""  # the admission limit that refused the call
    first_token_ms: int | None = None
    answer_ms: int | None = None
    throttled: int = 0  # 429s Azure answered on the way (each attempt)
    # The deployment that served the call when a fallback did (its gateway name and id).
    failover_to: str = ""
    failover_to_id: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def upstream_status_of(error: BaseException) -> str:
    """The label of an error from Azure: its HTTP status, or what broke before one came."""
    import openai

    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    return "stream"


# Prometheus ------------------------------------------------------------------------------------

prometheus_ready()
_SECONDS = tuple(bound / 1000 for bound in BUCKETS_MS)
CALLS = Counter("switchyard_calls", "Model calls, by how they ended.", ["deployment", "source", "outcome"])
FIRST_TOKEN = Histogram(
    "switchyard_time_to_first_token_seconds",
    "Time from the call's start to the first token of its answer.",
    ["deployment", "source"],
    buckets=_SECONDS,
)
ANSWER = Histogram(
    "switchyard_answer_seconds",
    "Time from the call's start to its full answer.",
    ["deployment", "source"],
    buckets=_SECONDS,
)
UPSTREAM_ERRORS = Counter(
    "switchyard_upstream_errors",
    "Calls that ended in Azure's error (by HTTP status) or a timeout, lost connection or broken stream.",
    ["deployment", "source", "status"],
)
THROTTLED = Counter(
    "switchyard_azure_throttled", "429 answers from Azure, each attempt.", ["deployment", "source"]
)
FAILOVERS = Counter(
    "switchyard_failovers",
    "Calls served by a fallback deployment after the deployment answered 429 or 503.",
    ["from_deployment", "to_deployment", "source"],
)
REFUSALS = Counter(
    "switchyard_admission_refusals",
    "Calls refused at admission, before reaching Azure, by the limit that refused them.",
    ["deployment", "source", "reason"],
)
TOKENS = Counter("switchyard_tokens", "Tokens metered, input and output.", ["deployment", "source", "kind"])


def record(observation: CallObservation) -> None:
    """Count the call in Prometheus's series (in memory)."""
    # A call served by a fallback counts on the deployment that served it; its 429s on the one
    # that sent it away.
    deployment, source = observation.failover_to or observation.deployment, observation.source
    CALLS.labels(deployment, source, observation.outcome).inc()
    if observation.outcome == REFUSED:
        REFUSALS.labels(deployment, source, observation.refused_reason).inc()
        return
    if observation.first_token_ms is not None:
        FIRST_TOKEN.labels(deployment, source).observe(observation.first_token_ms / 1000)
    if observation.outcome == ANSWERED and observation.answer_ms is not None:
        ANSWER.labels(deployment, source).observe(observation.answer_ms / 1000)
    if observation.outcome == UPSTREAM_ERROR:
        UPSTREAM_ERRORS.labels(deployment, source, observation.upstream_status).inc()
    if observation.throttled:
        THROTTLED.labels(observation.deployment, source).inc(observation.throttled)
    if observation.failover_to:
        FAILOVERS.labels(observation.deployment, observation.failover_to, source).inc()
    if observation.input_tokens:
        TOKENS.labels(deployment, source, "input").inc(observation.input_tokens)
    if observation.output_tokens:
        TOKENS.labels(deployment, source, "output").inc(observation.output_tokens)


# Refusals waiting for a database job -----------------------------------------------------------

_waiting: list[CallObservation] = []
_waiting_lock = threading.Lock()
# The event loops with a flush of the waiting refusals on its way.
_flushing: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()


def refusal_observed(observation: CallObservation) -> None:
    """A call refused at admission: counted now, its minute written with the next settlement or
    by `call_minutes_flush_soon`. Safe from any thread (admission runs on the database thread)."""
    record(observation)
    with _waiting_lock:
        _waiting.append(observation)


def _take_waiting() -> list[CallObservation]:
    with _waiting_lock:
        taken = _waiting[:]
        _waiting.clear()
    return taken


def call_minutes_flush_soon() -> None:
    """From the event loop, after a refusal: write the waiting refusals in a job of their own on
    the database thread, after the urgent jobs, unless a settlement takes them first. The caller
    does not wait for it."""
    if not _waiting:
        return
    loop = asyncio.get_running_loop()
    if loop in _flushing:
        return
    _flushing.add(loop)

    async def flush() -> None:
        try:
            await database_later(call_minutes_add, observations=())
        except Exception:
            logger.exception("Could not write the minute rollups of refused calls")
        finally:
            _flushing.discard(loop)

    task = loop.create_task(flush(), context=contextvars.Context())  # not this request's job
    _flush_tasks.add(task)
    task.add_done_callback(_flush_tasks.discard)


_flush_tasks: set["asyncio.Task[None]"] = set()


# Minute rollups ----------------------------------------------------------------------------------

Key = tuple[datetime, int, int, str]


@dataclass
class _Minute:
    calls: int = 0
    answered: int = 0
    upstream_errors: int = 0
    throttled: int = 0
    failovers: int = 0
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_token_ms: list[int] | None = None
    answer_ms: list[int] | None = None

    def add(self, observation: CallObservation) -> None:
        if observation.outcome == REFUSED:
            self.refused += 1
            return
        self.calls += 1
        self.answered += observation.outcome == ANSWERED
        self.upstream_errors += observation.outcome == UPSTREAM_ERROR
        self.throttled += observation.throttled
        self.input_tokens += observation.input_tokens
        self.output_tokens += observation.output_tokens
        if observation.first_token_ms is not None:
            self.first_token_ms = _counted(self.first_token_ms, observation.first_token_ms)
        if observation.outcome == ANSWERED and observation.answer_ms is not None:
            self.answer_ms = _counted(self.answer_ms, observation.answer_ms)


def _counted(buckets: list[int] | None, milliseconds: int) -> list[int]:
    buckets = buckets or empty_buckets()
    buckets[min(bucket_index(milliseconds), len(buckets) - 1)] += 1
    return buckets


def _minutes(observations: Iterable[CallObservation]) -> dict[Key, _Minute]:
    """The observations summed per minute rollup. A call served by a fallback counts on the
    deployment that served it (as its usage does); the failover, and Azure's 429s that caused it,
    on the deployment it was meant for: the page shows where calls ran and which sent them away."""
    minutes: dict[Key, _Minute] = {}
    for observation in observations:
        minute = observation.at.replace(second=0, microsecond=0)
        meant = minutes.setdefault(
            (minute, observation.deployment_id, observation.department_id, observation.source), _Minute()
        )
        if observation.failover_to_id is None:
            meant.add(observation)
            continue
        served = minutes.setdefault(
            (minute, observation.failover_to_id, observation.department_id, observation.source), _Minute()
        )
        served.add(replace(observation, throttled=0, failover_to="", failover_to_id=None))
        meant.failovers += 1
        meant.throttled += observation.throttled
    return minutes


def call_minutes_add(*, observations: Sequence[CallObservation]) -> None:
    """Add the calls (and the refusals waiting in this process) to their minute rollups, in the
    caller's transaction when it has one, rows in key order (every settlement locks them in the
    same order). On PostgreSQL one statement adds them all (`_minutes_upsert`); elsewhere the ORM
    makes the missing rows, locks them and adds to them."""
    minutes = _minutes([*observations, *_take_waiting()])
    if not minutes:
        return
    keys = sorted(minutes)
    if connection.vendor == "postgresql":
        _minutes_upsert(keys, minutes)
        return
    with transaction.atomic(savepoint=False):
        CallMinute.objects.bulk_create(
            [
                CallMinute(minute=minute, deployment_id=deployment, department_id=department, source=source)
                for minute, deployment, department, source in keys
            ],
            ignore_conflicts=True,
        )
        where = Q()
        for minute, deployment, department, source in keys:
            where |= Q(minute=minute, deployment_id=deployment, department_id=department, source=source)
        rows = list(
            CallMinute.objects.select_for_update()
            .filter(where)
            .order_by("minute", "deployment_id", "department_id", "source")
        )
        for row in rows:
            row.counts_add(vars(minutes[(row.minute, row.deployment_id, row.department_id, row.source)]))
        CallMinute.objects.bulk_update(rows, [*COUNTERS, *TOKEN_FIELDS, *HISTOGRAMS], batch_size=500)


KEY_FIELDS = ("minute", "deployment", "department", "source")


@functools.cache
def _upsert_sql(rows: int) -> str:
    """PostgreSQL: insert the rows, or add them to the ones there (counters by +, histograms bucket
    by bucket), in one statement: the settlement it rides on does no more round trips than before.
    Written once from the model's names; a test holds it to the ORM's answer."""
    meta = CallMinute._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        field = meta.get_field(name)
        assert isinstance(field, Field)
        assert field.column is not None
        return quote(field.column)

    names = [*KEY_FIELDS, *COUNTERS, *TOKEN_FIELDS, *HISTOGRAMS]
    columns = ", ".join(column(name) for name in names)
    placeholders = ", ".join(["%s"] * (len(names) - len(HISTOGRAMS)) + ["%s::jsonb"] * len(HISTOGRAMS))
    values = ", ".join([f"({placeholders})"] * rows)
    keys = ", ".join(column(name) for name in KEY_FIELDS)
    sums = [
        f"{column(name)} = t.{column(name)} + EXCLUDED.{column(name)}" for name in (*COUNTERS, *TOKEN_FIELDS)
    ]
    for name in HISTOGRAMS:
        mine, theirs = f"t.{column(name)}", f"EXCLUDED.{column(name)}"
        sums.append(
            f"{column(name)} = CASE WHEN {theirs} = '[]'::jsonb THEN {mine} ELSE ("  # noqa: S608
            "SELECT jsonb_agg(COALESCE(a.count::bigint, 0) + COALESCE(b.count::bigint, 0) "
            "ORDER BY COALESCE(a.bucket, b.bucket)) "
            f"FROM jsonb_array_elements_text({mine}) WITH ORDINALITY AS a(count, bucket) "
            f"FULL JOIN jsonb_array_elements_text({theirs}) WITH ORDINALITY AS b(count, bucket) "
            "ON a.bucket = b.bucket) END"
        )
    return (
        f"INSERT INTO {quote(meta.db_table)} AS t ({columns}) VALUES {values} "  # noqa: S608 (names from _meta)
        f"ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sums)}"
    )


def _minutes_upsert(keys: Sequence[Key], minutes: dict[Key, _Minute]) -> None:
    # A minute without latencies yet (refusals, errors before the first token) gets `[]` for its
    # histograms, which `calls.latency.added` and `summed` read as all zeros.
    params: list[Any] = []
    for key in keys:
        change = minutes[key]
        params += [*key, *(getattr(change, name) for name in (*COUNTERS, *TOKEN_FIELDS))]
        params += [json.dumps(getattr(change, name) or []) for name in HISTOGRAMS]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(len(keys)), params)
