"""Every page walks the ladder: anonymous, other department, wrong role, right role."""

import pytest
from django.template.loader import render_to_string
from django.test import Client

from org.models import User

LOGIN = "/accounts/login/"


def text(response) -> str:
    return str(response.content.decode())


@pytest.mark.parametrize("path", ["/", "/departments/", "/departments/marketing/"])
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, marketing, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={path}"


def test_home_shows_a_member_their_departments_and_role(client_for, marketing_member):
    response = client_for(marketing_member).get("/")

    assert response.status_code == 200
    page = text(response)
    assert "Marketing" in page
    assert "Member" in page
    assert "Across the company" not in page


def test_home_tells_someone_without_a_department_what_to_do(client_for, db):
    from tests.factories import make_user

    response = client_for(make_user()).get("/")

    assert response.status_code == 200
    assert "You are not in a department yet" in text(response)


def test_home_gives_admins_the_company_overview(client_for, platform_admin, marketing, finance):
    response = client_for(platform_admin).get("/")

    page = text(response)
    assert "Across the company" in page
    assert "$2,000" in page  # two departments of $1,000 each


def test_navigation_fits_each_role(
    client_for, marketing_member, marketing_lead, platform_admin, finance_approver
):
    member_page = text(client_for(marketing_member).get("/"))
    lead_page = text(client_for(marketing_lead).get("/"))
    admin_page = text(client_for(platform_admin).get("/"))
    finance_page = text(client_for(finance_approver).get("/"))

    assert "My department" not in member_page
    assert "Departments</a>" not in member_page
    assert "My department" in lead_page
    assert 'href="/admin/"' not in lead_page
    assert "Departments</a>" in admin_page
    assert 'href="/admin/"' in admin_page
    assert "Departments</a>" in finance_page
    assert 'href="/admin/"' not in finance_page


class TestDepartmentPage:
    path = "/departments/marketing/"

    def test_another_departments_lead_gets_not_found(self, client_for, marketing, finance_lead):
        response = client_for(finance_lead).get(self.path)

        assert response.status_code == 404
        assert "There is nothing here" in text(response)

    def test_a_plain_member_is_refused(self, client_for, marketing_member):
        response = client_for(marketing_member).get(self.path)

        assert response.status_code == 403
        assert "leads can open this page" in text(response)

    def test_the_lead_sees_people_budget_and_data_policy(self, client_for, marketing_lead, marketing_member):
        response = client_for(marketing_lead).get(self.path)

        assert response.status_code == 200
        page = text(response)
        assert "member@example.com" in page
        assert "lead@example.com" in page
        assert "$1,000.00" in page
        assert "Kept 30 days" in page

    @pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
    def test_admins_and_finance_see_every_department(self, request, client_for, marketing, who):
        response = client_for(request.getfixturevalue(who)).get(self.path)

        assert response.status_code == 200

    def test_an_unknown_department_is_not_found_even_for_admins(self, client_for, platform_admin):
        assert client_for(platform_admin).get("/departments/nope/").status_code == 404


class TestDepartmentList:
    path = "/departments/"

    def test_a_plain_member_is_refused(self, client_for, marketing_member):
        assert client_for(marketing_member).get(self.path).status_code == 403

    def test_a_lead_sees_only_the_departments_they_lead(self, client_for, marketing_lead, finance):
        response = client_for(marketing_lead).get(self.path)

        assert response.status_code == 200
        assert "Marketing" in text(response)
        assert "CC-3100" not in text(response)

    @pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
    def test_admins_and_finance_see_all(self, request, client_for, marketing, finance, who):
        page = text(client_for(request.getfixturevalue(who)).get(self.path))

        assert "CC-2100" in page
        assert "CC-3100" in page


class TestDjangoAdmin:
    def test_anonymous_is_sent_to_sign_in(self, client: Client):
        assert client.get("/admin/").status_code == 302

    def test_a_lead_is_not_let_in(self, client_for, marketing_lead):
        response = client_for(marketing_lead).get("/admin/")

        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_a_platform_admin_manages_departments_and_memberships(
        self, client_for, platform_admin, marketing
    ):
        admin_client = client_for(platform_admin)

        assert admin_client.get("/admin/org/department/?q=CC-2100").status_code == 200
        assert admin_client.get("/admin/org/membership/?role__exact=lead").status_code == 200
        assert admin_client.get(f"/admin/org/department/{marketing.pk}/change/").status_code == 200

    def test_finance_may_look_but_not_change(self, client_for, finance_approver, marketing):
        finance_client = client_for(finance_approver)
        finance_approver.is_staff = True
        finance_approver.save()

        assert finance_client.get("/admin/org/department/").status_code == 200
        response = finance_client.post(f"/admin/org/department/{marketing.pk}/change/", {"name": "Renamed"})
        assert response.status_code == 403
        marketing.refresh_from_db()
        assert marketing.name == "Marketing"


class TestSignIn:
    def test_a_wrong_password_says_so_and_keeps_the_email(self, client: Client, marketing_member):
        response = client.post(LOGIN, {"login": "member@example.com", "password": "wrong"})

        assert response.status_code == 200
        page = text(response)
        assert "not correct" in page
        assert 'value="member@example.com"' in page

    def test_signing_in_and_out(self, client: Client, marketing_member):
        from tests.factories import PASSWORD

        response = client.post(LOGIN, {"login": "member@example.com", "password": PASSWORD})
        assert response.status_code == 302
        assert response["Location"] == "/"

        response = client.post("/accounts/logout/")
        assert response.status_code == 302
        assert client.get("/").status_code == 302

    def test_self_sign_up_is_closed(self, client: Client, db):
        response = client.post(
            "/accounts/signup/",
            {"email": "new@example.com", "password1": "a-long-password-1", "password2": "a-long-password-1"},
        )

        assert not User.objects.filter(email="new@example.com").exists()
        assert "Sign Up Closed" in text(response) or response.status_code == 302


def test_error_pages_render_in_the_product_look_without_a_request():
    page = render_to_string("500.html")

    assert "Something went wrong on our side" in page
    assert "switchyard.css" in page


def test_pages_carry_a_nonce_based_content_security_policy(client_for, marketing_member):
    response = client_for(marketing_member).get("/")

    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy
    assert "<script>" not in text(response)
