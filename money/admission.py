"""Admission by reservation: a call to a model is let through only if its most expensive outcome
fits every limit, and what it really used replaces the reservation when it ends.

1. `admission_reserve`: the call's bound (its prompt's tokens, never fewer than Azure will count,
   plus the most it may write, at the price in force) is taken from the person's and the grant's
   tokens this minute, the person's requests this minute, and the money left this month in the
   department's budget and the grant's allowance, all or nothing. A limit without room refuses
   the call with a message naming it.
2. `admission_settle`: the call's real usage (or an estimate, marked so, when Azure's count never
   arrived) is recorded and the reservation given back, in one transaction. `admission_release`
   gives it back without a record, for a call Azure refused and does not bill.
3. `reservations_reconcile`: a reservation left by a process that died expires and is settled on
   its prompt, marked estimated, so no limit stays taken and no call Azure billed goes unrecorded.

Money limits live in the database (`SpendLedger`): the usage records and rollups are there, so a
settlement and the ledger change in one transaction, and a refresh of `spent` from the cost
model (hourly PTU accruals, the split of shared deployments) can lock the row and never miss or
double a settlement. Per-minute limits are counters in `money.windows`.
"""

import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.db import DataError, connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from money import windows
from money.amounts import to_units
from money.budgets import WARNING_SHARE
from money.limits import (
    Claim,
    GrantNotRead,
    Limits,
    MoneyLimit,
    department_ledger_key,
    grant_ledger_key,
    limits_for,
)
from money.models import Reservation, SpendLedger, UsageRecord
from money.prices import NotRemembered, RememberedPrices, usage_cost
from money.usage import usage_record_correct, usage_record_create
from org.models import Department, User
from provisioning.models import ModelDeployment

if TYPE_CHECKING:
    from chat.models import Conversation

logger = logging.getLogger(__name__)

# `spent` is read again from the cost model at most this often per ledger; every settlement adds
# its cost at once, so only hourly accruals and shares of shared deployments wait for it.
LEDGER_REFRESH_SECONDS = 60


class AdmissionRefused(Exception):
    """The call does not fit a limit; `message` names it, in words for the person or the caller."""

    def __init__(self, message: str, *, limit: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reserved:
    """What a reservation holds: the row, as its settlement takes it off the table (or as its
    admission made it, for the settlement of a reservation the database lost)."""

    id: UUID
    source: str
    department_id: int
    deployment_id: int
    user_id: int | None
    ledgers: list[list[Any]]
    token_windows: list[list[Any]]
    api_key_id: int | None = None
    principal_id: int | None = None


@dataclass(frozen=True)
class Admission:
    """A call let through, until it is settled."""

    reservation_id: UUID
    amount: Decimal
    # The department's budget taken, this call's bound included (None: no budget).
    budget_share: Decimal | None = None
    # Set when the reservation was committed without waiting for the disk (`_hold_at_once`):
    # hand the admission to `admission_settle`, which records the call should the reservation
    # have been lost.
    reserved: Reserved | None = None

    @property
    def budget_warning(self) -> bool:
        return self.budget_share is not None and self.budget_share >= WARNING_SHARE


@dataclass(frozen=True)
class Usage:
    """What a call used, as Azure counted it, or an estimate when Azure's count never came."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    estimated: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# Reserving -----------------------------------------------------------------------------------


def call_bound(
    *, deployment: ModelDeployment, prompt_tokens: int, max_output_tokens: int, at: datetime
) -> Decimal:
    """The most a call can cost: every prompt token uncached, the longest answer allowed."""
    cost, _price = usage_cost(
        deployment=deployment,
        input_tokens=prompt_tokens,
        cached_input_tokens=0,
        output_tokens=max_output_tokens,
        at=at,
    )
    return cost


def claim_bound(claim: Claim, *, at: datetime, prices: RememberedPrices | None = None) -> Decimal:
    """The most the claimed call can cost on any deployment it may be served by (it may fail over
    to a dearer one). `prices`: see `admission_plan`."""
    return max(
        usage_cost(
            deployment=deployment,
            input_tokens=claim.prompt_tokens,
            cached_input_tokens=0,
            output_tokens=claim.max_output_tokens,
            at=at,
            prices=prices,
        )[0]
        for deployment in (claim.deployment, *claim.fallbacks)
    )


def admission_reserve(*, claim: Claim, now: datetime | None = None) -> Admission:
    """Reserve the call's bound against every limit, or refuse it (`AdmissionRefused`)."""
    now = now or timezone.now()
    amount = claim_bound(claim, at=now)
    amount_units = to_units(amount)
    limits = limits_for(claim, now=now)
    for money_limit in limits.money:
        _ledger_ensure(money_limit, now=now)
    takes = [limit.take for limit in limits.windows]
    reservation = _reservation_for(claim, limits, amount_units, now=now)
    # With the per-minute windows in the database, the windows and the holds are one transaction,
    # which a refusal rolls back (a savepoint, inside the caller's transaction when it has one).
    # On Redis, the holds and the reservation are all or nothing on their own.
    with transaction.atomic() if not windows.uses_redis() else contextlib.nullcontext():
        full = windows.take(takes, now=now)
        if full is not None:
            refused = limits.windows[full.index]
            raise AdmissionRefused(
                refused.refusal(full.used, windows.seconds_left(now)),
                limit=refused.take.key.split(":", 1)[0],
                retry_after=windows.seconds_left(now),
            )
        try:
            held, durable = _hold_at_once(limits.money, amount_units, reservation), False
            if held is None:
                held, durable = _hold_one_by_one(limits.money, amount_units, reservation, now=now), True
        except BaseException:
            if windows.uses_redis():  # the database part rolls back by itself
                windows.give_back(
                    [(take.key, take.amount) for take in takes], once=f"refused:{reservation.pk}"
                )
            raise
    admission, stale = _admitted(limits.money, held, amount, reservation, durable=durable, now=now)
    admission_refresh_ledgers(money_limits=stale, now=now)
    return admission


def _reservation_for(claim: Claim, limits: Limits, amount_units: int, *, now: datetime) -> Reservation:
    # By ids: setting the related objects costs more than the rest of the reservation.
    return Reservation(
        department_id=claim.department.pk,
        deployment_id=claim.deployment.pk,
        user_id=claim.user.pk if claim.user is not None else None,
        source=claim.source,
        prompt_tokens=claim.prompt_tokens,
        max_output_tokens=claim.max_output_tokens,
        amount_units=amount_units,
        ledgers=[[limit.key, amount_units] for limit in limits.money],
        token_windows=[[limit.take.key, claim.tokens] for limit in limits.windows if limit.tokens],
        created_at=now,
        expires_at=now + timedelta(seconds=settings.ADMISSION_RESERVATION_SECONDS),
        api_key_id=claim.api_key_id,
        principal_id=claim.principal_id,
    )


def _admitted(
    money_limits: Sequence[MoneyLimit],
    held: "Held",
    amount: Decimal,
    reservation: Reservation,
    *,
    durable: bool,
    now: datetime,
) -> tuple[Admission, list[MoneyLimit]]:
    """The admission the holds made, and the limits whose ledgers are due to be read again."""
    budget_share = None
    stale: list[MoneyLimit] = []
    for money_limit, (taken, refreshed_at) in zip(money_limits, held, strict=True):
        if money_limit.is_budget:
            budget_share = Decimal(taken) / money_limit.limit_units
        if refreshed_at < now - timedelta(seconds=LEDGER_REFRESH_SECONDS):
            stale.append(money_limit)
    reserved = None
    if not durable:
        reserved = Reserved(
            reservation.pk,
            reservation.source,
            reservation.department_id,
            reservation.deployment_id,
            reservation.user_id,
            reservation.ledgers,
            reservation.token_windows,
            reservation.api_key_id,
            reservation.principal_id,
        )
    admission = Admission(
        reservation_id=reservation.pk, amount=amount, budget_share=budget_share, reserved=reserved
    )
    return admission, stale


def admission_refresh_ledgers(*, money_limits: Sequence[MoneyLimit], now: datetime) -> None:
    """Read `spent` of these ledgers again from the cost model (`_admitted`'s stale ones)."""
    for money_limit in money_limits:
        _ledger_refresh(money_limit, now=now, older_than=now - timedelta(seconds=LEDGER_REFRESH_SECONDS))


# Reserving without waiting for the database ---------------------------------------------------


@dataclass(frozen=True)
class HoldPlan:
    """An admission worked out from what the process remembers, down to its one statement
    (`_hold_at_once`'s), for a caller that sends the statement itself: the gateway, from its event
    loop (`gateway.metering.gateway_call_prepare_on_loop`). The statement commits on its own."""

    sql: str
    params: list[Any]
    amount: Decimal
    money_limits: list[MoneyLimit]
    reservation: Reservation


def admission_plan(*, claim: Claim, now: datetime) -> HoldPlan | None:
    """`admission_reserve`'s work up to its statement, without a query: None when it would need
    one (a price or a ledger this process has not read lately, a shared deployment's grant), a
    per-minute window (on Redis or in the database), or another database than PostgreSQL. The
    statement then admits the call or, failing (`DataError`: a ledger had no room or is gone),
    changes nothing, and `admission_reserve` says why."""
    if connection.vendor != "postgresql":
        return None
    try:
        amount = claim_bound(claim, at=now, prices=RememberedPrices())
        limits = limits_for(claim, now=now, read_grant=False)
    except (NotRemembered, GrantNotRead):
        return None
    if limits.windows or any(money_limit.key not in _ledgers_known for money_limit in limits.money):
        return None
    amount_units = to_units(amount)
    reservation = _reservation_for(claim, limits, amount_units, now=now)
    return HoldPlan(
        sql=_hold_at_once_sql(len(limits.money), wait_for_disk=False),
        params=_hold_at_once_params(limits.money, amount_units, reservation),
        amount=amount,
        money_limits=limits.money,
        reservation=reservation,
    )


def admission_held(
    plan: HoldPlan, rows: Sequence[Sequence[Any]], *, now: datetime
) -> tuple[Admission, list[MoneyLimit]]:
    """The admission that the plan's statement made, from the rows it answered, and the limits
    whose ledgers are due to be read again (`admission_refresh_ledgers`, on a database thread)."""
    held = _held_from_rows(plan.money_limits, rows)
    return _admitted(plan.money_limits, held, plan.amount, plan.reservation, durable=False, now=now)


Held = list[tuple[int, datetime]]  # per money limit: spent + held after the hold, refreshed at


def _hold_one_by_one(
    money_limits: Sequence[MoneyLimit], units: int, reservation: Reservation, *, now: datetime
) -> Held:
    """Hold on each ledger in turn and insert the reservation, in a transaction: refuses the call
    in the words of the first limit without room, and makes a ledger that is not there yet."""
    with transaction.atomic():
        held = [_ledger_hold(money_limit, units, now=now) for money_limit in money_limits]
        sql, fields = _reservation_insert_sql(connection.vendor)
        with connection.cursor() as cursor:
            cursor.execute(sql, _reservation_params(reservation, fields))
    return held


def _hold_at_once(money_limits: Sequence[MoneyLimit], units: int, reservation: Reservation) -> Held | None:
    """PostgreSQL: hold on every ledger and insert the reservation in one statement, which changes
    nothing unless every ledger has room (the statement fails, and so rolls back whole). Every call
    makes a reservation, and one statement is one round trip to the server where a transaction
    of one statement per ledger took five. None: not every ledger had room, or one is not there
    yet (`_hold_one_by_one` says which, or makes it); or the database is not PostgreSQL.

    Outside a transaction the statement commits without waiting for the disk
    (`synchronous_commit` off for it alone): the flush took most of a call's admission, and the
    call waits for it before Azure is asked. The holds and the limits' checks are as exact as ever;
    only a crash of the database server in the moment after may lose the reservation (and its
    holds with it), and the call's settlement then records it all the same (`admission_settle`,
    given the admission). Inside a caller's transaction, the caller's commit decides."""
    if connection.vendor != "postgresql":
        return None
    sql = _hold_at_once_sql(len(money_limits), wait_for_disk=connection.in_atomic_block)
    params = _hold_at_once_params(money_limits, units, reservation)
    try:
        # In the caller's transaction, a savepoint: the failed statement rolls back only itself.
        savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with savepoint, connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    except DataError:
        return None
    return _held_from_rows(money_limits, rows)


def _hold_at_once_params(
    money_limits: Sequence[MoneyLimit], units: int, reservation: Reservation
) -> list[Any]:
    params: list[Any] = []
    for money_limit in money_limits:
        params += [money_limit.key, units, money_limit.limit_units]
    _insert, fields = _reservation_insert_sql("postgresql")
    return [*params, *_reservation_params(reservation, fields), len(money_limits)]


def _held_from_rows(money_limits: Sequence[MoneyLimit], rows: Sequence[Sequence[Any]]) -> "Held":
    taken = {row[0]: (int(row[1]), _as_datetime(row[2])) for row in rows if row[0]}
    return [taken[money_limit.key] for money_limit in money_limits]


@functools.cache
def _hold_at_once_sql(ledgers: int, *, wait_for_disk: bool) -> str:
    table, key, spent, held = _ledger_names_for("postgresql")
    insert, _fields = _reservation_insert_sql("postgresql")
    # Local to the statement's own transaction, whose commit reads it.
    flush = "" if wait_for_disk else ", set_config('synchronous_commit', 'off', true)"
    if not ledgers:
        return f"WITH made AS ({insert}) SELECT NULL, NULL, NULL, %s::integer{flush}"
    wanted = ", ".join(["(%s::text, %s::bigint, %s::bigint)"] * ledgers)
    # The last column fails the statement (a text that is not a number) when fewer ledgers than
    # asked had room: the one row of `(SELECT 1)` makes it count even when none had.
    return (
        f"WITH wanted (key, units, cap) AS (VALUES {wanted}), "  # noqa: S608 (names from _meta)
        f"held AS (UPDATE {table} AS ledger SET {held} = ledger.{held} + wanted.units FROM wanted "
        f"WHERE ledger.{key} = wanted.key "
        f"AND ledger.{spent} + ledger.{held} + GREATEST(wanted.units, 1) <= wanted.cap "
        f"RETURNING ledger.{key} AS key, ledger.{spent} + ledger.{held} AS taken, ledger.refreshed_at), "
        f"made AS ({insert}) "
        "SELECT held.key, held.taken, held.refreshed_at, "
        "CAST(CASE WHEN (SELECT count(*) FROM held) = %s THEN '0' ELSE 'a ledger had no room' END "
        f"AS integer){flush} "
        "FROM (SELECT 1) AS one LEFT JOIN held ON true"
    )


@functools.cache
def _reservation_insert_sql(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    fields = tuple(Reservation._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    table = quote(Reservation._meta.db_table)
    values = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {table} ({columns}) VALUES ({values})", fields  # noqa: S608 (names from _meta)


def _reservation_params(reservation: Reservation, fields: Sequence[Field[Any, Any]]) -> list[Any]:
    """The reservation's values for its INSERT, written once from the model: every call makes a
    reservation, and the ORM's save took longer than all the limits' checks together."""
    return [field.get_db_prep_save(getattr(reservation, field.attname), connection) for field in fields]


def _ledger_names() -> tuple[str, str, str, str]:
    return _ledger_names_for(connection.vendor)


@functools.cache
def _ledger_names_for(vendor: str) -> tuple[str, str, str, str]:
    # Quoted once per database vendor: every admission and settlement names the ledgers.
    quote = connection.ops.quote_name
    return quote(SpendLedger._meta.db_table), quote("key"), quote("spent_units"), quote("held_units")


def _ledger_hold(money_limit: MoneyLimit, units: int, *, now: datetime) -> tuple[int, datetime]:
    """Hold `units` if spent + held + units fits the limit (a call of a provisioned deployment,
    whose tokens cost nothing, still needs something left). Returns spent + held after it."""
    table, key, spent, held = _ledger_names()
    for _attempt in range(2):
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {held} = {held} + %s WHERE {key} = %s "  # noqa: S608 (names from _meta)
                f"AND {spent} + {held} + %s <= %s RETURNING {spent} + {held}, refreshed_at",
                [units, money_limit.key, max(units, 1), money_limit.limit_units],
            )
            row = cursor.fetchone()
        if row is not None:
            return int(row[0]), _as_datetime(row[1])
        taken = (
            SpendLedger.objects.filter(key=money_limit.key).values_list("spent_units", "held_units").first()
        )
        if taken is not None:
            raise AdmissionRefused(
                money_limit.refusal(sum(taken), units), limit=money_limit.key.split(":", 1)[0]
            )
        # A ledger this process knew is gone (a database restored, a test's rolled back).
        _ledger_refresh(money_limit, now=now, older_than=None)
    raise AssertionError(f"The ledger {money_limit.key} could not be made.")


def _as_datetime(value: Any) -> datetime:
    # SQLite hands back the stored value as it is (naive UTC, as Django writes it).
    moment = parse_datetime(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


# A ledger row, once there, lasts the month: a process asks the database for it once.
_ledgers_known: set[str] = set()


def _ledger_ensure(money_limit: MoneyLimit, *, now: datetime) -> None:
    if money_limit.key in _ledgers_known:
        return
    if not SpendLedger.objects.filter(key=money_limit.key).exists():
        _ledger_refresh(money_limit, now=now, older_than=None)
    if len(_ledgers_known) > 10_000:
        _ledgers_known.clear()
    _ledgers_known.add(money_limit.key)


def _ledger_refresh(money_limit: MoneyLimit, *, now: datetime, older_than: datetime | None) -> None:
    """Read `spent` again from the cost model, with the row locked: a settlement waits for it,
    so its cost is either in the figure read here or added to it afterwards."""
    with transaction.atomic():
        ledger, created = SpendLedger.objects.get_or_create(
            key=money_limit.key, defaults={"refreshed_at": now}
        )
        if not created:
            ledger = SpendLedger.objects.select_for_update().get(key=money_limit.key)
            if older_than is not None and ledger.refreshed_at >= older_than:
                return  # another process has just read it
        ledger.spent_units = to_units(money_limit.spent())
        ledger.refreshed_at = now
        ledger.save(update_fields=["spent_units", "refreshed_at"])


def forget_known_ledgers() -> None:
    _ledgers_known.clear()


# Settling ------------------------------------------------------------------------------------


def _claim(reservation_id: UUID) -> Reserved | None:
    """Delete the reservation and return it, in one statement: of a settlement and the
    reconciliation of an expired reservation, only the one that deletes it settles it."""
    table = connection.ops.quote_name(Reservation._meta.db_table)
    columns = [
        "source",
        "department_id",
        "deployment_id",
        "user_id",
        "ledgers",
        "token_windows",
        "api_key_id",
        "principal_id",
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id = %s RETURNING {', '.join(columns)}",  # noqa: S608 (names from _meta)
            [Reservation._meta.pk.get_db_prep_value(reservation_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    source, department_id, deployment_id, user_id, ledgers, token_windows, api_key_id, principal_id = row
    return Reserved(
        reservation_id,
        source,
        department_id,
        deployment_id,
        user_id,
        json.loads(ledgers) if isinstance(ledgers, str) else ledgers,
        json.loads(token_windows) if isinstance(token_windows, str) else token_windows,
        api_key_id,
        principal_id,
    )


def admission_settle(
    *,
    reservation_id: UUID,
    usage: Usage,
    conversation: "Conversation | None" = None,
    at: datetime | None = None,
    facts: "tuple[Department, ModelDeployment, User | None] | None" = None,
    attempts: Sequence[Mapping[str, Any]] = (),
    reserved: Reserved | None = None,
) -> UsageRecord | None:
    """Record what the call used and give its reservation back, in one transaction (the
    caller's, when it has one). `facts`: the department, the deployment that served the call
    (after a failover, not the one reserved against) and the person, when the caller has them at
    hand, which saves reading them again. `attempts`: the deployments tried before it.
    `reserved`: the admission's own copy of its reservation (`Admission.reserved`), when the
    reservation was committed without waiting for the disk."""
    at = at or timezone.now()
    with transaction.atomic(savepoint=False):
        claimed = _claim(reservation_id)
        if claimed is None:
            record = UsageRecord.objects.select_for_update().filter(reservation_id=reservation_id).first()
            if record is not None or reserved is None:
                return _settle_late(record, usage=usage, conversation=conversation, at=at)
            # Neither the reservation nor a record of it: the database server lost the reservation
            # (and its holds) in a crash just after admitting the call, which went to Azure all
            # the same. It is recorded, and its cost added; there is nothing held to give back.
            claimed = dataclasses.replace(reserved, ledgers=[])
        if facts is None:
            facts = (
                Department.objects.get(pk=claimed.department_id),
                ModelDeployment.objects.get(pk=claimed.deployment_id),
                User.objects.filter(pk=claimed.user_id).first() if claimed.user_id else None,
            )
        department, deployment, user = facts
        record = usage_record_create(
            department=department,
            user=user,
            deployment=deployment,
            conversation=conversation,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            source=claimed.source,
            at=at,
            reservation_id=reservation_id,
            estimated=usage.estimated,
            api_key_id=claimed.api_key_id,
            principal_id=claimed.principal_id,
            attempts=[dict(attempt) for attempt in attempts],
        )
        _ledgers_settle(claimed, cost_units=to_units(record.cost), at=at, deployment_id=deployment.pk)
        _windows_settle(claimed, used=usage.tokens)
    return record


def admission_release(*, reservation_id: UUID) -> None:
    """Give a reservation back whole: the call never reached Azure, or Azure refused it."""
    with transaction.atomic(savepoint=False):
        claimed = _claim(reservation_id)
        if claimed is not None:
            _ledgers_settle(claimed, cost_units=0, at=timezone.now(), deployment_id=claimed.deployment_id)
            _windows_settle(claimed, used=0)


def _ledgers_settle(reservation: Reserved, *, cost_units: int, at: datetime, deployment_id: int) -> None:
    """Give back what the reservation held and add what the call cost, to the ledgers of the
    month the cost is counted in (which may be a later one than the reservation's) and of the
    deployment that served it."""
    _ledgers_move(
        held_back=dict(reservation.ledgers),
        spent=cost_units,
        department_id=reservation.department_id,
        deployment_id=deployment_id,
        at=at,
    )


def _ledgers_move(
    *, held_back: dict[str, int], spent: int, department_id: int, deployment_id: int, at: datetime
) -> None:
    day = timezone.localdate(at)
    changes: dict[str, list[int]] = {key: [units, 0] for key, units in held_back.items()}
    if spent:
        for key in (
            department_ledger_key(department_id, day),
            grant_ledger_key(department_id, deployment_id, day),
        ):
            changes.setdefault(key, [0, 0])[1] += spent
    batch = _ledger_batch.get()
    if batch is None:
        _ledgers_change(changes)
        return
    for key, (held, cost) in changes.items():
        total = batch.setdefault(key, [0, 0])
        total[0] += held
        total[1] += cost


_ledger_batch: ContextVar[dict[str, list[int]] | None] = ContextVar("ledger_batch", default=None)


@contextlib.contextmanager
def ledger_moves_batched() -> Iterator[None]:
    """Inside the caller's transaction: the ledger changes of the settlements made within are made
    when the block ends, in one statement for all of them. Put it outside `usage_rollups_batched`,
    so that the ledgers are the last rows the transaction changes: a new call's admission, which
    holds on the same rows, then waits only for the commit, not for the rollups' upserts too."""
    if _ledger_batch.get() is not None:  # inside another batch: that one makes them
        yield
        return
    batch: dict[str, list[int]] = {}
    token = _ledger_batch.set(batch)
    try:
        yield
    finally:
        _ledger_batch.reset(token)
    _ledgers_change(batch)


def _ledgers_change(changes: Mapping[str, Sequence[int]]) -> None:
    """Take back from each ledger what it held and add what was spent ({key: (held, spent)}), in
    one statement however many ledgers: a CASE per column says what each row gets."""
    keys = sorted(key for key, (held, cost) in changes.items() if held or cost)
    if not keys:
        return
    table, key, spent_column, held = _ledger_names()
    held_params: list[Any] = []
    spent_params: list[Any] = []
    for ledger_key in keys:
        held_params += [ledger_key, changes[ledger_key][0]]
        spent_params += [ledger_key, changes[ledger_key][1]]
    cases = " ".join(["WHEN %s THEN %s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {held} = {held} - (CASE {key} {cases} ELSE 0 END), "  # noqa: S608 (names from _meta)
            f"{spent_column} = {spent_column} + (CASE {key} {cases} ELSE 0 END) "
            f"WHERE {key} IN ({', '.join(['%s'] * len(keys))})",
            [*held_params, *spent_params, *keys],
        )


def _windows_settle(reservation: Reserved, *, used: int) -> None:
    # Once per reservation: on Redis, which the transaction does not cover, a settlement retried
    # after its transaction failed must not give back twice.
    windows.give_back(
        [(key, tokens - used) for key, tokens in reservation.token_windows], once=str(reservation.id)
    )


def _settle_late(
    record: UsageRecord | None, *, usage: Usage, conversation: "Conversation | None", at: datetime
) -> UsageRecord | None:
    """The reservation is gone: settled already (a second settlement does nothing), or expired
    and settled on an estimate, which the real usage now replaces."""
    if record is None or not record.estimated or usage.estimated:
        return record
    before = record.cost
    record = usage_record_correct(
        record=record,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
    )
    if conversation is not None and record.conversation_id is None:
        record.conversation = conversation
        record.save(update_fields=["conversation"])
    _ledgers_move(
        held_back={},
        spent=to_units(record.cost - before),
        department_id=record.department_id,
        deployment_id=record.deployment_id,
        at=at,
    )
    return record


# Reconciling ---------------------------------------------------------------------------------


def reservations_reconcile(*, now: datetime | None = None, batch: int = 500) -> int:
    """Settle the reservations whose call outlived them (its process died) on an estimate: the
    prompt, which Azure counts once the call is sent, and no answer. Returns how many."""
    now = now or timezone.now()
    expired = list(
        Reservation.objects.filter(expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", "prompt_tokens")[:batch]
    )
    for reservation_id, prompt_tokens in expired:
        admission_settle(
            reservation_id=reservation_id,
            usage=Usage(input_tokens=prompt_tokens, output_tokens=0, estimated=True),
            at=now,
        )
    if expired:
        logger.warning("Settled %d expired reservations on estimates", len(expired))
    windows.windows_forget_ended(now=now)
    # A ledger is read again every minute while its month is in use: one untouched for two
    # months belongs to a month that has ended.
    SpendLedger.objects.filter(refreshed_at__lt=now - timedelta(days=62)).delete()
    return len(expired)
