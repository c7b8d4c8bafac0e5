"""The audit page, its event page and its exports: who may open them, what each filter keeps,
paging by cursor, search, hostile values, and the exports' content and their own audit event."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from org.models import Department, PlatformGroup, User
from tests.factories import make_department, make_user

# The test client reads a download synchronously; the server streams it asynchronously.
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")

EVENTS = "/audit/"
EXPORTS = ["/audit/export.csv", "/audit/export.jsonl"]


@pytest.fixture
def security_approver(db) -> User:
    return make_user(email="security@example.com", platform_group=PlatformGroup.SECURITY)


@pytest.fixture
def hr(db) -> Department:
    return make_department(name="HR", cost_center="CC-4100")


def record_at(monkeypatch, moment: datetime, **kwargs) -> AuditEvent:
    """An event written through the audit service as if at `moment`."""
    monkeypatch.setattr(timezone, "now", lambda: moment)
    event = audit_record(**kwargs)
    monkeypatch.undo()
    return event


def at(day: str, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(f"{day}T{hour:02d}:00:00"))


@pytest.fixture
def trail(monkeypatch, marketing, hr, marketing_lead, platform_admin) -> dict[str, AuditEvent]:
    """Four events that differ in every filtered field."""
    return {
        "budget": record_at(
            monkeypatch,
            at("2026-10-05"),
            actor=platform_admin,
            verb="department.budget_changed",
            target=marketing,
            department=marketing,
            before={"monthly_budget": "5000.00", "name": "Marketing"},
            after={"monthly_budget": "7500.00", "name": "Marketing"},
            note="Campaign season",
        ),
        "member": record_at(
            monkeypatch,
            at("2026-11-02"),
            actor=marketing_lead,
            verb="membership.added",
            target=marketing_lead,
            department=marketing,
            after={"role": "member"},
        ),
        "hr": record_at(
            monkeypatch,
            at("2026-11-20"),
            actor=None,
            verb="department.budget_changed",
            target=hr,
            department=hr,
            before={"monthly_budget": "2000.00"},
            after={"monthly_budget": "2500.00"},
        ),
        "principal": record_at(
            monkeypatch,
            at("2026-11-21"),
            actor=None,
            actor_kind=AuditEvent.ActorKind.SERVICE_PRINCIPAL,
            actor_label="nightly-sync",
            verb="auth.signed_in",
            target=hr,
            note="Token for the reporting job",
        ),
    }


def body(response) -> str:
    """A download as the browser saves it (the view streams it asynchronously)."""
    return b"".join(response).decode()


def sequences(response) -> list[int]:
    """The events listed, leaving out the test's own sign-ins (signing in is audited too)."""
    return [
        event.sequence
        for event in response.context["page"].events
        if not (event.verb == "auth.signed_in" and event.actor_kind == AuditEvent.ActorKind.PERSON)
    ]


# Who may open it ----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, trail):
    for url in [EVENTS, f"/audit/{trail['budget'].sequence}/", *EXPORTS]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("who", ["marketing_lead", "marketing_member", "finance_approver"])
def test_leads_members_and_finance_approvers_may_not(request, client_for, trail, who):
    client = client_for(request.getfixturevalue(who))
    for url in [EVENTS, f"/audit/{trail['budget'].sequence}/", *EXPORTS]:
        assert client.get(url).status_code == 403
    assert "Audit trail" not in client.get("/").content.decode()
    assert not AuditEvent.objects.filter(verb="audit.exported").exists()


@pytest.mark.parametrize("who", ["security_approver", "platform_admin"])
def test_security_approvers_and_admins_read_it(request, client_for, trail, who):
    client = client_for(request.getfixturevalue(who))
    home = client.get("/").content.decode()
    assert 'href="/audit/"' in home
    page = client.get(EVENTS)
    assert page.status_code == 200
    assert sequences(page) == [trail[name].sequence for name in ["principal", "hr", "member", "budget"]]
    assert client.get(f"/audit/{trail['budget'].sequence}/").status_code == 200
    for url in EXPORTS:
        response = client.get(url)
        assert response.status_code == 200
        assert body(response)


def test_the_security_approver_reads_their_role_in_the_header(client_for, security_approver):
    assert "Security approver" in client_for(security_approver).get(EVENTS).content.decode()


def test_an_unknown_event_is_a_404(client_for, platform_admin, trail):
    assert client_for(platform_admin).get("/audit/999999/").status_code == 404


# Filters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "platform@"}, ["budget"]),
        ({"actor": "Test"}, ["member", "budget"]),  # the people's first name, as it is now
        ({"actor": "nightly"}, ["principal"]),
        ({"verb": "department.budget_changed"}, ["hr", "budget"]),
        ({"department": "marketing"}, ["member", "budget"]),
        ({"target": "org.user"}, ["member"]),
        ({"target": "hr"}, ["principal", "hr"]),
        ({"from": "2026-11-02", "to": "2026-11-20"}, ["hr", "member"]),
        ({"from": "2026-11-21"}, ["principal"]),
        ({"to": "2026-10-05"}, ["budget"]),
        ({"department": "hr", "verb": "department.budget_changed"}, ["hr"]),
        ({"q": "campaign"}, ["budget"]),
        ({"q": "reporting"}, ["principal"]),
        ({"q": "membership.added"}, ["member"]),
        ({"q": "nothing-like-this"}, []),
    ],
)
def test_each_filter_narrows_to_exactly_its_events(client_for, platform_admin, trail, query, expected):
    response = client_for(platform_admin).get(EVENTS, query)
    assert response.status_code == 200
    assert sequences(response) == [trail[name].sequence for name in expected]


def test_the_action_filter_lists_the_actions_the_trail_holds(client_for, platform_admin, trail):
    page = client_for(platform_admin).get(EVENTS).content.decode()
    assert '<option value="department.budget_changed">Department: budget changed</option>' in page
    assert '<option value="auth.signed_in">Sign-in: signed in</option>' in page


def test_nothing_matching_says_so(client_for, platform_admin, trail):
    page = client_for(platform_admin).get(EVENTS, {"q": "nothing-like-this"}).content.decode()
    assert "No events match these filters" in page


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index exists on PostgreSQL only")
def test_search_uses_the_words_index_on_postgresql(platform_admin, trail):
    from reports.selectors.audit import AuditFilters, audit_events

    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = audit_events(AuditFilters(q="campaign")).order_by("-created_at", "-id").explain()
        cursor.execute("RESET enable_seqscan")
    assert "audit_search" in plan


# Paging -------------------------------------------------------------------------------------------


def test_paging_by_cursor_shows_every_event_once_in_order(monkeypatch, client_for, platform_admin, marketing):
    start = at("2026-11-01")
    written = [
        record_at(
            monkeypatch,
            # Pairs share a moment: the cursor must tell them apart by id.
            start + timedelta(minutes=index // 2),
            actor=platform_admin,
            verb="department.renamed",
            target=marketing,
            department=marketing,
        ).sequence
        for index in range(123)
    ]
    client = client_for(platform_admin)
    seen, pages, response = [], 0, client.get(EVENTS, {"department": "marketing"})
    while True:
        pages += 1
        seen += sequences(response)
        older = response.context["older_url"]
        if not older:
            break
        response = client.get(EVENTS + older)
    assert pages == 3
    assert seen == written[::-1]

    # Back to newer from the last page: the page before it, exactly.
    newer = client.get(EVENTS + response.context["newer_url"])
    assert sequences(newer) == written[::-1][50:100]
    assert newer.context["older_url"]
    assert newer.context["newer_url"]


# Hostile values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-13-01"}, "Enter a valid date"),
        ({"from": "yesterday"}, "Enter a valid date"),
        ({"from": "2026-11-20", "to": "2026-11-01"}, "The end date is before the start date"),
        ({"department": "no-such-place"}, "There is no such department"),
        ({"actor": "x" * 5000}, "at most 200 characters"),
        ({"q": "y" * 201}, "at most 200 characters"),
        ({"verb": "<script>alert(1)</script>"}, "An action is written like request.approved"),
        ({"cursor": "older.1.1:forged"}, "This page link is broken"),
        ({"cursor": "\x00"}, "Null characters are not allowed"),
        ({"target": "\x00"}, "Null characters are not allowed"),
    ],
)
def test_hostile_values_are_refused_with_a_message(client_for, platform_admin, trail, query, message):
    client = client_for(platform_admin)
    page = client.get(EVENTS, query)
    assert page.status_code == 400
    assert message in page.content.decode()
    assert "<script>alert(1)</script>" not in page.content.decode()
    for url in EXPORTS:
        export = client.get(url, query)
        assert export.status_code == 400
        assert message in export.content.decode()
    assert not AuditEvent.objects.filter(verb="audit.exported").exists()


# Event page ---------------------------------------------------------------------------------------


def test_the_event_page_shows_before_and_after_side_by_side(client_for, security_approver, trail):
    budget = trail["budget"]
    page = client_for(security_approver).get(f"/audit/{budget.sequence}/").content.decode()
    assert budget.hash in page
    assert budget.prev_hash in page
    assert "Campaign season" in page
    assert "1 of 2 values changed" in page
    changed_row = page.split("<code>monthly_budget</code>")[1].split("</tr>")[0]
    assert "Changed" in changed_row
    assert "5000.00" in changed_row
    assert "7500.00" in changed_row
    unchanged_row = page.split("<code>name</code>")[1].split("</tr>")[0]
    assert "Changed" not in unchanged_row


def test_nested_values_are_pretty_printed_and_missing_ones_said(
    monkeypatch, client_for, platform_admin, marketing
):
    event = record_at(
        monkeypatch,
        at("2026-11-03"),
        actor=platform_admin,
        verb="policy.changed",
        target=marketing,
        before={"limits": {"tpm": 10}},
        after={"limits": {"tpm": 20}, "regions": ["swedencentral"]},
    )
    page = client_for(platform_admin).get(f"/audit/{event.sequence}/").content.decode()
    assert "{\n  &quot;tpm&quot;: 20\n}" in page
    regions = page.split("<code>regions</code>")[1].split("</tr>")[0]
    assert "Not set" in regions
    assert "swedencentral" in regions


# Exports ------------------------------------------------------------------------------------------


def test_the_csv_export_holds_the_filtered_events_safely(client_for, platform_admin, trail, monkeypatch, hr):
    record_at(
        monkeypatch,
        at("2026-11-22"),
        actor=None,
        actor_label='=HYPERLINK("http://evil")',
        actor_kind=AuditEvent.ActorKind.SERVICE_PRINCIPAL,
        verb="auth.signed_in",
        target=hr,
        department=hr,
    )
    response = client_for(platform_admin).get("/audit/export.csv", {"department": "hr"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert (
        f'filename="switchyard-audit-{timezone.localdate():%Y-%m-%d}.csv"' in response["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [row["sequence"] for row in rows] == [
        str(AuditEvent.objects.get(actor_label__startswith="=").sequence),
        str(trail["hr"].sequence),
    ]
    assert rows[0]["actor"] == '\'=HYPERLINK("http://evil")'
    assert json.loads(rows[1]["after"]) == {"monthly_budget": "2500.00"}
    assert rows[1]["department"] == "hr"
    assert rows[1]["hash"] == trail["hr"].hash


def test_the_jsonl_export_holds_every_field(client_for, security_approver, trail):
    response = client_for(security_approver).get("/audit/export.jsonl", {"verb": "department.budget_changed"})
    assert response["Content-Type"].startswith("application/jsonl")
    assert ".jsonl" in response["Content-Disposition"]
    lines = [json.loads(line) for line in body(response).splitlines()]
    assert [line["sequence"] for line in lines] == [trail["hr"].sequence, trail["budget"].sequence]
    budget = lines[1]
    assert budget["before"] == {"monthly_budget": "5000.00", "name": "Marketing"}
    assert budget["actor"] == "platform@example.com"
    assert budget["actor_kind"] == "person"
    assert budget["note"] == "Campaign season"
    assert budget["prev_hash"] == trail["budget"].prev_hash
    assert budget["created_at"] == at("2026-10-05").astimezone(UTC).isoformat()


def test_an_export_writes_its_own_audit_event_with_the_filters(client_for, security_approver, trail):
    client = client_for(security_approver)
    client.get("/audit/export.csv", {"department": "marketing", "from": "2026-11-01", "q": ""})
    exported = AuditEvent.objects.get(verb="audit.exported")
    assert exported.actor == security_approver
    assert exported.after == {"format": "csv", "filters": {"department": "marketing", "from": "2026-11-01"}}
    # Reading the page is not audited.
    client.get(EVENTS)
    client.get(f"/audit/{trail['budget'].sequence}/")
    assert AuditEvent.objects.filter(actor=security_approver, verb="audit.exported").count() == 1


def test_an_export_reads_the_trail_a_batch_at_a_time(trail):
    from reports.selectors.audit import AuditFilters, audit_batches

    batches = list(audit_batches(AuditFilters(), size=3))
    assert [len(batch) for batch in batches] == [3, 1]
    assert [event.sequence for batch in batches for event in batch] == sorted(
        (event.sequence for event in trail.values()), reverse=True
    )


def test_the_page_and_exports_only_read(client_for, platform_admin, trail):
    client = client_for(platform_admin)
    for url in [EVENTS, f"/audit/{trail['budget'].sequence}/", *EXPORTS]:
        assert client.post(url).status_code == 405
