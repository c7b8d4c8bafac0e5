"""Audit events as the actions of people (pages, the admin, sign-in), commands and the engine
leave them: who, what, which department, before and after, and where the request came from."""

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from audit.models import AuditEvent
from org.models import User
from tests.hostile import PageParser

# Where the test client's requests come from (Django's RequestFactory sets it).
CLIENT_IP = "127.0.0.1"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # allauth counts failed sign-ins in the cache, which outlives a test's database transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(platform_admin: User) -> User:
    return platform_admin


@pytest.fixture
def admin_client(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def admin_form(client: Client, url: str) -> dict[str, Any]:
    """The admin form on `url` as a browser would send it untouched: its fields and values."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    parser = PageParser(url)
    parser.feed(page.content.decode())
    # The page's own form: the one with the most fields (the sign-out button is a form too).
    form = max((form for form in parser.forms if form.method == "post"), key=lambda form: len(form.names))
    data: dict[str, Any] = {}
    for name, value in form.fields:
        if name in form.switches or name == "csrfmiddlewaretoken":
            continue
        data.setdefault(name, []).append(value)
    return {name: values if len(values) > 1 else values[0] for name, values in data.items()}


def only_event(verb: str) -> AuditEvent:
    events = list(AuditEvent.objects.filter(verb=verb).select_related("actor", "department"))
    assert len(events) == 1, [event.verb for event in AuditEvent.objects.all()]
    return events[0]


def assert_from_the_request(event: AuditEvent, response: Any) -> None:
    """The event names the request that made it, as the response told the client."""
    assert event.request_id
    assert event.request_id == response["X-Request-ID"]
    assert event.source_ip == CLIENT_IP
