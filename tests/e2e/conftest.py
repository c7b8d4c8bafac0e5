"""Browser journeys: Debian's Chromium, driven by Playwright, against uvicorn serving the ASGI app
on the test database (Django's live_server is WSGI and would buffer streamed answers)."""

import os
import shutil

import pytest
from django.core.management import call_command
from django.test import override_settings

from portal.asgi import application
from tests.servers import ThreadedServer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or os.environ.get("SWITCHYARD_REQUIRE_BROWSER"):
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: install Debian's chromium package")
    for item in items:
        if "e2e" in item.nodeid:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _test_database_before_the_browser(django_db_setup):
    """Create the test database before Playwright starts its event loop."""


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop running in the test thread, which Django takes
    # for an async context. The ORM calls here (fixtures, seeding) are plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }


@pytest.fixture
def asgi_server(transactional_db):
    """The portal served by uvicorn on a free port, for the length of one test."""
    # When it stops, the server's lifespan closes the chat's clients and lets go of the database
    # thread's connection, before the test database is flushed.
    with ThreadedServer(application) as server:
        yield server.url


@pytest.fixture
def demo_site(asgi_server):
    # The demo loads only in development; the site itself keeps the suite's settings.
    with override_settings(DEBUG=True):
        call_command("seed_demo")
    return asgi_server
