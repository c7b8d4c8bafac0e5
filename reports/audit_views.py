"""The audit page (admins and security approvers): the trail filtered, newest first, paged by
cursor; one event with its before and after side by side; CSV and JSON Lines exports.

Reading the page is not audited (every look would flood the trail); an export is."""

import csv
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from audit.models import AuditEvent
from audit.services import audit_record
from base.tables import query_with
from base.text import csv_text
from org.access import require_audit_reader
from org.models import Department, User
from reports.selectors.audit import (
    AuditFilters,
    Cursor,
    CursorInvalid,
    audit_batches,
    audit_page,
    before_and_after,
    known_verbs,
    verb_label,
)

_VERB = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")


class AuditFilterForm(forms.Form):
    """The page's filters as the address carries them; a value the page cannot use is refused
    with a message, never guessed at."""

    actor = forms.CharField(required=False, max_length=200, strip=True)
    verb = forms.CharField(required=False, max_length=60, widget=forms.Select)
    department = forms.ModelChoiceField(
        queryset=Department.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="All departments",
        error_messages={"invalid_choice": "There is no such department."},
    )
    target = forms.CharField(required=False, max_length=200, strip=True)
    q = forms.CharField(required=False, max_length=200, strip=True, label="Search")
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        # `from` and `to` are the contract's parameter names, and Python keywords.
        self.fields["from"] = forms.DateField(
            required=False,
            label="From",
            input_formats=["%Y-%m-%d"],
            widget=forms.DateInput(attrs={"type": "date"}),
        )
        self.fields["to"] = forms.DateField(
            required=False,
            label="To",
            input_formats=["%Y-%m-%d"],
            widget=forms.DateInput(attrs={"type": "date"}),
        )
        self.order_fields(["actor", "verb", "department", "target", "from", "to", "q"])
        verbs = known_verbs()
        chosen = self.data.get("verb") or ""
        if chosen and chosen not in verbs and _VERB.fullmatch(chosen):
            verbs.append(chosen)  # a verb the trail no longer holds still shows as chosen
        self.fields["verb"].widget.choices = [("", "Any action"), *((v, verb_label(v)) for v in verbs)]

    def clean_verb(self) -> str:
        verb: str = self.cleaned_data["verb"]
        if verb and not _VERB.fullmatch(verb):
            raise forms.ValidationError("An action is written like request.approved.")
        return verb

    def clean_cursor(self) -> Cursor | None:
        value: str = self.cleaned_data["cursor"]
        if not value:
            return None
        try:
            return Cursor.decode(value)
        except CursorInvalid as invalid:
            raise forms.ValidationError(str(invalid)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("from"), cleaned.get("to")
        if since and until and since > until:
            self.add_error("to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> AuditFilters:
        wanted = self.cleaned_data
        return AuditFilters(
            actor=wanted["actor"],
            verb=wanted["verb"],
            department=wanted["department"],
            target=wanted["target"],
            since=wanted["from"],
            until=wanted["to"],
            q=wanted["q"],
        )

    @property
    def is_filtered(self) -> bool:
        return bool(self.is_bound and self.is_valid() and self.filters().as_record())

    def messages(self) -> list[str]:
        return [
            f"{self.fields[name].label or name.capitalize()}: {error}"
            for name, errors in self.errors.items()
            for error in errors
        ]


def _user(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    require_audit_reader(user)
    return user


@require_safe
def events(request: HttpRequest) -> HttpResponse:
    _user(request)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/events.html", {"form": form, "page": None}, status=400)
    page = audit_page(form.filters(), form.cleaned_data["cursor"])
    context = {
        "form": form,
        "page": page,
        "rows": [(event, verb_label(event.verb)) for event in page.events],
        "older_url": query_with(request.GET, cursor=page.older) if page.older else "",
        "newer_url": query_with(request.GET, cursor=page.newer) if page.newer else "",
        "newest_url": query_with(request.GET, cursor=None) if form.cleaned_data["cursor"] else "",
        "export_query": query_with(request.GET, cursor=None),
    }
    return render(request, "audit/events.html", context)


@require_safe
def event(request: HttpRequest, sequence: int) -> HttpResponse:
    _user(request)
    found = get_object_or_404(AuditEvent.objects.select_related("department", "actor"), sequence=sequence)
    values = before_and_after(found)
    return render(
        request,
        "audit/event.html",
        {
            "event": found,
            "verb_label": verb_label(found.verb),
            "values": values,
            "changed": sum(value.changed for value in values),
        },
    )


# Exports ------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "sequence",
    "created_at",
    "actor_kind",
    "actor",
    "verb",
    "object_type",
    "object_id",
    "target",
    "department",
    "before",
    "after",
    "note",
    "request_id",
    "source_ip",
    "prev_hash",
    "hash",
]


def _record(event: AuditEvent) -> dict[str, Any]:
    """An event as the exports write it: every field, time in UTC (ISO 8601)."""
    return {
        "sequence": event.sequence,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "actor_kind": event.actor_kind,
        "actor": event.actor_label,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "target": event.object_repr,
        "department": event.department.slug if event.department else "",
        "before": event.before,
        "after": event.after,
        "note": event.note,
        "request_id": event.request_id,
        "source_ip": event.source_ip or "",
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Line:
    """What csv.writer writes to: it hands each line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def _csv_chunks(filters: AuditFilters) -> Iterator[str]:
    """The CSV file, a batch of events at a time."""
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    for batch in audit_batches(filters):
        yield "".join(
            writer.writerow([_csv_cell(record[name]) for name in CSV_COLUMNS])
            for record in map(_record, batch)
        )


def _csv_cell(value: Any) -> Any:
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return value
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return csv_text(str(value))


def _jsonl_chunks(filters: AuditFilters) -> Iterator[str]:
    """The JSON Lines file, a batch of events at a time."""
    for batch in audit_batches(filters):
        yield "".join(json.dumps(_record(event), ensure_ascii=False) + "\n" for event in batch)


async def _streamed(chunks: Iterator[str]) -> AsyncIterator[str]:
    """The chunks, each read from the database in a worker thread: the server sends one batch
    while the next is read, and never holds the whole trail."""
    read_next = sync_to_async(lambda: next(chunks, ""))
    while chunk := await read_next():
        yield chunk


def _export(request: HttpRequest, *, kind: str) -> HttpResponseBase:
    user = _user(request)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("\n".join(form.messages()), content_type="text/plain; charset=utf-8")
    filters = form.filters()
    audit_record(
        actor=user, verb="audit.exported", target=user, after={"format": kind, "filters": filters.as_record()}
    )
    chunks = _csv_chunks(filters) if kind == "csv" else _jsonl_chunks(filters)
    content_type = "text/csv; charset=utf-8" if kind == "csv" else "application/jsonl; charset=utf-8"
    response = StreamingHttpResponse(_streamed(chunks), content_type=content_type)
    filename = f"switchyard-audit-{timezone.localdate():%Y-%m-%d}.{kind}"
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    return response


@require_safe
def export_csv(request: HttpRequest) -> HttpResponseBase:
    return _export(request, kind="csv")


@require_safe
def export_jsonl(request: HttpRequest) -> HttpResponseBase:
    return _export(request, kind="jsonl")
