"""The request journey in a real browser, with a real Celery worker provisioning on the emulator:
Lena asks for gpt-4o-mini at 20K TPM, the admin approves, the worker provisions, Lena's request
page turns to completed on its own and the deployment is listed for Marketing."""

import re

import pytest
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect

from approvals.models import DeploymentRequest
from provisioning.catalog import catalog_sync_all
from provisioning.models import ModelDeployment
from tests.e2e.browser import sign_in
from tests.workers import Worker, database_url


@pytest.fixture
def live_system(asgi_server, broker, emulator, settings):
    """The portal, a worker on a real broker, and the emulator, with the demo data loaded."""
    settings.PROVISIONING_POLL_SECONDS = 0.2
    worker = Worker(
        {
            **broker,
            "DATABASE_URL": database_url(),
            "AZURE_MODE": "emulator",
            "AZURE_EMULATOR_URL": emulator.url,
            "PROVISIONING_POLL_SECONDS": "0.2",
        }
    )
    worker.start()
    try:
        # Browser tests flush the database after each test, taking the prices a migration loaded.
        call_command("load_prices")
        with override_settings(DEBUG=True):  # the demo loads only in development
            call_command("seed_demo")
        catalog_sync_all()
        yield asgi_server
    finally:
        worker.stop()


def test_a_lead_requests_a_deployment_an_admin_approves_and_the_worker_provisions_it(
    browser: Browser, live_system
):
    lena = browser.new_page()
    request_url = _lena_submits_a_request(lena, live_system)

    admin = browser.new_page()
    sign_in(admin, live_system, "admin@example.com")
    approvals = admin.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Approvals"))
    expect(approvals).to_contain_text("2")  # Lena's and the demo's waiting request
    approvals.click()
    row = admin.get_by_role("row", name=re.compile("Marketing copy assistant"))
    row.get_by_role("link", name="Review").click()
    admin.get_by_label(re.compile("Comment")).fill("Approved for the spring campaign.")
    admin.get_by_role("button", name="Approve").click()
    expect(admin.get_by_text(re.compile(r"Request #\d+ approved\."))).to_be_visible()

    # Lena's page follows approval and provisioning without a reload.
    expect(lena.locator("#request-state")).to_have_text("Completed", timeout=60_000)
    expect(lena.get_by_text("Marketing copy assistant is live")).to_be_visible()
    timeline = lena.get_by_role("list").filter(has_text="Handed to provisioning")
    for step in ["Approved (platform admin)", "Ensure account", "Ensure deployment", "Completed"]:
        expect(timeline.get_by_text(step, exact=True)).to_be_visible()

    lena.get_by_role("navigation", name="Main").get_by_role("link", name="Deployments").click()
    row = lena.get_by_role("row", name=re.compile("Marketing copy assistant"))
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("Marketing")
    request = DeploymentRequest.objects.get(display_name="Marketing copy assistant")
    assert request.state == DeploymentRequest.State.COMPLETED
    assert request.deployment.state == ModelDeployment.State.ACTIVE
    assert request.deployment.landing_zone.slug == "marketing"
    assert lena.url.startswith(live_system)
    assert request_url.endswith(f"/requests/{request.pk}/")


def _lena_submits_a_request(lena: Page, live_system: str) -> str:
    """Lena fills the form, sees it priced live, and submits it: its page says who must approve."""
    sign_in(lena, live_system, "lena@example.com")
    lena.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    lena.get_by_role("link", name="New request").first.click()
    expect(lena.get_by_role("heading", name="New deployment")).to_be_visible()

    estimate = lena.get_by_role("complementary", name="Estimate")
    expect(estimate.get_by_text("Quota left")).to_be_visible()
    lena.get_by_label("Model", exact=True).select_option("gpt-4o-mini")
    lena.get_by_label("SKU").select_option("GlobalStandard")
    lena.get_by_label("Capacity (K TPM)").fill("20")
    lena.get_by_label("Input tokens a month (millions)").fill("60")
    lena.get_by_label("Output tokens a month (millions)").fill("20")
    lena.get_by_label("Output tokens a month (millions)").press("Tab")
    # 60M input x $0.15 + 20M output x $0.60, priced live as the fields change.
    expect(estimate.get_by_text("$21.00")).to_be_visible()
    expect(estimate.get_by_text(re.compile(r"% of budget"))).to_be_visible()
    lena.get_by_label("Name in the chat").fill("Marketing copy assistant")
    lena.get_by_label("Purpose and use case").fill("Drafting campaign copy in the brand voice.")
    lena.get_by_role("button", name="Submit for approval").click()

    expect(lena).to_have_url(re.compile(r"/requests/\d+/$"))
    expect(lena.get_by_text("is submitted; the approvers have been told")).to_be_visible()
    expect(lena.locator("#request-state")).to_have_text("Waiting for approval")
    approvals_card = lena.get_by_role("region", name="Approvals")
    expect(
        approvals_card.get_by_text("20K TPM is more than the 10K TPM approved automatically")
    ).to_be_visible()
    return lena.url
