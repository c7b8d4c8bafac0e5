"""Grounding in a real browser: a lead of HR asks to ground the HR policy helper on the employee
handbook from the assistant's page; Hana, the handbook's owner, finds the request in her approvals
and approves it; the assistant's page then shows the handbook as active. SCREENSHOT_DIR, when set,
keeps a picture of each page."""

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from grounding.models import DataSet, Grounding
from org.models import Department, Membership, User
from provisioning.models import LandingZone, ModelDeployment
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture
from tests.factories import make_deployment


def keep_section(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.locator("#groundings").screenshot(path=str(Path(folder) / f"{name}.png"))


def test_a_lead_asks_the_owner_approves_and_the_assistant_page_shows_it(page: Page, demo_site):
    hr = Department.objects.get(slug="hr")
    hana = User.objects.get(email="hana@example.com")
    henrik = User.objects.create_user(
        "henrik@example.com", "switchyard-demo", first_name="Henrik", last_name="Holm"
    )
    Membership.objects.create(user=henrik, department=hr, role=Membership.Role.LEAD)
    zone = LandingZone.for_department(hr) or LandingZone.objects.first()
    helper = ModelDeployment.objects.filter(display_name="HR policy helper").first() or make_deployment(
        department=hr, display_name="HR policy helper"
    )
    helper.state = ModelDeployment.State.ACTIVE
    helper.save(update_fields=["state"])
    handbook = DataSet.objects.create(
        department=hr,
        name="Benefits handbook",
        description="Leave, expenses and remote work, as HR writes them for everyone.",
        owner=hana,
        landing_zone=zone,
    )

    # Henrik asks from the assistant's page.
    sign_in(page, demo_site, "henrik@example.com")
    page.goto(f"{demo_site}/deployments/{helper.pk}/")
    section = page.get_by_role("region", name="Grounded on")
    section.get_by_label("Data set", exact=True).select_option(value=str(handbook.pk))
    section.get_by_label("Why this assistant needs it").fill(
        "Employees ask about parental leave and expenses; answers should quote the handbook."
    )
    keep_section(page, "grounding-ask-form")
    section.get_by_role("button", name="Ask the data set's owner").click()
    expect(page.get_by_text("Asked Hana Hoshino to approve")).to_be_visible()
    section = page.get_by_role("region", name="Grounded on")
    expect(section.get_by_text("waits for Hana Hoshino")).to_be_visible()
    keep_section(page, "grounding-section-waiting")

    # Hana finds it in her approvals, with the data set, the assistant, who asked and why.
    page.context.clear_cookies()
    sign_in(page, demo_site, "hana@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Approvals")).click()
    row = page.get_by_role("row", name=re.compile("Benefits handbook"))
    expect(row).to_contain_text("HR policy helper")
    expect(row).to_contain_text("Henrik Holm")
    expect(row).to_contain_text("parental leave")
    keep_picture(page, "grounding-approvals-list")
    row.get_by_role("link", name="Review").click()
    expect(page.get_by_role("heading", name="Your decision (data owner)")).to_be_visible()
    expect(page.get_by_text("Waiting for Hana Hoshino (data owner)")).to_be_visible()
    keep_picture(page, "grounding-request-page")
    page.get_by_label(re.compile("Comment")).fill("Yes: the handbook is meant for everyone in the company.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("answers from Benefits handbook from the next question on")).to_be_visible()
    expect(page.get_by_text("Approved (data owner)")).to_be_visible()
    keep_picture(page, "grounding-request-page-approved")

    grounding = Grounding.objects.get(deployment=helper, data_set=handbook)
    assert grounding.state == Grounding.State.ACTIVE

    # Henrik's assistant page shows the handbook as active, with Remove.
    page.context.clear_cookies()
    sign_in(page, demo_site, "henrik@example.com")
    page.goto(f"{demo_site}/deployments/{helper.pk}/")
    section = page.get_by_role("region", name="Grounded on")
    active = section.get_by_role("row", name=re.compile("Benefits handbook"))
    expect(active).to_contain_text("HR")
    expect(active.get_by_role("button", name="Remove Benefits handbook")).to_be_visible()
    keep_section(page, "grounding-section-active")
    keep_picture(page, "grounding-deployment-page")
