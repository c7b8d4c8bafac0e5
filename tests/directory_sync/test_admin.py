"""The directory syncs in Django admin: a read-only list, and "Sync with Microsoft Entra ID now"
for platform admins only. The list is platform-wide (no department's object), so the ladder's
rungs are: anonymous, a member who is no admin, staff without the platform-admin role, a platform
admin."""

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from org.models import DirectorySyncRun, PlatformGroup, User
from provisioning.emulator.identity_registry import GROUP_FINANCE_MEMBERS
from tests.factories import make_user

pytestmark = pytest.mark.django_db

LIST = "/admin/org/directorysyncrun/"
SYNC_NOW = "/admin/org/directorysyncrun/sync-now/"
BUTTON = "Sync with Microsoft Entra ID now"


@pytest.fixture
def staff_viewer(db) -> User:
    """Staff who may look at the runs but holds no platform role."""
    user = make_user(email="viewer@example.com")
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_directorysyncrun"))
    return user


def test_anonymous_people_are_sent_to_sign_in(client):
    for response in (client.get(LIST), client.post(SYNC_NOW)):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert not DirectorySyncRun.objects.exists()


def test_a_member_who_is_no_admin_is_sent_to_sign_in(client_for, marketing_member):
    signed_in = client_for(marketing_member)
    assert signed_in.post(SYNC_NOW)["Location"].startswith("/admin/login/")
    assert not DirectorySyncRun.objects.exists()


def test_staff_without_the_platform_admin_role_see_the_runs_but_cannot_start_one(client_for, staff_viewer):
    signed_in = client_for(staff_viewer)
    page = signed_in.get(LIST)
    assert page.status_code == 200
    assert BUTTON not in page.content.decode()

    assert signed_in.post(SYNC_NOW).status_code == 403
    assert not DirectorySyncRun.objects.exists()


def test_a_platform_admin_runs_the_sync_from_the_admin(client_for, platform_admin, leo, directory):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")
    signed_in = client_for(platform_admin)
    assert BUTTON in signed_in.get(LIST).content.decode()

    response = signed_in.post(SYNC_NOW, follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Synced with Microsoft Entra ID: 1 person checked, 1 membership removed" in page
    assert "1 person deactivated" in page
    run = DirectorySyncRun.objects.get()
    assert run.trigger == DirectorySyncRun.Trigger.ADMIN
    assert run.requested_by == platform_admin
    assert not User.objects.get(pk=leo.pk).is_active
    requested = AuditEvent.objects.get(verb="directory_sync.requested")
    assert requested.actor == platform_admin


def test_a_failed_sync_is_shown_to_the_admin_with_its_reason(client_for, platform_admin, leo, emulator):
    emulator.inject(operation="graph", kind="500")

    page = client_for(platform_admin).post(SYNC_NOW, follow=True).content.decode()

    assert "The sync failed: Microsoft Graph answered 500" in page
    assert "Failed" in page


def test_the_sync_is_started_by_a_post_only(client_for, platform_admin):
    assert client_for(platform_admin).get(SYNC_NOW).status_code == 405


def test_runs_cannot_be_added_changed_or_deleted(client_for, platform_admin, leo, directory):
    from org.directory_sync import directory_sync

    run = directory_sync()
    signed_in = client_for(platform_admin)
    assert signed_in.get(f"{LIST}add/").status_code == 403
    assert signed_in.post(f"{LIST}{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert signed_in.get(f"{LIST}{run.pk}/change/").status_code == 200  # read-only view
    assert DirectorySyncRun.objects.filter(pk=run.pk).exists()


def test_platform_admins_may_view_the_runs(platform_admin):
    assert platform_admin.groups.filter(name=PlatformGroup.ADMINS).exists()
    assert User.objects.get(pk=platform_admin.pk).has_perm("org.view_directorysyncrun")
