"""The cost report in a browser: an admin opens last month, reads the chart and the department
table, and downloads the CSV."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.e2e.browser import sign_in


def test_an_admin_reads_last_month_and_downloads_the_department_csv(page: Page, demo_site):
    last_month = timezone.localdate().replace(day=1) - timedelta(days=1)
    sign_in(page, demo_site, "admin@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Costs").click()
    expect(page.get_by_role("heading", name=timezone.localdate().strftime("%B %Y"))).to_be_visible()

    page.get_by_role("link", name="Previous month").click()

    expect(page.get_by_role("heading", name=last_month.strftime("%B %Y"), exact=True)).to_be_visible()
    chart = page.locator("#daily-chart")
    expect(chart).to_have_attribute("data-ready", "1")
    assert chart.bounding_box()["height"] > 100
    departments = page.locator("#departments-table")
    for name in ["Central IT", "Marketing", "Finance", "HR", "Sales"]:
        expect(departments.get_by_role("rowheader", name=name, exact=True)).to_be_visible()
    total_on_page = page.locator("#total-spend").inner_text()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV: Departments").click()
    download = download_info.value
    assert download.suggested_filename == f"switchyard-costs-departments-{last_month:%Y-%m}.csv"
    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert {row["Department"] for row in rows[:-1]} == {"Central IT", "Marketing", "Finance", "HR", "Sales"}
    assert rows[-1]["Department"] == "Total"
    spend = sum(Decimal(row["Spend (USD)"]) for row in rows[:-1])
    assert spend == Decimal(rows[-1]["Spend (USD)"]) > 0
    assert total_on_page == f"${spend:,.2f}"
