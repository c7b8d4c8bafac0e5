"""Reading the audit trail: filters, newest first, paged by cursor, and the export's batches.

A trail grows to millions of events, so nothing here counts them or skips with OFFSET: a page
starts from a position, (created_at, id), that a cursor carries, and every filter goes with an
index of the trail (department, actor or verb with created_at and id; the words of each event).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core import signing
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.models import AuditEvent
from org.models import Department, User

PAGE_SIZE = 50
EXPORT_BATCH = 1000

# The words of an event, as the GIN index of audit migration 0004 holds them; the search must
# repeat this expression exactly for PostgreSQL to use that index.
SEARCH_DOCUMENT = (
    "to_tsvector('simple', "
    "verb || ' ' || actor_label || ' ' || object_repr || ' ' || note || ' ' || request_id)"
)
SEARCH_FIELDS = ("verb", "actor_label", "object_repr", "note", "request_id")

_CURSOR_SALT = "audit-trail.cursor"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
OLDER, NEWER = "older", "newer"

# Words for areas whose name does not read well capitalised.
_AREA_NAMES = {"api_key": "API key", "auth": "Sign-in", "service_principal": "Service principal"}


def verb_label(verb: str) -> str:
    """`department.budget_changed` -> "Department: budget changed"."""
    area, _, action = verb.rpartition(".")
    action = action.replace("_", " ")
    if not area:
        return action.capitalize()
    area_name = _AREA_NAMES.get(area) or area.replace("_", " ").replace(".", " ").capitalize()
    return f"{area_name}: {action}"


@dataclass(frozen=True)
class AuditFilters:
    """What the audit page and its exports narrow the trail to; empty means everything.

    `since` and `until` are whole days in Switchyard's time zone (the page's date fields);
    `from_time` and `to_time` are moments, both included (the API's)."""

    actor: str = ""
    verb: str = ""
    department: Department | None = None
    target: str = ""
    since: date | None = None
    until: date | None = None
    q: str = ""
    from_time: datetime | None = None
    to_time: datetime | None = None

    def as_record(self) -> dict[str, str]:
        """The filters as the export's audit event records them (only those set)."""
        values = {
            "actor": self.actor,
            "verb": self.verb,
            "department": self.department.slug if self.department else "",
            "target": self.target,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "q": self.q,
            "from_time": self.from_time.astimezone(UTC).isoformat() if self.from_time else "",
            "to_time": self.to_time.astimezone(UTC).isoformat() if self.to_time else "",
        }
        return {name: value for name, value in values.items() if value}


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The events that match every filter (unordered)."""
    events = AuditEvent.objects.select_related("department")
    if filters.department is not None:
        events = events.filter(department=filters.department)
    if filters.verb:
        events = events.filter(verb=filters.verb)
    if filters.actor:
        events = events.filter(_actor_matches(filters.actor))
    if filters.target:
        events = events.filter(Q(object_type=filters.target) | Q(object_repr__icontains=filters.target))
    if filters.since:
        events = events.filter(created_at__gte=_local_midnight(filters.since))
    if filters.until:
        events = events.filter(created_at__lt=_local_midnight(filters.until + timedelta(days=1)))
    if filters.from_time:
        events = events.filter(created_at__gte=filters.from_time)
    if filters.to_time:
        events = events.filter(created_at__lte=filters.to_time)
    if filters.q:
        events = events.filter(_words_match(filters.q))
    return events


def _actor_matches(text: str) -> Q:
    """A person by their email or name as it is now (through the actor index), or whoever acted
    by the name recorded with the event (a service principal, a person since renamed)."""
    people = User.objects.filter(
        Q(email__icontains=text) | Q(first_name__icontains=text) | Q(last_name__icontains=text)
    ).values_list("pk", flat=True)[:500]
    return Q(actor__in=list(people)) | Q(actor_label__icontains=text)


def _words_match(text: str) -> Q | RawSQL:
    if connection.vendor == "postgresql":
        # The SQL is a constant; the words go in as a query parameter.
        return RawSQL(  # noqa: S611
            f"{SEARCH_DOCUMENT} @@ plainto_tsquery('simple', %s)",
            [text],
            output_field=BooleanField(),
        )
    found = Q()
    for name in SEARCH_FIELDS:
        found |= Q(**{f"{name}__icontains": text})
    return found


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# Cursors ------------------------------------------------------------------------------------------


class CursorInvalid(Exception):
    """A cursor this page did not make (edited by hand, or signed with another secret)."""


@dataclass(frozen=True)
class Cursor:
    """A position in the trail and which way to read from it."""

    direction: str
    created_at: datetime
    pk: int

    def encode(self) -> str:
        return signing.Signer(salt=_CURSOR_SALT).sign(
            f"{self.direction}.{(self.created_at - _EPOCH) // _MICROSECOND}.{self.pk}"
        )

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        try:
            plain = signing.Signer(salt=_CURSOR_SALT).unsign(value)
            direction, micros, pk = plain.split(".")
            cursor = cls(direction, _EPOCH + int(micros) * _MICROSECOND, int(pk))
        except (signing.BadSignature, ValueError, OverflowError, OSError):
            raise CursorInvalid("This page link is broken: start again from the newest events.") from None
        if direction not in (OLDER, NEWER):
            raise CursorInvalid("This page link is broken: start again from the newest events.")
        return cursor


@dataclass
class AuditPage:
    events: list[AuditEvent]
    older: str = ""  # the cursor of the next page of older events, if there is one
    newer: str = ""


def audit_page(filters: AuditFilters, cursor: Cursor | None = None, *, size: int = PAGE_SIZE) -> AuditPage:
    """One page of matching events, newest first, from `cursor` on (the newest without one).

    One more event than the page holds is read to tell whether another page follows."""
    events = audit_events(filters)
    if cursor is not None and cursor.direction == NEWER:
        rows = list(_after(events, cursor).order_by("created_at", "id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return AuditPage(
            rows,
            older=_cursor(OLDER, rows[-1]) if rows else "",
            newer=_cursor(NEWER, rows[0]) if rows and more_newer else "",
        )
    if cursor is not None:
        events = _before(events, cursor)
    rows = list(events.order_by("-created_at", "-id")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return AuditPage(
        rows,
        older=_cursor(OLDER, rows[-1]) if rows and more_older else "",
        newer=_cursor(NEWER, rows[0]) if rows and cursor is not None else "",
    )


def _before(events: QuerySet[AuditEvent], cursor: Cursor) -> QuerySet[AuditEvent]:
    # The first condition repeats the second's bound so the index scan starts at the cursor
    # instead of filtering its way down from the newest event.
    return events.filter(created_at__lte=cursor.created_at).filter(
        Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.pk)
    )


def _after(events: QuerySet[AuditEvent], cursor: Cursor) -> QuerySet[AuditEvent]:
    return events.filter(created_at__gte=cursor.created_at).filter(
        Q(created_at__gt=cursor.created_at) | Q(created_at=cursor.created_at, id__gt=cursor.pk)
    )


def _cursor(direction: str, event: AuditEvent) -> str:
    return Cursor(direction, event.created_at, event.pk).encode()


def audit_batches(filters: AuditFilters, *, size: int = EXPORT_BATCH) -> Iterator[list[AuditEvent]]:
    """Every matching event, newest first, a batch at a time (for exports: never all in memory)."""
    cursor = None
    while True:
        page = audit_page(filters, cursor, size=size)
        if page.events:
            yield page.events
        if not page.older:
            return
        cursor = Cursor.decode(page.older)


def known_verbs() -> list[str]:
    """The verbs the trail holds, A to Z: one index lookup per verb rather than a scan of every
    event for DISTINCT (the trail holds millions of events but a few dozen verbs)."""
    verbs: list[str] = []
    ordered = AuditEvent.objects.order_by("verb").values_list("verb", flat=True)
    verb = ordered.first()
    while verb is not None and len(verbs) < 500:
        verbs.append(verb)
        verb = ordered.filter(verb__gt=verb).first()
    return verbs


# What the event page shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedValue:
    key: str
    before: str
    after: str
    in_before: bool
    in_after: bool

    @property
    def changed(self) -> bool:
        return (self.in_before, self.before) != (self.in_after, self.after)


def before_and_after(event: AuditEvent) -> list[ChangedValue]:
    """Every key of the event's before or after, side by side, values as readable JSON."""
    before, after = _as_mapping(event.before), _as_mapping(event.after)
    return [
        ChangedValue(
            key=key,
            before=_shown(before[key]) if key in before else "",
            after=_shown(after[key]) if key in after else "",
            in_before=key in before,
            in_after=key in after,
        )
        for key in sorted(before.keys() | after.keys())
    ]


def _as_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
