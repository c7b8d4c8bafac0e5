"""Screenshot every page as each demo user sees it, at desktop and phone width.

Usage: with `make run` serving, `.venv/bin/python scripts/screenshots.py [BASE_URL]`.
PNGs land in screenshots/ (not committed): look at them before you call a page finished.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(__file__).resolve().parent.parent / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = {
    None: ["/accounts/login/", "/accounts/password/reset/"],
    "admin@example.com": [
        "/",
        "/departments/",
        "/departments/marketing/",
        "/deployments/",
        "/deployments/1/",
        "/requests/",
        "/requests/2/",
        "/requests/3/",
        "/approvals/",
        "/admin/",
        "/admin/approvals/approvalpolicy/1/change/",
        "/admin/provisioning/modeldeployment/",
        "/nowhere/",
    ],
    "fiona@example.com": ["/", "/departments/", "/approvals/", "/requests/3/"],
    "sam@example.com": ["/", "/audit/", "/audit/1/"],
    "lena@example.com": [
        "/",
        "/departments/marketing/",
        "/departments/hr/",
        "/deployments/",
        "/requests/",
        "/requests/new/",
        "/requests/new/?kind=shared_access",
        "/requests/new/?kind=capacity_change",
        "/requests/new/?kind=decommission",
        "/requests/2/",
        "/requests/5/",
        "/data-sets/",
        "/data-sets/2/",
    ],
    "mark@example.com": ["/", "/departments/marketing/", "/chat/", "/data-sets/2/"],
    "hana@example.com": ["/", "/requests/4/", "/requests/4/edit/", "/requests/1/", "/data-sets/1/"],
}
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for email, paths in PAGES.items():
            for viewport_name, viewport in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
                page = context.new_page()
                if email:
                    page.goto(f"{BASE}/accounts/login/")
                    page.fill("input[name=login]", email)
                    page.fill("input[name=password]", "switchyard-demo")
                    page.click("form[action='/accounts/login/'] button[type=submit]")
                    page.wait_for_url(f"{BASE}/")
                for path in paths:
                    page.goto(f"{BASE}{path}")
                    who = (email or "anonymous").split("@")[0]
                    name = path.strip("/").replace("/", "_") or "home"
                    target = OUT / f"{who}-{name}-{viewport_name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    print(target.name)
                context.close()
        browser.close()


if __name__ == "__main__":
    main()
