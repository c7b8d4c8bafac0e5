import re

from playwright.sync_api import Page, expect


def sign_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill("switchyard-demo")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{base_url}/")


def test_a_lead_signs_in_sees_their_navigation_and_department_then_signs_out(page: Page, demo_site):
    sign_in(page, demo_site, "lena@example.com")

    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="My department")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    expect(page.get_by_role("heading", name="Welcome, Lena")).to_be_visible()
    expect(page.get_by_role("heading", name="Marketing")).to_be_visible()
    expect(page.get_by_text("Lead, Marketing").first).to_be_visible()

    nav.get_by_role("link", name="My department").click()
    expect(page).to_have_url(f"{demo_site}/departments/marketing/")
    expect(page.get_by_role("cell", name="mark@example.com")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(f"{demo_site}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_a_wrong_password_is_explained_on_the_page(page: Page, demo_site):
    page.goto(f"{demo_site}/accounts/login/")
    page.get_by_label("Work email").fill("lena@example.com")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page.get_by_role("alert")).to_contain_text("not correct")
    expect(page.get_by_label("Work email")).to_have_value("lena@example.com")


def test_another_departments_page_is_not_found_in_the_browser(page: Page, demo_site):
    sign_in(page, demo_site, "hana@example.com")

    response = page.goto(f"{demo_site}/departments/marketing/")

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="There is nothing here")).to_be_visible()
