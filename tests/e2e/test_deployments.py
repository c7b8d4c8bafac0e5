import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from org.models import Department
from provisioning.models import LandingZone, ModelDeployment, ProvisioningOperation
from tests.e2e.browser import sign_in
from tests.factories import make_account, make_deployment, make_operation

State = ModelDeployment.State
Step = ProvisioningOperation.Step
Status = ProvisioningOperation.Status


@pytest.fixture
def estate(demo_site) -> dict[str, ModelDeployment]:
    """The demo estate once a worker has provisioned the shared Company assistant, plus a failed
    and a still-provisioning deployment."""
    departments = {department.slug: department for department in Department.objects.all()}
    central = LandingZone.objects.get(slug="central")
    company = ModelDeployment.objects.get(display_name="Company assistant")
    company.account = make_account(landing_zone=central, region=company.region)
    company.state = State.ACTIVE
    company.save()
    for step in [Step.ENSURE_ACCOUNT, Step.ENSURE_CONTENT_FILTER, Step.GRANT_ROLE, Step.ENSURE_DEPLOYMENT]:
        make_operation(deployment=company, step=step, duration=timedelta(seconds=2.4))
    failed = make_deployment(
        department=departments["marketing"],
        display_name="Marketing copy assistant",
        landing_zone=LandingZone.objects.get(slug="marketing"),
        model_name="gpt-4o",
        capacity=50,
        state=State.FAILED,
        status_message="Sweden Central has 10K TPM of gpt-4o left; you asked for 50K.",
    )
    make_operation(deployment=failed, step=Step.ENSURE_ACCOUNT)
    make_operation(
        deployment=failed,
        step=Step.ENSURE_DEPLOYMENT,
        status=Status.FAILED,
        error="Sweden Central has 10K TPM of gpt-4o left; you asked for 50K.",
    )
    provisioning = make_deployment(
        department=departments["hr"],
        display_name="HR onboarding guide",
        landing_zone=central,
        state=State.PROVISIONING,
    )
    make_operation(deployment=provisioning, step=Step.ENSURE_ACCOUNT, status=Status.WAITING)
    return {"company": company, "failed": failed, "provisioning": provisioning}


def test_an_admin_filters_deployments_and_reads_an_operation_log(page: Page, demo_site, estate):
    sign_in(page, demo_site, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deployments").click()

    expect(page.get_by_role("heading", name="Deployments", exact=True)).to_be_visible()
    results = page.locator("#deployment-results")
    # The header and every live deployment: the three here and the demo departments' own.
    expect(results.get_by_role("row")).to_have_count(ModelDeployment.objects.live().count() + 1)
    shared_with = estate["company"].grants.count()
    expect(results).to_contain_text(f"Shared · {shared_with} departments")

    # The filter bar refreshes the table in place (htmx) and keeps the address shareable.
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("State").select_option("failed")
    expect(page).to_have_url(re.compile(r"[?&]state=failed"))
    expect(results.get_by_role("row")).to_have_count(2)
    expect(results.get_by_role("link", name="Marketing copy assistant")).to_be_visible()
    expect(results.get_by_text("Company assistant")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True

    results.get_by_role("link", name="Marketing copy assistant").click()
    expect(page).to_have_url(f"{demo_site}/deployments/{estate['failed'].pk}/")
    expect(page.get_by_role("heading", name="Marketing copy assistant")).to_be_visible()
    expect(page.locator("#deployment-state")).to_have_text("Failed")
    log = page.locator("#operation-log")
    expect(log.get_by_role("heading", name="Operation log")).to_be_visible()
    failed_step = log.get_by_role("row").filter(has_text="Ensure deployment")
    expect(failed_step).to_contain_text("Failed")
    expect(failed_step).to_contain_text("you asked for 50K")
    expect(log.get_by_role("row").filter(has_text="Ensure account")).to_contain_text("1.5 s")


def test_the_operation_log_follows_a_run_live_and_then_stops(page: Page, demo_site, estate):
    deployment = estate["provisioning"]
    sign_in(page, demo_site, "admin@example.com")
    page.goto(f"{demo_site}/deployments/{deployment.pk}/")
    expect(page.get_by_text("Live · refreshes every 2 s")).to_be_visible()
    expect(page.locator("#deployment-state")).to_have_text("Provisioning")

    # The worker finishes behind the page's back; the page catches up without a reload.
    make_operation(deployment=deployment, step=Step.ENSURE_DEPLOYMENT, duration=timedelta(seconds=3))
    ProvisioningOperation.objects.filter(deployment=deployment, status=Status.WAITING).update(
        status=Status.SUCCEEDED, finished_at=deployment.created_at + timedelta(seconds=5)
    )
    ModelDeployment.objects.filter(pk=deployment.pk).update(state=State.ACTIVE)

    log = page.locator("#operation-log")
    expect(log.get_by_role("row").filter(has_text="Ensure deployment")).to_be_visible(timeout=8000)
    expect(page.locator("#deployment-state")).to_have_text("Active")
    expect(page.get_by_text("Live · refreshes every 2 s")).to_have_count(0)

    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    page.wait_for_timeout(2500)
    assert polls == []


def test_on_a_phone_the_table_scrolls_inside_its_frame(page: Page, demo_site, estate):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, demo_site, "fiona@example.com")
    page.goto(f"{demo_site}/deployments/")

    wrapper = page.locator("#deployment-results .table-wrap")
    expect(wrapper).to_be_visible()
    sizes = wrapper.evaluate(
        "frame => ({frame: frame.clientWidth, table: frame.scrollWidth,"
        " page: document.documentElement.scrollWidth, viewport: window.innerWidth})"
    )
    assert sizes["table"] > sizes["frame"], sizes
    assert sizes["page"] <= sizes["viewport"], sizes
