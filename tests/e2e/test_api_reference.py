"""The API's interactive reference page works offline and within the CSP: its assets come from
Switchyard itself, and it lists the operations from the generated document."""

from playwright.sync_api import Browser, expect

from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture


def test_the_reference_page_lists_the_operations_and_tries_one(browser: Browser, demo_site):
    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if message.type == "error" else None)
    outside: list[str] = []
    page.on(
        "request",
        lambda request: outside.append(request.url) if not request.url.startswith(demo_site) else None,
    )
    sign_in(page, demo_site, "lena@example.com")

    page.goto(f"{demo_site}/api/v1/docs")

    expect(page.get_by_role("heading", name="Switchyard automation API")).to_be_visible()
    operation = page.locator("#operations-departments-api_departments_list_departments")
    expect(operation).to_be_visible()
    operation.get_by_role("button").first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200")
    keep_picture(page, "api-reference")
    assert not outside
    assert not [text for text in blocked if "Content Security Policy" in text], blocked
    page.close()
