"""The audit trail, for those the audit page is for (platform admins and security approvers):
the page's filters, read through the page's selector (`reports.selectors.audit`).

Events are only ever appended, in the order of their ids, so the newest first by id is a stable
order that keyset pagination walks without skipping or repeating an event, however many are
written meanwhile. Reading the trail is not itself audited, as on the page."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema

from api.pagination import Page, PageParams, page_of
from api.params import Id, user_of
from api.problems import FieldErrors, refused
from api.schemas import Moment
from audit.models import AuditEvent
from org.access import require_audit_reader
from org.models import Department
from reports.selectors.audit import AuditFilters, audit_events, verb_label

router = Router(tags=["audit"])

# Text that reaches the database: PostgreSQL refuses a NUL in a string with an error.
NO_NUL = r"^[^\x00]*$"
ORDERS = {"-id": "-pk", "id": "pk"}


class AuditActorOut(Schema):
    kind: Literal["person", "service_principal", "system"] = Field(
        ..., description="A person, a service principal, or Switchyard itself."
    )
    label: str = Field(..., description="Who acted, as named when the event was written.")
    email: str | None = Field(None, description="The person's email as it is now; null for the others.")


class AuditTargetOut(Schema):
    type: str = Field(..., description="What kind of thing: `approvals.deploymentrequest`, `gateway.apikey`.")
    id: str = Field(..., description="Its id; empty for a thing never saved (a failed sign-in's account).")
    label: str = Field(..., description="It, as named when the event was written.")


class AuditEventOut(Schema):
    id: int
    sequence: int | None = Field(..., description="Its place in the hash chain: 1, 2, 3…")
    time: datetime
    actor: AuditActorOut
    verb: str = Field(..., examples=["request.approved"])
    verb_label: str = Field(..., examples=["Request: approved"])
    target: AuditTargetOut
    department: str | None = Field(..., description="The slug of the department it concerns, if one.")
    before: Any = Field(..., description="What changed, before (JSON; null if nothing was there).")
    after: Any = Field(..., description="What changed, after.")
    note: str
    request_id: str = Field(..., description="The id of the request that made the change, if one did.")
    ip: str | None = Field(..., description="The source IP address of that request.")
    hash: str
    prev_hash: str


class AuditEventsQuery(PageParams):
    verb: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
        max_length=60,
        description="What was done, as `request.approved`.",
    )
    actor: str | None = Field(
        None,
        pattern=NO_NUL,
        max_length=200,
        description="Part of the email or name of a person who acted, or of the name recorded with the "
        "event (a service principal).",
    )
    department: str | None = Field(
        None, pattern=r"^[-a-zA-Z0-9_]+$", max_length=60, description="The slug of the department concerned."
    )
    target: str | None = Field(
        None,
        pattern=NO_NUL,
        max_length=200,
        description="A kind of thing (`gateway.apikey`) or part of a thing's name.",
    )
    q: str | None = Field(
        None, pattern=NO_NUL, max_length=200, description="Words anywhere in the event (verb, names, note)."
    )
    since: Moment | None = Field(
        None,
        alias="from",
        description="Events at or after this moment (ISO 8601; UTC if it names no offset).",
    )
    until: Moment | None = Field(
        None, alias="to", description="Events at or before this moment (ISO 8601; UTC if it names no offset)."
    )
    sort: Literal["-id", "id"] = Field("-id", description="`-id`: the newest first; `id`: the oldest first.")


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.pk,
        sequence=event.sequence,
        time=event.created_at.astimezone(UTC),
        actor=AuditActorOut(
            kind=event.actor_kind,  # type: ignore[arg-type]
            label=event.actor_label,
            email=event.actor.email if event.actor is not None else None,
        ),
        verb=event.verb,
        verb_label=verb_label(event.verb),
        target=AuditTargetOut(type=event.object_type, id=event.object_id, label=event.object_repr),
        department=event.department.slug if event.department is not None else None,
        before=event.before,
        after=event.after,
        note=event.note,
        request_id=event.request_id,
        ip=event.source_ip,
        hash=event.hash,
        prev_hash=event.prev_hash,
    )


def _moment(value: datetime | None, field: str, errors: FieldErrors) -> datetime | None:
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        errors[field] = ["A moment between the years 1 and 9999, in UTC."]
        return None


def _filters(query: AuditEventsQuery) -> AuditFilters:
    """The query as the page's filters; what the page would refuse is a 400 naming the field."""
    errors: FieldErrors = {}
    department = None
    if query.department:
        department = Department.objects.filter(slug=query.department).first()
        if department is None:
            errors["department"] = ["There is no such department."]
    since = _moment(query.since, "from", errors)
    until = _moment(query.until, "to", errors)
    if since and until and since > until:
        errors["to"] = ["The end is before the start."]
    if errors:
        raise refused(f"The filters cannot be used: {', '.join(sorted(errors))}. `errors` says why.", errors)
    return AuditFilters(
        actor=query.actor or "",
        verb=query.verb or "",
        department=department,
        target=query.target or "",
        q=query.q or "",
        from_time=since,
        to_time=until,
    )


@router.get("/audit-events", response=Page[AuditEventOut], summary="The audit trail")
def list_audit_events(request: HttpRequest, query: Query[AuditEventsQuery]) -> dict[str, object]:
    """Who did what to which thing, for which department, with what it looked like before and
    after, from which request: the audit page's events, for platform admins and security
    approvers. Filters combine (all must match); the newest first unless `sort=id`."""
    require_audit_reader(user_of(request))
    filters = _filters(query)
    # The cursor names its filters (hashed, to stay short), so it cannot carry over to others.
    named = hashlib.sha256(json.dumps(filters.as_record(), sort_keys=True).encode()).hexdigest()[:24]
    chunk = page_of(
        audit_events(filters).select_related("actor"),
        order=ORDERS[query.sort],
        list_name=f"audit-events:{named}",
        cursor=query.cursor,
        limit=query.limit,
    )
    return {"items": [event_out(event) for event in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/audit-events/{event_id}", response=AuditEventOut, summary="One audit event")
def get_audit_event(request: HttpRequest, event_id: Id) -> AuditEventOut:
    """One event by its id, for platform admins and security approvers."""
    require_audit_reader(user_of(request))
    event = AuditEvent.objects.select_related("department", "actor").filter(pk=event_id).first()
    if event is None:
        raise Http404("No audit event with that id.")
    return event_out(event)
