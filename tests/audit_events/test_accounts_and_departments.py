"""People's accounts and departments created, switched off and deleted in the admin: the trail
keeps what they were, because the row itself is new or gone."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from org.models import Department, User
from tests.audit_events.conftest import admin_form, assert_from_the_request, only_event
from tests.factories import make_department, make_user

pytestmark = pytest.mark.django_db


def change_person(admin_client, person, **changes):
    url = reverse("admin:org_user_change", args=[person.pk])
    data = admin_form(admin_client, url)
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)  # an unticked box is not sent
        else:
            data[name] = "on" if value is True else value
    return admin_client.post(url, data)


def test_an_account_created_in_the_admin_is_audited(admin_client, admin):
    url = reverse("admin:org_user_add")
    data = admin_form(admin_client, url)
    data.update(email="nora@example.com", password1="a-long-enough-pass-9", password2="a-long-enough-pass-9")

    response = admin_client.post(url, data)

    assert response.status_code == 302
    nora = User.objects.get(email="nora@example.com")
    event = only_event("user.created")
    assert (event.actor, event.object_type, event.object_id) == (admin, "org.user", str(nora.pk))
    assert event.after == {"email": "nora@example.com", "name": "", "is_active": True}
    assert_from_the_request(event, response)


def test_an_account_switched_off_and_on_again_in_the_admin_is_audited(admin_client, admin):
    nora = make_user(email="nora@example.com")

    response = change_person(admin_client, nora, is_active=False)

    assert response.status_code == 302
    nora.refresh_from_db()
    assert not nora.is_active
    event = only_event("user.deactivated")
    assert (event.actor, event.object_id) == (admin, str(nora.pk))
    assert (event.before, event.after) == ({"is_active": True}, {"is_active": False})
    assert_from_the_request(event, response)

    change_person(admin_client, nora, is_active=True)
    assert only_event("user.reactivated").after == {"is_active": True}


def test_admin_site_access_given_in_the_admin_is_audited_as_a_platform_role(admin_client, admin):
    nora = make_user(email="nora@example.com")

    response = change_person(admin_client, nora, is_staff=True)

    assert response.status_code == 302
    event = only_event("platform_role.granted")
    assert (event.object_id, event.after) == (str(nora.pk), {"platform_role": "Django admin access"})


def test_an_account_deleted_in_the_admin_is_audited_with_what_it_was(admin_client, admin):
    nora = make_user(email="nora@example.com", first_name="Nora")
    pk = nora.pk

    response = admin_client.post(reverse("admin:org_user_delete", args=[pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=pk).exists()
    event = only_event("user.deleted")
    assert (event.actor, event.object_type, event.object_id) == (admin, "org.user", str(pk))
    assert event.before == {"email": "nora@example.com", "name": "Nora", "is_active": True}
    assert_from_the_request(event, response)


def test_a_department_created_in_the_admin_is_audited(admin_client, admin):
    url = reverse("admin:org_department_add")
    data = admin_form(admin_client, url)
    data.update(name="Legal", slug="legal", cost_center="CC-7100", monthly_budget="1500.00")
    data.update({"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    legal = Department.objects.get(slug="legal")
    event = only_event("department.created")
    assert (event.actor, event.object_id, event.department) == (admin, str(legal.pk), legal)
    assert event.after is not None
    assert (event.after["name"], event.after["monthly_budget"]) == ("Legal", "1500.00")
    # A new department is one event, not a budget "change" from nothing.
    assert not AuditEvent.objects.filter(verb="department.budget_changed").exists()


def test_a_department_deleted_in_the_admin_is_audited_with_what_it_was(admin_client, admin):
    legal = make_department(name="Legal")
    pk = legal.pk

    response = admin_client.post(reverse("admin:org_department_delete", args=[pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Department.objects.filter(pk=pk).exists()
    event = only_event("department.deleted")
    assert (event.actor, event.object_type, event.object_id) == (admin, "org.department", str(pk))
    assert event.before is not None
    assert event.before["name"] == "Legal"
