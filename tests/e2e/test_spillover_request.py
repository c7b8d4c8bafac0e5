"""Asking for provisioned throughput with a spillover twin, in a real browser: the checkbox appears
once a provisioned SKU is chosen, the estimate says what the twin costs, and the request page
says it was asked. SCREENSHOT_DIR, when set, keeps a picture of each page."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from approvals.models import DeploymentRequest
from org.models import Department
from provisioning.catalog import catalog_sync_all
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture

DANGER = "rgb(180, 35, 24)"  # --color-danger


@pytest.fixture
def catalog(demo_site, emulator):
    call_command("load_prices")  # browser tests flush the rows a migration loaded
    catalog_sync_all()
    Department.objects.filter(slug="marketing").update(monthly_budget=200_000)
    return demo_site


def test_a_lead_asks_for_ptu_with_a_spillover_twin(page: Page, catalog):
    sign_in(page, catalog, "lena@example.com")
    page.goto(f"{catalog}/requests/new/?kind=new_deployment")
    twin = page.get_by_label("Add a pay-as-you-go spillover twin")
    estimate = page.get_by_role("complementary", name="Estimate")

    page.get_by_label("Model", exact=True).select_option("gpt-4o")
    expect(twin).to_have_count(0)  # pay-as-you-go: nothing to spill over to
    page.get_by_label("SKU").select_option("ProvisionedManaged")
    expect(twin).to_be_visible()
    capacity = page.get_by_label("Capacity (PTU)")
    capacity.fill("7")  # not a step of 50: the field says so, in red
    expect(page.locator("#id_capacity_errors")).to_be_visible()
    expect(capacity).to_have_css("border-color", DANGER)
    capacity.fill("50")
    expect(page.locator("#id_capacity_errors")).to_have_count(0)
    expect(capacity).not_to_have_css("border-color", DANGER)  # the red goes with the message
    twin.check()

    expect(estimate).to_contain_text(
        re.compile(r"Spillover twin: Standard, 10K TPM, pay-as-you-go: \$[\d.]+ per million")
    )
    page.get_by_label("Name in the chat").fill("Launch copy")
    page.get_by_label("Purpose and use case").fill("Campaign copy at launch peaks, reserved throughput.")
    keep_picture(page, "request-form-spillover-twin")
    page.get_by_role("button", name="Submit for approval").click()

    expect(page).to_have_url(re.compile(r"/requests/\d+/$"))
    expect(
        page.get_by_text("A pay-as-you-go twin takes the calls that find the provisioned throughput full")
    ).to_be_visible()
    assert DeploymentRequest.objects.get(display_name="Launch copy").spillover_twin is True
    keep_picture(page, "request-page-spillover-twin")
