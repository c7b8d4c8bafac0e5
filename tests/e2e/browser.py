"""Steps every browser journey shares."""

from playwright.sync_api import Page, expect


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill("switchyard-demo")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{base_url}/")
