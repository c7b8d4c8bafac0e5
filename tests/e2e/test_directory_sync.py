"""A leaver's access ends at the next directory sync, seen in two browsers: Leo (Finance, signed
in with Microsoft) is removed from his group in the emulated directory, an admin runs the sync
from Django admin, and Leo's next page is the sign-in page. SCREENSHOT_DIR, when set, keeps a
picture of the admin's list of runs."""

import re

import pytest
import requests
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect

from audit.models import AuditEvent
from org.directory_sync import directory_sync
from org.models import Department, Membership, User
from provisioning.emulator.identity_registry import (
    DEMO_PEOPLE_PASSWORD,
    GROUP_FINANCE_MEMBERS,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_MEMBERS,
)
from tests.directory_sync.conftest import directory as directory  # a fixture
from tests.directory_sync.conftest import signed_in_with_microsoft
from tests.e2e.test_deployment_gateway import keep_picture
from tests.portal.conftest import entra as entra  # a fixture: the emulator's Entra ID tenant


@pytest.fixture
def signed_in_browser(browser: Browser, demo_site):
    """Opens a browser holding a person's session (a password would be refused: Entra sign-in is
    on); each closes before the server stops, so no request of theirs outlives it."""
    contexts: list[BrowserContext] = []

    def open_for(user: User) -> Page:
        client = Client()
        client.force_login(user)
        context = browser.new_context(base_url=demo_site)
        contexts.append(context)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": demo_site}])
        return context.new_page()

    yield open_for
    for context in contexts:
        context.close()


def test_an_admin_runs_the_sync_and_the_leavers_browser_is_sent_to_sign_in(
    signed_in_browser, demo_site, directory, emulator
):
    for slug, group_id in (
        ("marketing", GROUP_MARKETING_MEMBERS),
        ("finance", GROUP_FINANCE_MEMBERS),
        ("hr", GROUP_HR_MEMBERS),
    ):
        Department.objects.filter(slug=slug).update(entra_member_group_id=group_id)
    leo = signed_in_with_microsoft("leo@example.com", {GROUP_FINANCE_MEMBERS})
    signed_in_with_microsoft("nina@example.com", {GROUP_MARKETING_MEMBERS, GROUP_HR_MEMBERS})
    admin = User.objects.get(email="admin@example.com")
    leo_page = signed_in_browser(leo)
    leo_page.goto("/")
    expect(leo_page.get_by_text("Leo", exact=False).first).to_be_visible()
    admin_page = signed_in_browser(admin)

    admin_page.goto("/admin/org/directorysyncrun/")
    expect(admin_page.get_by_role("heading", name="Select directory sync run to view")).to_be_visible()
    directory.remove_member(GROUP_FINANCE_MEMBERS, "leo@example.com")
    admin_page.get_by_role("button", name="Sync with Microsoft Entra ID now").click()
    expect(admin_page.get_by_text("Synced with Microsoft Entra ID: 2 people checked")).to_be_visible()
    expect(admin_page.locator(".messagelist")).to_contain_text("1 person deactivated, 1 session ended")

    leo_page.reload()
    expect(leo_page).to_have_url(f"{demo_site}/accounts/login/?next=/")

    # And when Graph is down, the list says so.
    assert requests.post(
        f"{emulator.control_url}/faults",
        json={"operation": "graph", "kind": "503", "retry_after_seconds": 0},
        timeout=10,
    ).ok
    admin_page.get_by_role("button", name="Sync with Microsoft Entra ID now").click()
    expect(admin_page.get_by_text("The sync failed: Microsoft Graph answered 503")).to_be_visible()
    keep_picture(admin_page, "directory-sync-runs")


def test_nina_signs_in_with_microsoft_again_after_the_sync_removed_one_of_her_groups(
    page: Page,
    demo_site,
    entra,
):
    def sign_in_as_nina() -> None:
        page.goto(f"{demo_site}/accounts/login/")
        page.get_by_role("button", name="Sign in with Microsoft Entra ID").click()
        page.get_by_label(re.compile("Nina Novak")).check()
        page.get_by_label("Password").fill(DEMO_PEOPLE_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(f"{demo_site}/")

    sign_in_as_nina()
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_role("heading", name="HR")).to_be_visible()
    response = requests.delete(
        f"{entra.control_url}/identity/groups/{GROUP_HR_MEMBERS}/members/nina@example.com", timeout=10
    )
    assert response.ok

    run = directory_sync()

    assert run.memberships_removed == 1
    assert run.people_deactivated == 0
    page.reload()  # still signed in, now in Marketing alone
    expect(page.get_by_role("heading", name="Welcome, Nina")).to_be_visible()
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_role("heading", name="HR")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    sign_in_as_nina()
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_role("heading", name="HR")).to_have_count(0)
    nina = User.objects.get(email="nina@example.com")
    assert set(Membership.objects.filter(user=nina).values_list("department__name", flat=True)) == {
        "Marketing"
    }
    assert AuditEvent.objects.filter(verb="auth.signed_in", actor=nina).count() == 2
