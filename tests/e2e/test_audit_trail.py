"""The audit trail in a browser: an admin narrows it to one department, opens an event and reads
what changed, and downloads the filtered trail. SCREENSHOT_DIR, when set, keeps a picture of
each page."""

import csv
import io

from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.services import audit_record
from org.models import Department, User
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture


def test_an_admin_filters_by_department_and_reads_what_changed(page: Page, demo_site):
    admin = User.objects.get(email="admin@example.com")
    marketing = Department.objects.get(slug="marketing")
    hr = Department.objects.get(slug="hr")
    audit_record(
        actor=admin,
        verb="department.budget_changed",
        target=hr,
        department=hr,
        before={"monthly_budget": "2000.00"},
        after={"monthly_budget": "2200.00"},
    )
    audit_record(
        actor=admin,
        verb="department.budget_changed",
        target=marketing,
        department=marketing,
        before={
            "monthly_budget": "5000.00",
            "name": "Marketing",
            "limits": {"tpm": 20, "regions": ["swedencentral"]},
        },
        after={
            "monthly_budget": "7500.00",
            "name": "Marketing",
            "limits": {"tpm": 20, "regions": ["swedencentral"]},
        },
        note="Campaign season",
    )

    sign_in(page, demo_site, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    keep_picture(page, "audit-trail")

    page.get_by_label("Department").select_option(label="Marketing")
    page.get_by_label("Action").select_option(label="Department: budget changed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(
        f"{demo_site}/audit/?actor=&verb=department.budget_changed&department=marketing&target=&from=&to=&q="
    )
    events = page.locator("table.audit-events tbody tr")
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("Marketing")
    expect(events.first).to_contain_text("admin@example.com")
    keep_picture(page, "audit-trail-marketing")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"switchyard-audit-{timezone.localdate():%Y-%m-%d}.csv"
    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert [(row["verb"], row["department"], row["target"]) for row in rows] == [
        ("department.budget_changed", "marketing", "Marketing")
    ]

    events.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Department: budget changed")).to_be_visible()
    changes = page.locator("table.audit-diff")
    changed = changes.get_by_role("row").filter(has=page.get_by_role("rowheader", name="monthly_budget"))
    expect(changed).to_contain_text("Changed")
    expect(changed).to_contain_text("5000.00")
    expect(changed).to_contain_text("7500.00")
    expect(changed).to_have_class("is-changed")
    unchanged = changes.get_by_role("row").filter(has=page.get_by_role("rowheader", name="limits"))
    expect(unchanged).not_to_contain_text("Changed")
    expect(page.get_by_text("1 of 3 values changed")).to_be_visible()
    keep_picture(page, "audit-event")

    page.goto(f"{demo_site}/audit/?from=2026-11-20&to=2026-11-01&department=nowhere")
    expect(page.get_by_role("alert").first).to_contain_text("The end date is before the start date.")
    expect(page.get_by_role("alert").first).to_contain_text("There is no such department.")
    keep_picture(page, "audit-trail-bad-filters")
