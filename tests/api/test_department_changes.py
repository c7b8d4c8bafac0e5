"""Platform admins change a department's budget and data policy through the API, with the service
the Django admin uses (the same audit events), an ETag that versions the settings (not the spend)
and If-Match; everyone else gets the ladder's 401, 404 or 403."""

import json
from decimal import Decimal

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from org.models import Department
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.audit_events.conftest import admin_form
from tests.factories import make_deployment, make_spend

pytestmark = pytest.mark.django_db

MARKETING = "/api/v1/departments/marketing"


def patch(client, url, body, **headers):
    return client.patch(url, json.dumps(body), content_type="application/json", **headers)


def policy_events() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(verb__startswith="department.").select_related("actor").order_by("pk")
    )


@pytest.fixture
def admin(platform_admin):
    return bearer(token_for(platform_admin))


# The ladder ----------------------------------------------------------------------------------------


def test_anonymous_gets_a_401(anonymous, marketing):
    assert_problem(patch(anonymous, MARKETING, {"chat_retention_days": 7}), 401)


def test_another_departments_lead_finds_nothing(api_as, marketing, finance_lead):
    assert_problem(patch(api_as(finance_lead), MARKETING, {"chat_retention_days": 7}), 404)


@pytest.mark.parametrize("who", ["marketing_member", "marketing_lead", "finance_approver"])
def test_only_platform_admins_change_a_department(request, api_as, marketing, who):
    client = api_as(request.getfixturevalue(who))

    assert_problem(patch(client, MARKETING, {"monthly_budget": {"amount": "5000.00"}}), 403)

    marketing.refresh_from_db()
    assert marketing.monthly_budget == Decimal("1000.00")
    assert not policy_events()


def test_a_platform_admin_changes_the_budget_through_the_service(api_as, platform_admin, marketing):
    response = patch(
        api_as(platform_admin), MARKETING, {"monthly_budget": {"amount": "2500", "currency": "USD"}}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["monthly_budget"] == {"amount": "2500.00", "currency": "USD"}
    assert body["budget"]["monthly_budget"] == {"amount": "2500.00", "currency": "USD"}
    assert response["ETag"]
    marketing.refresh_from_db()
    assert marketing.monthly_budget == Decimal("2500.00")
    [event] = policy_events()
    assert (event.verb, event.actor, event.department) == (
        "department.budget_changed",
        platform_admin,
        marketing,
    )
    assert (event.before, event.after) == ({"monthly_budget": "1000.00"}, {"monthly_budget": "2500.00"})
    assert event.request_id == response["X-Request-ID"]


def test_an_unknown_department_is_a_404_for_admins_too(admin, db):
    assert_problem(patch(admin, "/api/v1/departments/nowhere", {"chat_retention_days": 7}), 404)


# What changes, and what is said ----------------------------------------------------------------


def test_each_kind_of_change_is_its_own_event_and_the_rest_stays(admin, platform_admin, marketing):
    response = patch(admin, MARKETING, {"chat_retention_days": 0, "approvers_may_audit_chats": True})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["chat_retention_days"], body["approvers_may_audit_chats"]) == (0, True)
    assert body["monthly_budget"]["amount"] == "1000.00"
    assert [(e.verb, e.before, e.after) for e in policy_events()] == [
        ("department.retention_changed", {"chat_retention_days": 30}, {"chat_retention_days": 0}),
        (
            "department.audit_policy_changed",
            {"approvers_may_audit_chats": False},
            {"approvers_may_audit_chats": True},
        ),
    ]


def test_nothing_to_change_changes_nothing_and_says_nothing(admin, marketing):
    for body in [
        {},
        {"chat_retention_days": 30},
        {"monthly_budget": {"amount": "1000"}},
        {"chat_retention_days": None},
    ]:
        response = patch(admin, MARKETING, body)
        assert response.status_code == 200, response.content
    assert not policy_events()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"chat_retention_days": -1}, "chat_retention_days"),
        ({"chat_retention_days": 40_000}, "chat_retention_days"),
        ({"chat_retention_days": "a week"}, "chat_retention_days"),
        ({"monthly_budget": {"amount": "12.345"}}, "monthly_budget.amount"),
        ({"monthly_budget": {"amount": "1e9"}}, "monthly_budget.amount"),
        ({"monthly_budget": {"amount": "100000000000.00"}}, "monthly_budget.amount"),
        ({"monthly_budget": {"amount": "100.00", "currency": "EUR"}}, "monthly_budget.currency"),
        ({"monthly_budget": 100}, "monthly_budget"),
        ({"approvers_may_audit_chats": "perhaps"}, "approvers_may_audit_chats"),
        ({"cost_center": "CC-1"}, "cost_center"),
    ],
)
def test_invalid_input_is_a_422_by_field(admin, marketing, body, field):
    problem = assert_problem(patch(admin, MARKETING, body), 422)

    assert any(name.endswith(field) for name in problem["errors"]), problem["errors"]
    assert not policy_events()


def test_a_negative_budget_is_refused_by_the_departments_own_rule(admin, marketing):
    problem = assert_problem(patch(admin, MARKETING, {"monthly_budget": {"amount": "-1.00"}}), 400)

    assert problem["errors"] == {"monthly_budget": ["Ensure this value is greater than or equal to 0."]}
    marketing.refresh_from_db()
    assert marketing.monthly_budget == Decimal("1000.00")
    assert not policy_events()


def test_a_malformed_body_is_a_4xx(admin, marketing):
    assert_problem(admin.patch(MARKETING, "{", content_type="application/json"), 400)
    assert_problem(patch(admin, MARKETING, [1]), 422)


# ETag and If-Match ---------------------------------------------------------------------------


def test_a_change_with_the_etag_read_is_made_and_a_stale_one_is_refused(admin, marketing):
    read = admin.get(MARKETING)
    etag = read["ETag"]

    changed = patch(admin, MARKETING, {"chat_retention_days": 7}, HTTP_IF_MATCH=etag)

    assert changed.status_code == 200, changed.content
    assert changed["ETag"] != etag
    assert changed["ETag"] == admin.get(MARKETING)["ETag"]
    stale = patch(admin, MARKETING, {"chat_retention_days": 14}, HTTP_IF_MATCH=etag)
    assert_problem(stale, 412)
    assert stale["ETag"] == changed["ETag"]
    marketing.refresh_from_db()
    assert marketing.chat_retention_days == 7
    assert patch(admin, MARKETING, {"chat_retention_days": 14}, HTTP_IF_MATCH="*").status_code == 200
    assert len(policy_events()) == 2


def test_the_etag_follows_the_settings_not_the_spend_nor_who_asks(admin, marketing, marketing_lead):
    etag = admin.get(MARKETING)["ETag"]

    make_spend(marketing, make_deployment(department=marketing), Decimal("12.50"))

    again = admin.get(MARKETING)
    assert again.json()["budget"]["spent_this_month"]["amount"] == "12.50"
    assert again["ETag"] == etag
    assert bearer(token_for(marketing_lead)).get(MARKETING)["ETag"] == etag
    assert patch(admin, MARKETING, {"chat_retention_days": 7}, HTTP_IF_MATCH=etag).status_code == 200


def test_a_change_made_in_the_django_admin_makes_the_etag_stale(admin, client_for, platform_admin, marketing):
    etag = admin.get(MARKETING)["ETag"]
    url = reverse("admin:org_department_change", args=[marketing.pk])
    browser = client_for(platform_admin)
    form = admin_form(browser, url)
    form.update(name="Marketing & Brand", monthly_budget="1800.00")

    assert browser.post(url, form).status_code == 302

    marketing.refresh_from_db()
    assert (marketing.name, marketing.monthly_budget) == ("Marketing & Brand", Decimal("1800.00"))
    assert [e.verb for e in policy_events()] == ["department.budget_changed"]  # the name is no policy
    assert_problem(patch(admin, MARKETING, {"chat_retention_days": 7}, HTTP_IF_MATCH=etag), 412)


def test_the_answers_match_the_document(anonymous, admin, marketing, marketing_lead):
    document = anonymous.get("/api/v1/openapi.json").json()
    lead = bearer(token_for(marketing_lead))
    path = "/api/v1/departments/{slug}"
    statuses = set()
    for response in [
        patch(admin, MARKETING, {"monthly_budget": {"amount": "10.5"}}),
        patch(admin, MARKETING, {"monthly_budget": {"amount": "-10.5"}}),
        patch(admin, MARKETING, {"chat_retention_days": 1}, HTTP_IF_MATCH='"stale"'),
        patch(lead, MARKETING, {"chat_retention_days": 1}),
        patch(anonymous, MARKETING, {}),
    ]:
        _validate(document, path, "patch", response)
        statuses.add(response.status_code)
    assert statuses == {200, 400, 401, 403, 412}
    assert Department.objects.get(slug="marketing").monthly_budget == Decimal("10.50")
