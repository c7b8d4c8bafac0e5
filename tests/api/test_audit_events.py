# ruff: noqa: F811
"""The audit trail through the API: for platform admins and security approvers as on the page,
with the page's filters, newest first, paged by cursor, each event whole.

The trail is the audit page's test trail: a budget change in Marketing (5 Oct 2026), a lead added
(2 Nov), HR's budget changed by Switchyard (20 Nov), a service principal's sign-in (21 Nov)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from audit.context import origin
from audit.models import AuditEvent
from audit.services import audit_record
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate

# The audit page's fixtures, taken as the tests' arguments (hence no F811 for them).
from tests.audit_page.test_audit_page import hr, security_approver, trail  # noqa: F401

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/audit-events"


def ids_of(body: dict[str, Any], trail: dict[str, AuditEvent]) -> list[str]:
    """The trail's events listed, by name (leaving out what the test's own callers did: their
    tokens, their sign-ins)."""
    names = {event.pk: name for name, event in trail.items()}
    return [names[item["id"]] for item in body["items"] if item["id"] in names]


# The ladder ----------------------------------------------------------------------------------------


def test_anonymous_gets_a_401(anonymous, trail):
    assert_problem(anonymous.get(EVENTS), 401)
    assert_problem(anonymous.get(f"{EVENTS}/{trail['budget'].pk}"), 401)


@pytest.mark.parametrize("who", ["marketing_lead", "marketing_member", "finance_approver"])
def test_leads_members_and_finance_approvers_get_a_403(request, api_as, trail, who):
    client = api_as(request.getfixturevalue(who))

    body = assert_problem(client.get(EVENTS), 403)
    assert "security approvers" in body["detail"]
    assert_problem(client.get(f"{EVENTS}/{trail['budget'].pk}"), 403)


@pytest.mark.parametrize("who", ["platform_admin", "security_approver"])
def test_admins_and_security_approvers_read_the_trail_newest_first(request, api_as, trail, who):
    client = api_as(request.getfixturevalue(who))

    response = client.get(EVENTS)

    assert response.status_code == 200, response.content
    assert ids_of(response.json(), trail) == ["principal", "hr", "member", "budget"]
    assert client.get(f"{EVENTS}/{trail['hr'].pk}").json()["id"] == trail["hr"].pk


def test_an_unknown_event_is_a_404(platform_admin, trail):
    assert_problem(bearer(token_for(platform_admin)).get(f"{EVENTS}/999999"), 404)


def test_reading_the_trail_is_not_audited(platform_admin, trail):
    client = bearer(token_for(platform_admin))
    count = AuditEvent.objects.count()

    client.get(EVENTS)
    client.get(f"{EVENTS}/{trail['hr'].pk}")

    assert AuditEvent.objects.count() == count


# An event ------------------------------------------------------------------------------------------


def test_an_event_has_who_what_which_before_after_and_where_from(platform_admin, marketing):
    with origin(request_id="req-7f3a", source_ip="203.0.113.9"):
        event = audit_record(
            actor=platform_admin,
            verb="department.budget_changed",
            target=marketing,
            department=marketing,
            before={"monthly_budget": "1000.00"},
            after={"monthly_budget": "1500.00"},
            note="Campaign season",
        )

    body = bearer(token_for(platform_admin)).get(f"{EVENTS}/{event.pk}").json()

    time = body.pop("time")
    assert time.endswith("Z")
    # In UTC, to the millisecond (as every time the API writes).
    assert datetime.fromisoformat(time) == event.created_at.astimezone(UTC).replace(
        microsecond=event.created_at.microsecond // 1000 * 1000
    )
    assert body == {
        "id": event.pk,
        "sequence": event.sequence,
        "actor": {"kind": "person", "label": "platform@example.com", "email": "platform@example.com"},
        "verb": "department.budget_changed",
        "verb_label": "Department: budget changed",
        "target": {"type": "org.department", "id": str(marketing.pk), "label": "Marketing"},
        "department": "marketing",
        "before": {"monthly_budget": "1000.00"},
        "after": {"monthly_budget": "1500.00"},
        "note": "Campaign season",
        "request_id": "req-7f3a",
        "ip": "203.0.113.9",
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def test_switchyards_and_a_service_principals_events_name_no_person(platform_admin, trail):
    client = bearer(token_for(platform_admin))

    system = client.get(f"{EVENTS}/{trail['hr'].pk}").json()
    principal = client.get(f"{EVENTS}/{trail['principal'].pk}").json()

    assert system["actor"] == {"kind": "system", "label": "", "email": None}
    assert principal["actor"] == {"kind": "service_principal", "label": "nightly-sync", "email": None}
    assert principal["department"] is None
    assert (principal["request_id"], principal["ip"]) == ("", None)


# Filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "platform@"}, ["budget"]),
        ({"actor": "nightly"}, ["principal"]),
        ({"verb": "department.budget_changed"}, ["hr", "budget"]),
        ({"department": "marketing"}, ["member", "budget"]),
        ({"target": "org.user"}, ["member"]),
        ({"target": "hr"}, ["principal", "hr"]),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-20T23:59:59Z"}, ["hr", "member"]),
        ({"from": "2026-11-20T12:00:00+01:00"}, ["principal", "hr"]),  # 11:00 UTC
        ({"to": "2026-10-05T12:00:00"}, ["budget"]),  # no offset: UTC
        ({"department": "hr", "verb": "department.budget_changed"}, ["hr"]),
        ({"q": "campaign"}, ["budget"]),
        ({"q": "nothing-like-this"}, []),
    ],
)
def test_each_filter_narrows_as_on_the_page(platform_admin, trail, query, expected):
    response = bearer(token_for(platform_admin)).get(EVENTS, query)

    assert response.status_code == 200, response.content
    assert ids_of(response.json(), trail) == expected


def test_an_exact_moment_finds_the_event_written_then(platform_admin, trail):
    moment = trail["budget"].created_at.astimezone(UTC)
    client = bearer(token_for(platform_admin))

    exact = client.get(EVENTS, {"from": moment.isoformat(), "to": moment.isoformat()}).json()

    assert ids_of(exact, trail) == ["budget"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"department": "nowhere"}, "department"),
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
    ],
)
def test_filters_the_page_would_refuse_are_a_400_naming_the_field(platform_admin, trail, query, field):
    body = assert_problem(bearer(token_for(platform_admin)).get(EVENTS, query), 400)
    assert list(body["errors"]) == [field]


@pytest.mark.parametrize(
    "query",
    [
        {"verb": "Not A Verb"},
        {"from": "yesterday"},
        {"from": "-55843"},
        {"to": "1.5"},
        {"to": "2e9"},
        {"limit": "0"},
        {"actor": "a\x00b"},
        {"sort": "actor"},
    ],
)
def test_malformed_filters_are_422s(platform_admin, query):
    body = assert_problem(bearer(token_for(platform_admin)).get(EVENTS, query), 422)
    assert list(body["errors"]) == list(query)


# Paging --------------------------------------------------------------------------------------------


def test_pages_follow_each_other_by_cursor_and_hold_on_while_events_are_added(platform_admin, trail):
    client = bearer(token_for(platform_admin))
    everything = [item["id"] for item in client.get(EVENTS, {"limit": 200}).json()["items"]]

    first = client.get(EVENTS, {"limit": 2}).json()
    audit_record(actor=platform_admin, verb="test.written_meanwhile", target=platform_admin)
    second = client.get(EVENTS, {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [item["id"] for item in first["items"] + second["items"]] == everything[:4]
    assert everything == sorted(everything, reverse=True)


def test_the_oldest_first_on_request(platform_admin, trail):
    body = bearer(token_for(platform_admin)).get(EVENTS, {"sort": "id", "limit": "200"}).json()

    assert ids_of(body, trail) == ["budget", "member", "hr", "principal"]


def test_a_cursor_does_not_carry_over_to_other_filters_or_orders(platform_admin, trail):
    client = bearer(token_for(platform_admin))
    cursor = client.get(EVENTS, {"verb": "department.budget_changed", "limit": "1"}).json()["next_cursor"]

    assert cursor
    following = client.get(EVENTS, {"verb": "department.budget_changed", "limit": 1, "cursor": cursor})
    assert ids_of(following.json(), trail) == ["budget"]
    assert_problem(client.get(EVENTS, {"verb": "auth.signed_in", "cursor": cursor}), 400)
    assert_problem(
        client.get(EVENTS, {"verb": "department.budget_changed", "sort": "id", "cursor": cursor}), 400
    )


# The document -------------------------------------------------------------------------------------


def test_the_answers_match_the_document(anonymous, platform_admin, marketing_lead, trail):
    document = anonymous.get("/api/v1/openapi.json").json()
    admin = bearer(token_for(platform_admin))
    calls = [
        (admin, f"{EVENTS}?limit=2", EVENTS),
        (admin, f"{EVENTS}?department=marketing", EVENTS),
        (admin, f"{EVENTS}?department=nowhere", EVENTS),
        (admin, f"{EVENTS}?limit=500", EVENTS),
        (admin, f"{EVENTS}/{trail['budget'].pk}", f"{EVENTS}/{{event_id}}"),
        (admin, f"{EVENTS}/{trail['principal'].pk}", f"{EVENTS}/{{event_id}}"),
        (admin, f"{EVENTS}/999999", f"{EVENTS}/{{event_id}}"),
        (bearer(token_for(marketing_lead)), EVENTS, EVENTS),
        (anonymous, EVENTS, EVENTS),
    ]
    seen = set()
    for client, url, path in calls:
        response = client.get(url)
        _validate(document, path, "get", response)
        seen.add(response.status_code)
    assert seen == {200, 400, 401, 403, 404, 422}
