"""Gateway fixtures: deployments provisioned on the emulator the portal's way, department API keys,
and the portal served by uvicorn on the test database (committed data: the server's database
thread has its own connection), called with the unchanged openai SDKs."""

import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import openai
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.utils import timezone

from calls import database
from gateway.models import ApiKey
from gateway.secrets import new_key
from money.models import UsageRecord
from org.models import Department, Membership
from portal.asgi import application
from provisioning.catalog import prices_load_shipped
from provisioning.models import DataClassification, LandingZone, ModelDeployment
from tests.chat.conftest import provisioned
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department, make_deployment, make_landing_zone, make_user
from tests.servers import ThreadedServer

API_VERSION = "2024-10-21"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters and the gateway's versions live in the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def zone(transactional_db) -> LandingZone:
    # A test on committed data starts from an empty database: the shipped prices are loaded again.
    prices_load_shipped()
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-central-ai"
    )


@pytest.fixture
def gateway_emulator(emulator, settings):
    emulator.configure(lro_delay_seconds=0)
    settings.PROVISIONING_POLL_SECONDS = 0.01
    return emulator


@pytest.fixture
def assistant(gateway_emulator, zone, marketing) -> ModelDeployment:
    """Marketing's gpt-4o-mini with room enough (200K TPM) that only Switchyard's limits bind."""
    return provisioned(
        marketing, zone, display_name="Company assistant", name="company-assistant", capacity=200
    )


@pytest.fixture
def gateway(transactional_db):
    """The portal (gateway included) served by uvicorn on a free port, for one test."""
    with ThreadedServer(application) as server:
        yield server.url
    async_to_sync(database.close_connection)()


def make_key(
    department: Department,
    deployments: Iterable[ModelDeployment] = (),
    *,
    name: str = "Web shop",
    expires_in: timedelta = timedelta(days=90),
    **fields: Any,
) -> tuple[str, ApiKey]:
    """A department API key as the keys' service leaves it: the key itself, and its row."""
    raw, prefix, hashed = new_key()
    key = ApiKey.objects.create(
        department=department,
        name=name,
        prefix=prefix,
        secret_hash=hashed,
        expires_at=timezone.now() + expires_in,
        **fields,
    )
    key.deployments.set(list(deployments))
    return raw, key


@pytest.fixture
def marketing_key(assistant, marketing) -> str:
    raw, _key = make_key(marketing, [assistant])
    return raw


def openai_client(url: str, key: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/openai/v1", api_key=key, max_retries=0, **options)


def azure_client(url: str, key: str, **options: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=url, api_key=key, api_version=API_VERSION, max_retries=0, **options
    )


def wait_for(check: Callable[[], Any], *, seconds: float = 10.0) -> Any:
    """What `check` returns once it is truthy: a call is settled just after its answer went out."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def records(count: int = 1) -> list[UsageRecord]:
    """The usage records, once there are `count` of them."""
    found = wait_for(
        lambda: len(UsageRecord.objects.all()) >= count and list(UsageRecord.objects.order_by("pk"))
    )
    assert found, f"expected {count} usage records, found {UsageRecord.objects.count()}"
    return list(found)


# The keys' pages and services: deployments made by the factories, no emulator needed.


@pytest.fixture
def central_it(db) -> Department:
    return make_department(name="Central IT", slug="central-it", cost_center="CC-1000")


@pytest.fixture
def company_assistant(central_it, marketing, finance) -> ModelDeployment:
    """The shared Company assistant, granted to Marketing and Finance."""
    return make_deployment(
        department=central_it, display_name="Company assistant", shared_with=[marketing, finance]
    )


@pytest.fixture
def copywriter(marketing) -> ModelDeployment:
    """Marketing's own deployment."""
    return make_deployment(department=marketing, display_name="Campaign writer")


@pytest.fixture
def contracts(marketing) -> ModelDeployment:
    """Marketing's deployment for restricted data (signed customer contracts)."""
    deployment = make_deployment(department=marketing, display_name="Contract reader")
    deployment.data_classification = DataClassification.RESTRICTED
    deployment.save(update_fields=["data_classification"])
    return deployment


@pytest.fixture
def ledger(finance) -> ModelDeployment:
    """Finance's own deployment: not Marketing's to call."""
    return make_deployment(department=finance, display_name="Ledger analyst")


@pytest.fixture
def second_admin(db):
    from org.models import PlatformGroup

    return make_user(email="second-admin@example.com", first_name="Sam", platform_group=PlatformGroup.ADMINS)


@pytest.fixture
def marketing_co_lead(marketing):
    return make_user(email="co-lead@example.com", department=marketing, role=Membership.Role.LEAD)
