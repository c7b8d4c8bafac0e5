"""Departments joined and left, lead roles and platform roles: from an Entra ID sign-in and by
hand in the admin."""

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse

from audit.models import AuditEvent
from org.models import Membership, PlatformGroup, User
from org.roles import ensure_platform_groups
from org.services import memberships_sync_from_entra
from provisioning.emulator.identity_registry import GROUP_MARKETING_LEADS as MARKETING_LEADS
from provisioning.emulator.identity_registry import GROUP_MARKETING_MEMBERS as MARKETING_MEMBERS
from tests.audit_events.conftest import admin_form, assert_from_the_request, only_event
from tests.entra import directory_membership_set, entra_callback, portal_client
from tests.factories import make_department, make_user
from tests.portal.conftest import PLATFORM_ADMINS, entra  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing(db):
    return make_department(
        name="Marketing", entra_member_group_id=MARKETING_MEMBERS, entra_lead_group_id=MARKETING_LEADS
    )


def test_a_membership_added_in_the_admin_is_audited(admin_client, admin, marketing):
    nora = make_user(email="nora@example.com")

    response = admin_client.post(
        reverse("admin:org_membership_add"),
        {"user": nora.pk, "department": marketing.pk, "role": "member", "source": "manual"},
    )

    assert response.status_code == 302
    event = only_event("membership.added")
    assert (event.actor, event.actor_kind) == (admin, "person")
    assert (event.object_type, event.object_id, event.department) == ("org.user", str(nora.pk), marketing)
    assert (event.before, event.after) == (None, {"department": "marketing", "role": "member"})
    assert_from_the_request(event, response)


def test_a_membership_deleted_in_the_admin_is_audited(admin_client, admin, marketing):
    nora = make_user(email="nora@example.com", department=marketing)
    membership = Membership.objects.get(user=nora)

    response = admin_client.post(
        reverse("admin:org_membership_delete", args=[membership.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Membership.objects.filter(user=nora).exists()
    event = only_event("membership.removed")
    assert (event.actor, event.object_id, event.department) == (admin, str(nora.pk), marketing)
    assert (event.before, event.after) == ({"department": "marketing", "role": "member"}, None)
    assert_from_the_request(event, response)


def test_a_lead_role_from_the_entra_sign_in_is_audited_as_entra_ids_doing(entra, marketing):  # noqa: F811
    entra_callback(portal_client(), "nina@example.com")  # Nina is in Marketing's member group
    nina = User.objects.get(email="nina@example.com")
    assert only_event("membership.added").department == marketing

    directory_membership_set(entra, username="nina@example.com", group_id=MARKETING_LEADS, member=True)
    response = entra_callback(portal_client(), "nina@example.com")

    event = only_event("membership.lead_granted")
    assert (event.actor, event.actor_kind, event.actor_label) == (None, "system", "Microsoft Entra ID")
    assert (event.object_id, event.department) == (str(nina.pk), marketing)
    assert (event.before, event.after) == (
        {"department": "marketing", "role": "member"},
        {"department": "marketing", "role": "lead"},
    )
    assert_from_the_request(event, response)


def test_a_lead_made_member_on_the_departments_admin_page_is_audited(admin_client, admin, marketing):
    lena = make_user(email="lena@example.com", department=marketing, role=Membership.Role.LEAD)
    url = reverse("admin:org_department_change", args=[marketing.pk])
    data = admin_form(admin_client, url)
    assert data["memberships-0-role"] == "lead"

    response = admin_client.post(url, {**data, "memberships-0-role": "member"})

    assert response.status_code == 302
    event = only_event("membership.lead_removed")
    assert (event.actor, event.object_id, event.department) == (admin, str(lena.pk), marketing)
    assert (event.before["role"], event.after["role"]) == ("lead", "member")
    assert_from_the_request(event, response)


def test_a_platform_role_given_on_a_persons_admin_page_is_audited(admin_client, admin):
    nora = make_user(email="nora@example.com")
    ensure_platform_groups()
    finance = Group.objects.get(name=PlatformGroup.FINANCE)
    url = reverse("admin:org_user_change", args=[nora.pk])

    response = admin_client.post(url, {**admin_form(admin_client, url), "groups": [finance.pk]})

    assert response.status_code == 302
    event = only_event("platform_role.granted")
    assert (event.actor, event.actor_kind, event.object_id) == (admin, "person", str(nora.pk))
    assert event.department is None  # a platform role reaches every department
    assert (event.before, event.after) == (None, {"platform_role": PlatformGroup.FINANCE.value})
    assert_from_the_request(event, response)


def test_a_platform_role_entra_id_no_longer_confirms_is_removed_and_audited(entra, marketing):  # noqa: F811
    directory_membership_set(entra, username="nina@example.com", group_id=PLATFORM_ADMINS, member=True)
    entra_callback(portal_client(), "nina@example.com")
    assert only_event("platform_role.granted").actor_label == "Microsoft Entra ID"

    directory_membership_set(entra, username="nina@example.com", group_id=PLATFORM_ADMINS, member=False)
    response = entra_callback(portal_client(), "nina@example.com")

    nina = User.objects.get(email="nina@example.com")
    assert not nina.is_platform_admin
    event = only_event("platform_role.removed")
    assert (event.actor, event.actor_kind, event.object_id) == (None, "system", str(nina.pk))
    assert (event.before, event.after) == ({"platform_role": PlatformGroup.ADMINS.value}, None)
    assert_from_the_request(event, response)


def test_a_sign_ins_role_changes_rolled_back_leave_no_events(marketing):
    nora = make_user(email="nora@example.com")

    def sign_in_failing_after_the_roles() -> None:
        with transaction.atomic():
            memberships_sync_from_entra(user=nora, group_ids={MARKETING_LEADS})
            assert AuditEvent.objects.filter(verb="membership.added").exists()
            raise RuntimeError("the session could not be saved")

    with pytest.raises(RuntimeError):
        sign_in_failing_after_the_roles()

    assert not Membership.objects.filter(user=nora).exists()
    assert not AuditEvent.objects.filter(verb="membership.added").exists()


def test_making_someone_superuser_in_the_admin_is_audited_as_a_platform_role(admin_client, admin):
    nora = make_user(email="nora@example.com")
    url = reverse("admin:org_user_change", args=[nora.pk])

    response = admin_client.post(url, {**admin_form(admin_client, url), "is_superuser": "on"})

    assert response.status_code == 302
    event = only_event("platform_role.granted")
    assert (event.actor, event.object_id, event.after) == (
        admin,
        str(nora.pk),
        {"platform_role": "Superuser"},
    )
    assert_from_the_request(event, response)
