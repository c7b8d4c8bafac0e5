"""Every endpoint walks the ladder (anonymous, another department, wrong role, right role) with a
personal access token, an Entra ID token and the browser session, and answers as the pages do:
another department is a 404, a plain member a 403."""

import pytest

from tests.api.conftest import assert_problem
from tests.factories import make_department, make_user

DEPARTMENT_PATHS = ["/api/v1/departments/marketing", "/api/v1/departments/marketing/memberships"]
ALL_PATHS = ["/api/v1/me", "/api/v1/departments", *DEPARTMENT_PATHS]


@pytest.mark.parametrize("path", ALL_PATHS)
def test_anonymous_gets_a_401_problem(anonymous, marketing, path):
    response = anonymous.get(path)

    body = assert_problem(response, 401)
    assert "Bearer" in response["WWW-Authenticate"]
    assert "personal access token" in body["detail"]


@pytest.mark.parametrize("path", DEPARTMENT_PATHS)
def test_another_departments_lead_gets_a_404(api_as, finance_lead, marketing, path):
    assert_problem(api_as(finance_lead).get(path), 404)


@pytest.mark.parametrize("path", DEPARTMENT_PATHS)
def test_a_plain_member_gets_a_403(api_as, marketing_member, path):
    body = assert_problem(api_as(marketing_member).get(path), 403)
    assert "leads" in body["detail"]


def test_a_plain_member_may_not_list_departments(api_as, marketing_member):
    assert_problem(api_as(marketing_member).get("/api/v1/departments"), 403)


def test_a_lead_lists_the_departments_they_lead(api_as, marketing_lead, finance):
    response = api_as(marketing_lead).get("/api/v1/departments")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [d["slug"] for d in body["items"]] == ["marketing"]
    assert body["items"][0]["your_role"] == "lead"
    assert body["items"][0]["monthly_budget"] == {"amount": "1000.00", "currency": "USD"}
    assert body["next_cursor"] is None


def test_a_lead_opens_their_department(api_as, marketing_lead, marketing_member):
    response = api_as(marketing_lead).get("/api/v1/departments/marketing")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["slug"] == "marketing"
    assert body["cost_center"] == "CC-2100"
    assert (body["member_count"], body["lead_count"]) == (2, 1)
    assert body["budget"]["spent_this_month"] == {"amount": "0.00", "currency": "USD"}
    assert body["budget"]["share_used"] == "0.0000"


def test_a_lead_lists_their_departments_people(api_as, marketing_lead, marketing_member):
    response = api_as(marketing_lead).get("/api/v1/departments/marketing/memberships")

    assert response.status_code == 200, response.content
    items = response.json()["items"]
    assert [(m["email"], m["role"]) for m in items] == [
        ("lead@example.com", "lead"),
        ("member@example.com", "member"),
    ]
    assert items[0]["since"].endswith("Z") or items[0]["since"].endswith("+00:00")


@pytest.mark.parametrize("fixture", ["platform_admin", "finance_approver"])
def test_admins_and_finance_see_every_department(api_as, request, marketing, finance, fixture):
    client = api_as(request.getfixturevalue(fixture))

    listed = client.get("/api/v1/departments").json()["items"]
    assert [d["slug"] for d in listed] == ["finance", "marketing"]
    assert all(d["your_role"] is None for d in listed)
    assert client.get("/api/v1/departments/finance").status_code == 200
    assert client.get("/api/v1/departments/marketing/memberships").status_code == 200


def test_an_unknown_department_is_a_404_for_admins_too(api_as, platform_admin):
    assert_problem(api_as(platform_admin).get("/api/v1/departments/nowhere"), 404)


def test_me_says_who_calls_and_how(api_as, marketing_lead):
    response = api_as(marketing_lead).get("/api/v1/me")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "lead@example.com"
    assert body["memberships"] == [
        {"department": "marketing", "department_name": "Marketing", "role": "lead"}
    ]
    assert (body["platform_admin"], body["finance_approver"]) == (False, False)
    assert body["authenticated_with"] == api_as.method
    if api_as.method == "access_token":
        assert body["access_token"]["name"] == "Test script"
        assert body["access_token"]["prefix"].startswith("sy-pat-")
        assert body["access_token"]["status"] == "active"
    else:
        assert body["access_token"] is None


def test_a_person_in_no_department_sees_themselves(api_as, db):
    loner = make_user(email="loner@example.com")
    make_department(name="Sales")

    body = api_as(loner).get("/api/v1/me").json()

    assert body["memberships"] == []
