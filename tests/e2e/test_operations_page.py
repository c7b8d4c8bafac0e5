"""The operations page in a browser, on the demo estate (its last week of calls as minute rows):
an admin opens it from the navigation, sees the failed directory sync as a warning, the idle
provisioned pipeline marked, the calls the test made in the last hour, and switches to the week.
SCREENSHOT_DIR, when set, keeps a picture of each page."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from calls.latency import bucket_index, empty_buckets
from calls.models import CallMinute
from org.models import Department, DirectorySyncRun
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture
from tests.factories import make_deployment


def test_an_admin_reads_the_service_health_and_switches_the_window(page: Page, demo_site):
    marketing = Department.objects.get(slug="marketing")
    support = make_deployment(department=marketing, display_name="Support desk assistant")
    first_tokens = empty_buckets()
    first_tokens[bucket_index(320)] = 12
    CallMinute.objects.create(
        minute=timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5),
        deployment=support,
        department=marketing,
        source=CallMinute.Source.CHAT,
        calls=12,
        answered=11,
        upstream_errors=1,
        throttled=3,
        first_token_ms=first_tokens,
    )
    started = timezone.now() - timedelta(minutes=4)
    DirectorySyncRun.objects.create(
        started_at=started - timedelta(minutes=15),
        finished_at=started - timedelta(minutes=15) + timedelta(seconds=30),
        outcome=DirectorySyncRun.Outcome.SUCCEEDED,
        people_checked=14,
        memberships_added=2,
    )
    DirectorySyncRun.objects.create(
        started_at=started,
        finished_at=started + timedelta(seconds=20),
        outcome=DirectorySyncRun.Outcome.FAILED,
        error="Microsoft Graph could not be reached (connection timed out)",
    )

    sign_in(page, demo_site, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Service health")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("The last sync with Microsoft Entra ID failed")
    expect(page.get_by_role("alert")).to_contain_text("Microsoft Graph could not be reached")
    pipeline = page.locator("#ptu-table tbody tr").filter(has_text="Document pipeline (PTU)")
    expect(pipeline).to_contain_text("Idle")
    expect(page.get_by_role("link", name="Last 24 hours")).to_have_attribute("aria-current", "page")
    keep_picture(page, "operations")

    page.get_by_role("navigation", name="Time window").get_by_role("link", name="Last hour").click()
    expect(page).to_have_url(f"{demo_site}/operations/?window=hour")
    support_row = page.locator("#deployments-table tbody tr").filter(has_text="Support desk assistant")
    expect(support_row.locator("td").nth(0)).to_have_text("12")
    expect(support_row.locator("td").nth(5)).to_contain_text("8.3%")  # 1 error in 12 calls
    expect(support_row.locator("td").nth(6)).to_contain_text("25.0%")  # 3 429s in 12 calls

    page.get_by_role("navigation", name="Time window").get_by_role("link", name="Last 7 days").click()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Deployments · last 7 days")).to_be_visible()
    campaign = page.locator("#deployments-table tbody tr").filter(has_text="Campaign writer")
    expect(campaign.locator("td").nth(0)).not_to_have_text("0")
    keep_picture(page, "operations-week")

    page.set_viewport_size({"width": 420, "height": 900})
    keep_picture(page, "operations-phone")

    page.goto(f"{demo_site}/operations/?window=fortnight")
    expect(page.get_by_role("alert")).to_contain_text(
        "Choose the last hour, the last 24 hours or the last 7 days."
    )
    keep_picture(page, "operations-bad-window")
