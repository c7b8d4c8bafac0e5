"""The deployment page's gateway sections in a real browser: a lead reads how to call the
Company assistant; an admin sets its fallback and allows direct calls on Marketing's own
deployment. SCREENSHOT_DIR, when set, keeps a picture of each page."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from org.models import Department
from provisioning.models import Fallback, LandingZone, ModelDeployment
from tests.e2e.browser import sign_in
from tests.factories import make_account, make_deployment

State = ModelDeployment.State


def keep_picture(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def estate(demo_site) -> dict[str, ModelDeployment]:
    central = LandingZone.objects.get(slug="central")
    company = ModelDeployment.objects.get(display_name="Company assistant")
    company.account = make_account(landing_zone=central, region=company.region)
    company.state = State.ACTIVE
    company.save()
    backup = make_deployment(
        department=company.department,
        display_name="Company assistant (West Europe)",
        landing_zone=central,
        account=make_account(landing_zone=central, region="westeurope"),
        region="westeurope",
        model_name=company.model_name,
        model_version=company.model_version,
        sku=company.sku,
        shared_with=list(Department.objects.filter(access_grants__deployment=company)),
    )
    marketing = Department.objects.get(slug="marketing")
    marketing.entra_member_group_id = "6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f"
    marketing.save()
    own_zone = LandingZone.objects.get(slug="marketing")
    copy = make_deployment(
        department=marketing,
        display_name="Marketing copy assistant",
        landing_zone=own_zone,
        account=make_account(landing_zone=own_zone),
        model_name="gpt-4o",
        model_version="2024-08-06",
    )
    return {"company": company, "backup": backup, "copy": copy}


def test_an_admin_sets_a_fallback_and_a_lead_reads_how_to_call_it(page: Page, demo_site, estate):
    company, backup = estate["company"], estate["backup"]
    sign_in(page, demo_site, "admin@example.com")
    page.goto(f"{demo_site}/deployments/{company.pk}/")

    how = page.locator("#how-to-call")
    expect(how.get_by_role("heading", name="How to call it")).to_be_visible()
    expect(how.locator("#gateway-name")).to_have_text("company-assistant")
    expect(how).to_contain_text(f'base_url="{demo_site}/openai/v1"')

    fallbacks = page.locator("#fallbacks")
    expect(fallbacks).to_contain_text("None: a busy Azure answer goes back to the caller")
    fallbacks.get_by_label("Fallback 1").select_option(
        label=f"{backup.display_name} · westeurope · Global Standard"
    )
    fallbacks.get_by_role("button", name="Save fallbacks").click()

    expect(page.get_by_role("status")).to_contain_text(
        "Company assistant falls back to Company assistant (West Europe)."
    )
    expect(fallbacks.get_by_role("listitem").filter(has_text="West Europe")).to_contain_text(
        "Tried on 429/503"
    )
    assert list(Fallback.objects.filter(deployment=company).values_list("fallback", flat=True)) == [backup.pk]
    keep_picture(page, "deployment-admin-company-assistant")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, demo_site, "lena@example.com")
    page.goto(f"{demo_site}/deployments/{company.pk}/")
    expect(page.locator("#how-to-call")).to_contain_text("Marketing's API keys")
    expect(page.locator("#fallbacks")).to_contain_text("Company assistant (West Europe)")
    expect(page.get_by_role("button", name="Save fallbacks")).to_have_count(0)
    expect(page.get_by_role("button", name="Save access mode")).to_have_count(0)
    keep_picture(page, "deployment-lead-company-assistant")


def test_an_admin_allows_direct_calls_only_where_the_rule_allows(page: Page, demo_site, estate):
    sign_in(page, demo_site, "admin@example.com")
    page.goto(f"{demo_site}/deployments/{estate['company'].pk}/")
    access = page.locator("#access-mode")
    expect(access.get_by_role("radio", name="Direct calls allowed for Central IT's group")).to_be_disabled()
    expect(access).to_contain_text("Company assistant is a shared service")

    page.goto(f"{demo_site}/deployments/{estate['copy'].pk}/")
    access = page.locator("#access-mode")
    access.get_by_role("radio", name="Direct calls allowed for Marketing's group").check()
    access.get_by_role("button", name="Save access mode").click()

    expect(page.get_by_role("status")).to_contain_text("direct calls allowed for the department's group")
    expect(page.locator("#access-mode")).to_contain_text("Marketing's Entra ID group holds the data role")
    keep_picture(page, "deployment-admin-direct-access")
