"""The signed-in person is remembered between requests (org.auth), and every change to
them still takes effect at their next request."""

import pytest
from django.contrib.auth.models import Group

from org.models import Membership, PlatformGroup
from org.roles import ensure_platform_groups
from tests.factories import make_department

pytestmark = pytest.mark.django_db


def signed_out(response) -> bool:
    return response.status_code == 302 and str(response["Location"]).startswith("/accounts/login/")


def test_a_new_password_signs_out_the_persons_other_sessions_at_once(marketing_member, client_for):
    browser = client_for(marketing_member)
    assert browser.get("/").status_code == 200  # remembered from here on

    marketing_member.set_password("a brand new passphrase for 2026")
    marketing_member.save()

    assert signed_out(browser.get("/"))


def test_a_deactivated_person_is_signed_out_at_once(marketing_member, client_for):
    browser = client_for(marketing_member)
    assert browser.get("/").status_code == 200

    marketing_member.is_active = False
    marketing_member.save(update_fields=["is_active"])

    assert signed_out(browser.get("/"))


def test_a_new_name_shows_at_the_next_request(marketing_member, client_for):
    browser = client_for(marketing_member)
    assert "Renamed Person" not in browser.get("/").content.decode()

    marketing_member.first_name, marketing_member.last_name = "Renamed", "Person"
    marketing_member.save(update_fields=["first_name", "last_name"])

    assert "Renamed Person" in browser.get("/").content.decode()


def test_what_one_request_learns_about_the_person_is_not_kept_for_the_next(marketing_member, client_for):
    # Departments and platform groups are not part of the person's row: each request reads them.
    browser = client_for(marketing_member)
    assert browser.get("/costs/").status_code == 403
    assert "Research" not in browser.get("/").content.decode()

    Membership.objects.create(user=marketing_member, department=make_department(name="Research"))
    ensure_platform_groups()
    marketing_member.groups.add(Group.objects.get(name=PlatformGroup.FINANCE.value))

    assert browser.get("/costs/").status_code == 200
    assert "Research" in browser.get("/").content.decode()
