"""The one way to write the audit trail."""

import functools
import ipaddress
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Field
from django.utils import timezone

from audit.chain import canonical_json, event_hash
from audit.context import current_origin
from audit.models import AuditChainHead, AuditEvent

if TYPE_CHECKING:  # a person, whatever the user model: the audit trail sits below the organisation
    from org.models import Department, User


def audit_record(
    *,
    actor: "User | None",
    verb: str,
    target: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
    department: "Department | None" = None,
    actor_kind: str | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one event; call it inside the transaction of the change it records, so the change
    and its trace commit (or roll back) together.

    `department`: the department the change concerns. `actor_kind` and `actor_label`: who acted
    when it was not a person signed in to Switchyard (a service principal, by name); by default a
    person (`actor`) or Switchyard itself. The request id and source IP come from the request
    being served (`audit.context`)."""
    origin = current_origin()
    if actor_kind is None:
        actor_kind = AuditEvent.ActorKind.PERSON if actor is not None else AuditEvent.ActorKind.SYSTEM
    if not actor_label and actor is not None:
        actor_label = str(getattr(actor, "email", "") or actor)
    event = AuditEvent(
        actor=actor,
        actor_kind=actor_kind,
        actor_label=actor_label[:200],
        verb=verb,
        object_type=target._meta.label_lower,
        # A target not saved (the account a failed sign-in named, which does not exist) has no id.
        object_id=str(target.pk) if target.pk is not None else "",
        object_repr=str(target)[:200],
        department_id=department.pk if department is not None else None,
        before=canonical_json(before),
        after=canonical_json(after),
        note=note,
        request_id=origin.request_id,
        source_ip=_normalised_ip(origin.source_ip),
    )
    # No savepoint inside the caller's transaction: an event that fails to be written fails the
    # change it records, which is what the trail wants, and two round trips fewer per event.
    with transaction.atomic(savepoint=False):
        sequence, previous_hash = _locked_head()
        event.sequence = sequence + 1
        event.prev_hash = previous_hash
        event.created_at = timezone.now()
        event.hash = event_hash(event)
        _insert_and_move_head(event)
    return event


@functools.cache
def _insert_sql(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """The event's INSERT, written once from the model (every column but the id), and on
    PostgreSQL the head's move in the same statement."""
    quote = connection.ops.quote_name
    fields = tuple(field for field in AuditEvent._meta.concrete_fields if not field.primary_key)
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    insert = f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({values}) RETURNING id"  # noqa: S608
    if vendor == "postgresql":
        head = quote(AuditChainHead._meta.db_table)
        insert = f"WITH moved AS (UPDATE {head} SET sequence = %s, hash = %s WHERE id = 1) {insert}"  # noqa: S608
    return insert, fields


def _insert_and_move_head(event: AuditEvent) -> None:
    """Insert the event and move the head to it: one statement on PostgreSQL (each audited change
    pays a round trip less), two on SQLite, whose statements cost no round trip."""
    sql, fields = _insert_sql(connection.vendor)
    params = [field.get_db_prep_save(field.pre_save(event, add=True), connection) for field in fields]
    if connection.vendor == "postgresql":
        params = [event.sequence, event.hash, *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias
    if connection.vendor != "postgresql":
        _move_head(event.sequence or 0, event.hash)


# The chain's head is read and moved with hand-written SQL: every audited change pays for it,
# and building the two ORM queries cost as much as running them (benchmarks/audit.py). The
# head's shape is pinned by tests/audit/test_verify.py.
def _locked_head() -> tuple[int, str]:
    """The chain's head (last sequence and hash), locked until the caller's transaction ends:
    the events of concurrent changes chain one after the other, in the order they take it."""
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT sequence, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608
        row = cursor.fetchone()
        if row is not None:
            return row[0], row[1]
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(pk=1)
        except IntegrityError:
            pass  # made meanwhile by another writer
        cursor.execute(f"SELECT sequence, hash FROM {table} WHERE id = 1{lock}")  # noqa: S608
        row = cursor.fetchone()
        return row[0], row[1]


def _move_head(sequence: int, hash: str) -> None:
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET sequence = %s, hash = %s WHERE id = 1", [sequence, hash])  # noqa: S608


def _normalised_ip(value: str | None) -> str | None:
    """The address as the database gives it back (hashed as stored), or None if it is not one."""
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return None


def audit_trail(target: models.Model) -> models.QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        object_type=target._meta.label_lower, object_id=str(target.pk)
    ).select_related("actor")
