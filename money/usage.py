"""Usage records and their rollups: one model call, priced as it is saved, and the per-day and
per-month sums that reports and budget checks read instead of raw usage."""

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Count, Field, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from money.models import (
    DailyDeploymentRollup,
    DepartmentUsageRollup,
    MonthlyCallerRollup,
    MonthlyPersonRollup,
    MonthlyUsageRollup,
    UsageCounters,
    UsageRecord,
    UsageRollup,
)
from money.periods import Period, month_bounds
from money.prices import usage_cost
from org.models import Department, User
from provisioning.models import ModelDeployment

if TYPE_CHECKING:
    from chat.models import Conversation

ROLLUP_COUNTERS = ["requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost"]


def usage_record_create(
    *,
    department: Department,
    user: User | None,
    deployment: ModelDeployment,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    conversation: "Conversation | None" = None,
    source: str = UsageRecord.Source.CHAT,
    at: datetime | None = None,
    reservation_id: UUID | None = None,
    estimated: bool = False,
    api_key_id: int | None = None,
    principal_id: int | None = None,
    attempts: list[dict[str, Any]] | None = None,
) -> UsageRecord:
    at = at or timezone.now()
    cost, price = usage_cost(
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=at,
    )
    # The record and its rollups commit together: a report never sees one without the other.
    # Inside a caller's transaction (a chat answer's, with its message) they are part of that one,
    # without a savepoint of their own: two statements fewer per answer.
    with transaction.atomic(savepoint=False):
        record = UsageRecord(
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
            reservation_id=reservation_id,
            estimated=estimated,
            api_key_id=api_key_id,
            principal_id=principal_id,
            attempts=attempts or [],
        )
        _record_insert(record)
        usage_rollup_add(record=record)
    return record


@functools.cache
def _record_insert_sql(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    # One per database vendor; `connection` is the default database's.
    meta = UsageRecord._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    assert meta.pk is not None
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values}) "  # noqa: S608 (names from _meta)
        f"RETURNING {quote(meta.pk.column)}",
        fields,
    )


def _record_insert(record: UsageRecord) -> None:
    """One INSERT, written once from the model, as a reservation's is (money.admission): every
    call of the chat and the gateway makes a record, and the ORM's save cost more than the
    statement. (No model signals are sent: nothing listens to usage records' saves.)"""
    sql, fields = _record_insert_sql(connection.vendor)
    params = [field.get_db_prep_save(getattr(record, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (record.pk,) = cursor.fetchone()
    record._state.adding = False
    record._state.db = connection.alias


def usage_record_correct(
    *, record: UsageRecord, input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> UsageRecord:
    """Replace an estimated record's counts with Azure's, repriced as of its time, and move its
    rollups by the difference. The caller holds the record's lock."""
    cost, price = usage_cost(
        deployment=record.deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=record.created_at,
    )
    difference = [
        0,
        input_tokens - record.input_tokens,
        cached_input_tokens - record.cached_input_tokens,
        output_tokens - record.output_tokens,
        cost - record.cost,
    ]
    record.input_tokens, record.cached_input_tokens, record.output_tokens = (
        input_tokens,
        cached_input_tokens,
        output_tokens,
    )
    record.cost, record.price, record.estimated = cost, price, False
    with transaction.atomic(savepoint=False):
        record.save(
            update_fields=[
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "cost",
                "price",
                "estimated",
            ]
        )
        usage_rollup_add(record=record, counters=difference)
    return record


def usage_rollup_add(*, record: UsageRecord, counters: list[Any] | None = None) -> None:
    """Add one record (or, with `counters`, a correction of it: requests, input, cached and
    output tokens, cost) to its day's and month's rollups; inside `usage_rollups_batched`, with
    the batch's other records when the batch ends."""
    batch = _batch.get()
    if batch is not None:
        batch.append((record, counters))
        return
    usage_rollups_add(records=[(record, counters)])


def usage_rollups_add(*, records: Sequence[tuple[UsageRecord, list[Any] | None]]) -> None:
    """Add records (each with its counters, as `usage_rollup_add` takes them) to their rollups:
    one upsert per rollup table that adds in the database, so concurrent calls (several web
    workers) never lose each other's counts. Records with the same key in a table are summed
    first: one statement may not change a row twice."""
    sums: dict[type[UsageCounters], dict[tuple[Any, ...], list[Any]]] = {model: {} for model in ROLLUP_KEYS}
    for record, counters in records:
        added = counters or [
            1,
            record.input_tokens,
            record.cached_input_tokens,
            record.output_tokens,
            record.cost,
        ]
        record_keys = _record_keys(record)
        for model, keys in ROLLUP_KEYS.items():
            key = tuple(record_keys[name] for name in keys)
            total = sums[model].get(key)
            if total is None:
                sums[model][key] = list(added)
            else:
                for index, value in enumerate(added):
                    total[index] += value
    adapt_cost = connection.ops.adapt_decimalfield_value
    with connection.cursor() as cursor:
        for model, rows in sums.items():
            # In key order, so that two processes adding to the same rows lock them in one order.
            ordered = sorted(rows.items())
            for start in range(0, len(ordered), UPSERT_ROWS):
                chunk = ordered[start : start + UPSERT_ROWS]
                params: list[Any] = []
                for key, (requests, input_tokens, cached_tokens, output_tokens, cost) in chunk:
                    params += [*key, requests, input_tokens, cached_tokens, output_tokens]
                    params.append(adapt_cost(cost, 20, 10))
                cursor.execute(_upsert_sql(model, len(chunk)), params)


# Rows in one upsert at most (SQLite takes at most 32,766 parameters in a statement).
UPSERT_ROWS = 500

_batch: "ContextVar[list[tuple[UsageRecord, list[Any] | None]] | None]" = ContextVar(
    "usage_rollup_batch", default=None
)


@contextmanager
def usage_rollups_batched() -> Iterator[None]:
    """Inside the caller's transaction: the rollups of the records made within are added when the
    block ends, in one statement per rollup table for all of them, instead of one per record and
    table. Nothing inside may read the rollups it would change."""
    if _batch.get() is not None:  # inside another batch: that one adds them
        yield
        return
    batch: list[tuple[UsageRecord, list[Any] | None]] = []
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    if batch:
        usage_rollups_add(records=batch)


def _record_keys(record: UsageRecord) -> dict[str, Any]:
    """The record's value of every rollup's key columns, each rollup taking its own (ROLLUP_KEYS)."""
    local_day = timezone.localdate(record.created_at)
    return {
        "day": connection.ops.adapt_datefield_value(local_day),
        "month": connection.ops.adapt_datefield_value(local_day.replace(day=1)),
        "department_id": record.department_id,
        "deployment_id": record.deployment_id,
        "user_key": record.user_id or 0,
        "source": record.source,
        "api_key_key": record.api_key_id or 0,
        "principal_key": record.principal_id or 0,
    }


# Each rollup's key columns: its unique constraint, which the upsert conflicts on.
ROLLUP_KEYS: dict[type[UsageCounters], list[str]] = {
    UsageRollup: ["day", "department_id", "deployment_id", "user_key"],
    DepartmentUsageRollup: ["day", "department_id", "deployment_id"],
    DailyDeploymentRollup: ["day", "deployment_id"],
    MonthlyUsageRollup: ["month", "department_id", "deployment_id"],
    MonthlyPersonRollup: ["month", "department_id", "user_key"],
    MonthlyCallerRollup: [
        "month",
        "department_id",
        "deployment_id",
        "source",
        "api_key_key",
        "principal_key",
    ],
}


@cache
def _upsert_sql(model: type[UsageCounters], rows: int = 1) -> str:
    """One statement per rollup, which both SQLite and PostgreSQL run as one atomic add: insert
    the rows, or add the counters to the rows already there (their key is a unique constraint).
    Built once per table and number of rows: it runs for every model call."""
    table, keys = model._meta.db_table, ROLLUP_KEYS[model]
    columns = ", ".join([*keys, *ROLLUP_COUNTERS])
    row = "(" + ", ".join(["%s"] * (len(keys) + len(ROLLUP_COUNTERS))) + ")"
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_COUNTERS)
    return (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)} "  # noqa: S608 (names from _meta)
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


# The rollups' counters, as the rebuild selects them (alias -> rollup column).
REBUILD_COUNTERS = {
    "rollup_requests": "requests",
    "rollup_input": "input_tokens",
    "rollup_cached": "cached_input_tokens",
    "rollup_output": "output_tokens",
    "rollup_cost": "cost",
}


@dataclass(frozen=True)
class _Rebuild:
    """One rollup table's rebuild: clear `bounds` of `period_column`, then insert `source`'s rows
    (`columns`: the source's column -> the table's column)."""

    model: type[UsageCounters]
    period_column: str
    bounds: list[Any]
    source: "QuerySet[Any]"
    columns: dict[str, str]


def usage_rollups_rebuild(*, first_day: date, last_day: date) -> int:
    """Recompute the rollups of [first_day, last_day] from the usage records (backfill, repair);
    the monthly ones of the months it touches, from the daily ones (the callers' from the
    records). Returns the number of per-person daily rows written."""
    rebuilds = _rebuilds(first_day, last_day)
    tables = [rebuild.model._meta.db_table for rebuild in rebuilds]
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Usage metered meanwhile waits for the rebuild and then adds itself: without the
            # lock its upsert could land in rows the rebuild is about to replace.
            cursor.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
        for table, rebuild in zip(tables, rebuilds, strict=True):
            select_sql, params = rebuild.source.query.sql_with_params()
            cursor.execute(
                f"DELETE FROM {table} WHERE {rebuild.period_column} BETWEEN %s AND %s",  # noqa: S608
                rebuild.bounds,
            )
            # Selected by name from a subquery: the ORM decides the order of its own SELECT list.
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(rebuild.columns.values())}) "  # noqa: S608
                f"SELECT {', '.join(rebuild.columns)} FROM ({select_sql}) source",
                params,
            )
            if rebuild.model is UsageRollup:
                written = cursor.rowcount
    return written


def _rebuilds(first_day: date, last_day: date) -> list[_Rebuild]:
    """The six rollups in the order they are rebuilt: the per-person daily rows from the records,
    the next four from those, the callers' from the records."""
    adapt = connection.ops.adapt_datefield_value
    first_month = first_day.replace(day=1)
    days = [adapt(first_day), adapt(last_day)]
    months = [adapt(first_month), adapt(last_day.replace(day=1))]
    daily = UsageRollup.objects.filter(day__gte=first_day, day__lte=last_day).order_by()
    month_days = UsageRollup.objects.filter(
        day__gte=first_month, day__lte=month_bounds(last_day)[1].date() - timedelta(days=1)
    ).order_by()
    by_month = month_days.annotate(rollup_month=TruncMonth("day"))
    sums = {name: Sum(field) for name, field in REBUILD_COUNTERS.items()}

    def columns(*keys: str, **renamed: str) -> dict[str, str]:
        return {**renamed, **{key: key for key in keys}, **REBUILD_COUNTERS}

    return [
        _Rebuild(
            UsageRollup,
            "day",
            days,
            _records_by_day(first_day, last_day),
            columns("department_id", "deployment_id", rollup_day="day", rollup_user="user_key"),
        ),
        _Rebuild(
            DepartmentUsageRollup,
            "day",
            days,
            daily.values("day", "department_id", "deployment_id").annotate(**sums),
            columns("day", "department_id", "deployment_id"),
        ),
        _Rebuild(
            DailyDeploymentRollup,
            "day",
            days,
            daily.values("day", "deployment_id").annotate(**sums),
            columns("day", "deployment_id"),
        ),
        _Rebuild(
            MonthlyUsageRollup,
            "month",
            months,
            by_month.values("rollup_month", "department_id", "deployment_id").annotate(**sums),
            columns("department_id", "deployment_id", rollup_month="month"),
        ),
        _Rebuild(
            MonthlyPersonRollup,
            "month",
            months,
            by_month.values("rollup_month", "department_id", "user_key").annotate(**sums),
            columns("department_id", "user_key", rollup_month="month"),
        ),
        # From the records: no daily rollup knows the caller. Whole months, as the other monthly
        # rollups: a month's row must hold the days outside the range too.
        _Rebuild(
            MonthlyCallerRollup,
            "month",
            months,
            _records_by_month_and_caller(first_month, month_bounds(last_day)[1].date()),
            columns(
                "department_id",
                "deployment_id",
                "source",
                rollup_month="month",
                rollup_api_key="api_key_key",
                rollup_principal="principal_key",
            ),
        ),
    ]


def _records_between(first_day: date, end_day: date) -> "QuerySet[UsageRecord]":
    """The usage records of the days [first_day, end_day) in the portal's time zone."""
    return UsageRecord.objects.filter(
        created_at__gte=Period.start_of(first_day), created_at__lt=Period.start_of(end_day)
    ).order_by()


def _record_counters() -> dict[str, Any]:
    # A record is one request; its other counters have the rollups' names.
    return {
        "rollup_requests": Count("id"),
        **{name: Sum(field) for name, field in REBUILD_COUNTERS.items() if name != "rollup_requests"},
    }


def _records_by_month_and_caller(first_month: date, end_day: date) -> "QuerySet[Any]":
    """The usage records of the months summed per month x department x deployment x source x
    caller (0 for no key, no principal)."""
    return (
        _records_between(first_month, end_day)
        .annotate(
            rollup_month=TruncMonth(TruncDate("created_at")),
            rollup_api_key=Coalesce("api_key_id", Value(0)),
            rollup_principal=Coalesce("principal_id", Value(0)),
        )
        .values(
            "rollup_month", "department_id", "deployment_id", "source", "rollup_api_key", "rollup_principal"
        )
        .annotate(**_record_counters())
    )


def _records_by_day(first_day: date, last_day: date) -> "QuerySet[Any]":
    """The usage records of the days summed per day x department x deployment x person."""
    return (
        _records_between(first_day, last_day + timedelta(days=1))
        .annotate(rollup_day=TruncDate("created_at"), rollup_user=Coalesce("user_id", Value(0)))
        .values("rollup_day", "department_id", "deployment_id", "rollup_user")
        .annotate(**_record_counters())
    )
