"""A person makes a personal access token in a real browser: it is shown once, copied with one
click, works against the API, is listed by its prefix only, and stops working once revoked."""

import re

import requests
from playwright.sync_api import Browser, expect

from api.models import AccessToken
from gateway.secrets import key_hash
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture


def test_a_person_creates_a_token_copies_it_once_and_revokes_it(browser: Browser, demo_site):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, demo_site, "lena@example.com")
    page.get_by_title("Your profile: access tokens for the automation API").click()
    expect(page.get_by_role("heading", name="Access tokens", level=1)).to_be_visible()

    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text("Name the token after the script or tool that uses it.")).to_be_visible()
    page.get_by_label("Name").fill("Terraform pipeline")
    page.get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Create token").click()

    expect(page.get_by_text("This is the only time Switchyard shows it.")).to_be_visible()
    raw = page.get_by_label("The new access token").input_value()
    assert re.fullmatch(r"sy-pat-[A-Za-z0-9_-]{40}", raw)
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    keep_picture(page, "access-token-created")
    token = AccessToken.objects.get(secret_hash=key_hash(raw))

    me = requests.get(f"{demo_site}/api/v1/me", headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == "lena@example.com"

    page.get_by_role("link", name="Done: back to your tokens").click()
    row = page.get_by_role("row", name=re.compile("Terraform pipeline"))
    expect(row).to_contain_text(token.prefix)
    expect(row).to_contain_text("Active")
    assert raw not in page.content()
    keep_picture(page, "access-tokens-list")

    row.get_by_role("link", name="Revoke Terraform pipeline").click()
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_text("is revoked: calls with it are refused now.")).to_be_visible()
    refused = requests.get(f"{demo_site}/api/v1/me", headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    page.get_by_text(re.compile("Ended")).click()
    expect(page.get_by_role("row", name=re.compile("Terraform pipeline"))).to_contain_text("Revoked")
    keep_picture(page, "access-tokens-revoked")
    context.close()
