"""Where an event comes from: the request's id (the caller's, when it is a plain token) and
address, through the test client and through the ASGI application the servers run; a task's id
for what a Celery task writes."""

import re
import uuid

import pytest
import requests
from asgiref.sync import async_to_sync

from audit.models import AuditEvent
from calls import database
from portal.asgi import application
from provisioning.models import LandingZone
from provisioning.tasks import catalog_sync_task
from tests.audit_events.conftest import CLIENT_IP, only_event
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import PASSWORD, make_user
from tests.servers import ThreadedServer

NEW_ID = re.compile(r"[0-9a-f]{32}")


def sign_in(client, **headers):
    make_user(email="nora@example.com")
    return client.post(
        "/accounts/login/", {"login": "nora@example.com", "password": PASSWORD}, headers=headers
    )


@pytest.mark.django_db
def test_a_request_id_the_caller_gives_is_kept(client):
    response = sign_in(client, **{"X-Request-ID": "lb-7f3a.2026_12-04"})

    assert response["X-Request-ID"] == "lb-7f3a.2026_12-04"
    assert only_event("auth.signed_in").request_id == "lb-7f3a.2026_12-04"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hostile",
    ["x" * 65, "id with spaces", "<script>alert(1)</script>", "a,b", "ünïcode", "id;drop table", ""],
)
def test_a_hostile_request_id_is_replaced_by_a_fresh_one(client, hostile):
    response = sign_in(client, **{"X-Request-ID": hostile})

    assert NEW_ID.fullmatch(response["X-Request-ID"])
    assert only_event("auth.signed_in").request_id == response["X-Request-ID"]


@pytest.mark.django_db
def test_every_response_names_its_request_and_each_request_gets_its_own(client):
    first, second = client.get("/accounts/login/"), client.get("/accounts/login/")

    assert NEW_ID.fullmatch(first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
def test_without_proxies_a_forwarded_for_header_is_not_believed(client):
    sign_in(client, **{"X-Forwarded-For": "203.0.113.9"})

    assert only_event("auth.signed_in").source_ip == CLIENT_IP


@pytest.mark.django_db
def test_behind_a_proxy_the_address_it_saw_is_the_callers(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    # The caller wrote the first hop itself; the proxy appended the address it saw.
    sign_in(client, **{"X-Forwarded-For": "198.51.100.66, 203.0.113.9"})

    assert only_event("auth.signed_in").source_ip == "203.0.113.9"


@pytest.fixture
def portal(transactional_db):
    """The portal served by uvicorn through the ASGI application production runs."""
    with ThreadedServer(application) as server:
        yield server.url
    async_to_sync(database.close_connection)()


def test_through_the_asgi_application_a_sync_view_writes_the_requests_origin(portal):
    make_user(email="nora@example.com")
    browser = requests.Session()
    form = browser.get(f"{portal}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None

    response = browser.post(
        f"{portal}/accounts/login/",
        data={"login": "nora@example.com", "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{portal}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(verb="auth.signed_in")
    assert event.request_id == response.headers["X-Request-ID"]
    assert event.source_ip == "127.0.0.1"


@pytest.mark.django_db
def test_what_a_celery_task_writes_carries_the_tasks_id(emulator):
    zone = LandingZone.objects.create(
        name="Central IT shared",
        slug="central",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central-ai",
        allowed_regions=["swedencentral"],
    )
    task_id = str(uuid.uuid4())

    catalog_sync_task.apply(task_id=task_id)

    event = only_event("catalog.synced")
    assert (event.object_id, event.request_id, event.source_ip) == (str(zone.pk), task_id, None)
