"""Sign-in with Microsoft in a real browser, offline: the portal's sign-in page, the emulator's
Entra ID sign-in page, the authorization code flow with PKCE, state and nonce, and back.
SCREENSHOT_DIR, when set, keeps a picture of each page."""

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from audit.models import AuditEvent
from org.models import Membership, User
from provisioning.emulator.identity_registry import DEMO_PEOPLE_PASSWORD
from tests.portal.conftest import entra  # noqa: F401  (the emulator's Entra ID tenant)


def keep_picture(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_nina_signs_in_with_microsoft_and_lands_in_her_two_departments(
    page: Page,
    demo_site,
    entra,  # noqa: F811
    settings,
):
    settings.PASSWORD_SIGN_IN_WITH_ENTRA = True  # as `make run` has it: the demo passwords stay
    settings.DEBUG = True
    page.goto(f"{demo_site}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_label("Work email")).to_be_visible()
    keep_picture(page, "sign-in-with-microsoft-1-portal")

    page.get_by_role("button", name="Sign in with Microsoft Entra ID").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(entra.url)}/[0-9a-f-]+/oauth2/v2\.0/authorize\?"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("to continue to Switchyard")).to_be_visible()
    page.get_by_label(re.compile("Nina Novak")).check()
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Your account or password is incorrect.")
    keep_picture(page, "sign-in-with-microsoft-2-wrong-password")

    page.get_by_label("Password").fill(DEMO_PEOPLE_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page).to_have_url(f"{demo_site}/")
    expect(page.get_by_role("heading", name="Welcome, Nina")).to_be_visible()
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_role("heading", name="HR")).to_be_visible()
    keep_picture(page, "sign-in-with-microsoft-3-home")
    nina = User.objects.get(email="nina@example.com")
    assert {m.department.name for m in Membership.objects.filter(user=nina).select_related("department")} == {
        "Marketing",
        "HR",
    }
    assert AuditEvent.objects.filter(verb="auth.signed_in", actor=nina).count() == 1


def test_cancelling_on_microsofts_page_comes_back_signed_out(page: Page, demo_site, entra):  # noqa: F811
    page.goto(f"{demo_site}/accounts/login/")
    page.get_by_role("button", name="Sign in with Microsoft Entra ID").click()

    page.get_by_role("button", name="Cancel").click()

    expect(page.get_by_role("heading", name="Sign-in cancelled")).to_be_visible()
    keep_picture(page, "sign-in-with-microsoft-4-cancelled")
    page.get_by_role("link", name="Back to sign-in").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_with_more_groups_than_the_token_holds_nina_still_lands_in_both(
    page: Page,
    demo_site,
    entra,  # noqa: F811
):
    entra.configure(groups_claim_limit=1)  # the ID token carries the overage claim instead
    page.goto(f"{demo_site}/accounts/login/")
    page.get_by_role("button", name="Sign in with Microsoft Entra ID").click()
    page.get_by_label(re.compile("Nina Novak")).check()
    page.get_by_label("Password").fill(DEMO_PEOPLE_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page).to_have_url(f"{demo_site}/")
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_role("heading", name="HR")).to_be_visible()
