"""The directory sync against the emulator's Microsoft Graph: memberships follow the directory
between sign-ins, a leaver loses access and their open session, a Graph outage keeps the last
known departments but not platform roles."""

import logging

import pytest
from django.test import Client

from audit.models import AuditEvent
from org.directory_sync import directory_sync
from org.graph import GraphClient
from org.models import DirectorySyncRun, User
from org.tasks import directory_sync_task
from provisioning.emulator.identity_registry import (
    GROUP_FINANCE_MEMBERS,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_LEADS,
    GROUP_MARKETING_MEMBERS,
)
from tests.directory_sync.conftest import departments_of, is_platform_admin

pytestmark = pytest.mark.django_db


def signed_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    assert client.get("/").status_code == 200
    return client


def test_a_sync_with_no_changes_in_the_directory_changes_nobody(nina, leo, omar):
    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert run.finished_at is not None
    assert run.people_checked == 3
    assert (run.memberships_added, run.memberships_changed, run.memberships_removed) == (0, 0, 0)
    assert run.people_deactivated == 0
    assert departments_of(nina) == {"HR": "member", "Marketing": "member"}
    assert departments_of(leo) == {"Finance": "member"}
    assert is_platform_admin(omar)


def test_a_sync_adds_changes_and_removes_memberships(nina, leo, directory):
    directory.add_member(GROUP_MARKETING_LEADS, "nina@example.com")  # Nina now leads Marketing
    directory.remove_member(GROUP_HR_MEMBERS, "nina@example.com")  # and has left HR
    directory.add_member(GROUP_HR_MEMBERS, "leo@example.com")  # Leo joins HR

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert (run.memberships_added, run.memberships_changed, run.memberships_removed) == (1, 1, 1)
    assert departments_of(nina) == {"Marketing": "lead"}
    assert departments_of(leo) == {"Finance": "member", "HR": "member"}
    events = AuditEvent.objects.filter(verb__startswith="membership.").order_by("sequence")
    assert [
        (event.verb, event.object_repr, event.actor_label)
        for event in events.filter(actor_label__contains="Entra")
    ][-3:] == [
        ("membership.removed", "Nina Novak", "Microsoft Entra ID"),
        ("membership.lead_granted", "Nina Novak", "Microsoft Entra ID"),
        ("membership.added", "Leo Lambert", "Microsoft Entra ID"),
    ]
    assert User.objects.get(pk=nina.pk).is_active


def test_a_person_in_a_group_nested_in_a_mapped_group_belongs_to_its_department(leo, directory):
    directory.add_member(GROUP_HR_MEMBERS, GROUP_FINANCE_MEMBERS)  # all of Finance is in HR's group

    directory_sync()

    assert departments_of(leo) == {"Finance": "member", "HR": "member"}


def test_a_leaver_loses_access_and_their_open_session_at_the_next_sync(leo, nina, directory):
    leo_browser = signed_in_client(leo)
    nina_browser = signed_in_client(nina)
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")

    run = directory_sync()

    assert (run.people_deactivated, run.sessions_ended, run.memberships_removed) == (1, 1, 1)
    leo.refresh_from_db()
    assert not leo.is_active
    assert departments_of(leo) == {}
    # His next request finds no session: he is sent to sign in, and cannot.
    response = leo_browser.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not leo_browser.login(email="leo@example.com", password="anything")
    # Others stay signed in.
    assert nina_browser.get("/").status_code == 200
    event = AuditEvent.objects.get(verb="user.deactivated")
    assert event.object_repr == "Leo Lambert"
    assert event.actor_label == "Microsoft Entra ID"
    assert "none of the Microsoft Entra ID groups" in event.note


def test_a_disabled_account_loses_its_departments_platform_roles_and_sessions(omar, directory):
    omar_browser = signed_in_client(omar)
    directory.set_account_enabled("omar@example.com", False)

    run = directory_sync()

    assert (run.people_deactivated, run.platform_roles_removed, run.sessions_ended) == (1, 1, 1)
    omar.refresh_from_db()
    assert not omar.is_active
    assert not omar.is_staff
    assert not is_platform_admin(omar)
    assert departments_of(omar) == {}
    assert omar_browser.get("/")["Location"].startswith("/accounts/login/")
    assert "disabled" in AuditEvent.objects.get(verb="user.deactivated").note


def test_a_second_sync_changes_nothing_more(leo, directory):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")
    directory_sync()

    again = directory_sync()

    assert again.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert (again.people_deactivated, again.memberships_removed, again.sessions_ended) == (0, 0, 0)
    assert AuditEvent.objects.filter(verb="user.deactivated").count() == 1


def test_a_graph_outage_keeps_departments_drops_platform_roles_and_records_why(nina, omar, emulator, caplog):
    emulator.inject(operation="graph", kind="503", retry_after_seconds=0)

    with caplog.at_level(logging.ERROR, logger="org.directory_sync"):
        run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.FAILED
    assert "Microsoft Graph answered 503" in run.error
    assert "last known departments were kept" in run.error
    assert run.platform_roles_removed == 1
    assert not is_platform_admin(omar)
    assert departments_of(omar) == {"Central IT": "member"}
    assert departments_of(nina) == {"HR": "member", "Marketing": "member"}
    assert User.objects.get(pk=omar.pk).is_active
    assert "Microsoft Graph answered 503" in caplog.text
    assert (
        AuditEvent.objects.filter(verb="platform_role.removed", actor_label="Microsoft Entra ID").count() == 1
    )

    # Graph back: the next run confirms the role again.
    emulator.reset()
    assert directory_sync().outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert is_platform_admin(omar)


def test_the_next_sync_asks_graph_from_the_last_delta_link(nina, directory, caplog):
    first = directory_sync()
    link = first.delta_links["groups"][0]
    assert "$deltatoken=" in link
    directory.remove_member(GROUP_MARKETING_MEMBERS, "nina@example.com")

    # The link answers only what changed since it was issued: Nina's removal, nothing else.
    with GraphClient() as graph:
        delta = graph.groups_delta(group_ids=[], delta_link=link)
    assert delta.added == {}
    assert delta.removed == {GROUP_MARKETING_MEMBERS: {"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"}}

    with caplog.at_level(logging.INFO, logger="org.directory_sync"):
        second = directory_sync()
    assert "Graph reported 1 direct membership changes" in caplog.text
    assert second.delta_links["groups"][0] != link
    assert departments_of(nina) == {"HR": "member"}


def test_a_changed_mapping_starts_the_delta_from_scratch(nina, directory, mapped_departments, caplog):
    directory_sync()
    mapped_departments["hr"].entra_lead_group_id = GROUP_MARKETING_LEADS
    mapped_departments["hr"].save()

    with caplog.at_level(logging.INFO, logger="org.directory_sync"):
        run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert "Graph reported 0 direct membership changes" in caplog.text
    assert GROUP_MARKETING_LEADS in run.delta_links["group_ids"]


def test_without_a_mapped_group_the_sync_changes_nobody(leo, directory, mapped_departments, settings):
    for department in mapped_departments.values():
        department.entra_member_group_id = department.entra_lead_group_id = ""
        department.save()
    settings.ENTRA_ADMIN_GROUP_ID = ""

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.FAILED
    assert "nothing to sync against" in run.error
    assert User.objects.get(pk=leo.pk).is_active


def test_without_entra_settings_the_sync_says_what_to_set(leo, settings):
    settings.ENTRA_CLIENT_SECRET = ""

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.FAILED
    assert "ENTRA_CLIENT_SECRET" in run.error
    assert User.objects.get(pk=leo.pk).is_active


def test_a_wrong_client_secret_is_a_failed_run_with_entras_reason(omar, settings):
    settings.ENTRA_CLIENT_SECRET = "not-the-secret"

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.FAILED
    assert "AADSTS7000215" in run.error
    assert not is_platform_admin(omar)


def test_the_scheduled_task_runs_a_sync(leo, directory):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")

    run_id = directory_sync_task()

    run = DirectorySyncRun.objects.get(pk=run_id)
    assert run.trigger == DirectorySyncRun.Trigger.SCHEDULE
    assert run.people_deactivated == 1


def test_the_scheduler_runs_the_sync_every_configured_seconds_when_entra_is_on():
    from tests.portal.test_settings import settings_value

    schedule = "CELERY_BEAT_SCHEDULE.get('directory-sync')"
    assert settings_value(schedule, DEBUG="true", AZURE_MODE="emulator") == "None"
    entra_on = {
        "DEBUG": "true",
        "AZURE_MODE": "emulator",
        "ENTRA_TENANT_ID": "4d6e8f0a-1b2c-4d3e-9f4a-5b6c7d8e9f01",
        "ENTRA_CLIENT_ID": "3b2f6c1d-9e4a-4f7b-8c5d-6a1e2f3b4c5d",
    }
    assert settings_value(schedule, **entra_on) == (
        "{'task': 'org.tasks.directory_sync_task', 'schedule': 900.0, 'options': {'expires': 900.0}}"
    )
    assert "'schedule': 60.0" in settings_value(schedule, ENTRA_SYNC_EVERY_SECONDS="60", **entra_on)


def test_a_delta_link_graph_no_longer_knows_starts_the_round_afresh(leo, directory, emulator):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "nina@example.com")  # not there: no change
    directory.add_member(GROUP_HR_MEMBERS, "leo@example.com")
    first = directory_sync()
    emulator.reset()  # the directory's change log starts again: the link's sync state is gone

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert run.delta_links["groups"][0] != first.delta_links["groups"][0]
    assert departments_of(leo) == {"Finance": "member"}


def test_the_command_runs_a_sync_and_says_what_changed(leo, directory, capsys):
    from django.core.management import call_command

    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")

    call_command("directory_sync")

    assert "Synced with Microsoft Entra ID: 1 person checked, 1 membership removed, 1 person deactivated" in (
        capsys.readouterr().out
    )


def test_the_command_fails_loudly_when_graph_is_down(leo, emulator, capsys):
    from django.core.management import call_command

    emulator.inject(operation="graph", kind="503", retry_after_seconds=0)

    with pytest.raises(SystemExit):
        call_command("directory_sync")
    assert "The sync failed: Microsoft Graph answered 503" in capsys.readouterr().out


def test_a_leaver_who_comes_back_is_reactivated_by_the_next_sync(leo, directory):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")
    directory_sync()
    directory.add_member(GROUP_FINANCE_MEMBERS, "leo@example.com")

    directory_sync()

    leo.refresh_from_db()
    assert leo.is_active
    assert departments_of(leo) == {"Finance": "member"}
    assert AuditEvent.objects.filter(verb="user.reactivated", actor_label="Microsoft Entra ID").count() == 1


def test_an_account_an_admin_deactivated_stays_deactivated(leo, directory, client_for, platform_admin):
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")
    directory_sync()
    admin_browser = client_for(platform_admin)
    form = {"email": leo.email, "first_name": "Leo", "last_name": "Lambert", "date_joined_0": "2026-01-01"}
    form |= {"date_joined_1": "09:00:00", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    # An admin reactivates Leo by hand, then deactivates him again.
    admin_browser.post(f"/admin/org/user/{leo.pk}/change/", {**form, "is_active": "on"})
    assert User.objects.get(pk=leo.pk).is_active
    admin_browser.post(f"/admin/org/user/{leo.pk}/change/", form)
    assert not User.objects.get(pk=leo.pk).is_active
    directory.add_member(GROUP_FINANCE_MEMBERS, "leo@example.com")

    directory_sync()

    assert not User.objects.get(pk=leo.pk).is_active
    assert AuditEvent.objects.filter(verb="user.deactivated", actor=platform_admin).count() == 1


def test_a_moment_of_throttling_is_waited_out_not_taken_for_an_outage(omar, emulator):
    emulator.inject(operation="graph", kind="429", count=2, retry_after_seconds=0)

    run = directory_sync()

    assert run.outcome == DirectorySyncRun.Outcome.SUCCEEDED
    assert is_platform_admin(omar)


def test_a_graph_outage_is_a_warning_on_the_operations_page(
    omar, emulator, client_for, platform_admin, settings
):
    settings.ENTRA_ENABLED = True
    emulator.inject(operation="graph", kind="503", retry_after_seconds=0)
    directory_sync()

    html = client_for(platform_admin).get("/operations/").content.decode()

    assert 'id="sync-warning"' in html
    assert "The last sync with Microsoft Entra ID failed" in html
    assert "Microsoft Graph answered 503" in html
