"""A lead makes an API key in a real browser: it is shown once, copied with one click, and from
then on the department page lists it by its prefix only."""

import re

from playwright.sync_api import Browser, expect

from gateway.models import ApiKey
from gateway.secrets import key_hash
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture


def test_a_lead_creates_a_key_sees_it_once_and_copies_it(browser: Browser, demo_site):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, demo_site, "lena@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My department").click()
    keys = page.get_by_role("region", name="API keys")
    expect(keys.get_by_role("row", name=re.compile("Marketing website assistant"))).to_contain_text("Active")

    keys.get_by_role("link", name="New API key").click()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Choose at least one deployment the key may call.")).to_be_visible()
    keep_picture(page, "api-key-form-errors")
    page.get_by_label("Name").fill("Newsletter bot")
    page.get_by_label(re.compile("Company assistant")).check()
    page.get_by_label("Requests per minute").fill("60")
    page.get_by_role("button", name="Create key").click()

    expect(page.get_by_text("This is the only time Switchyard shows it.")).to_be_visible()
    raw = page.get_by_label("The new API key").input_value()
    assert re.fullmatch(r"sy-[A-Za-z0-9_-]{40}", raw)
    expect(page.get_by_text('model="company-assistant"')).to_be_visible()
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    key = ApiKey.objects.get(secret_hash=key_hash(raw))

    page.get_by_role("link", name=re.compile("Done: back to Marketing")).click()
    row = keys.get_by_role("row", name=re.compile("Newsletter bot"))
    expect(row).to_contain_text(key.prefix)
    expect(row).to_contain_text("60 RPM")
    expect(row).to_contain_text("Active")
    assert raw not in page.content()
    # Reopening the department page later shows the prefix, never the key.
    page.reload()
    assert raw not in page.content()
    context.close()
