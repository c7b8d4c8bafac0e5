import pytest
from django.test import Client

from portal.celery import app as celery_app


@pytest.fixture
def configured_broker(monkeypatch, settings):
    """The broker the settings name (Redis in CI, the filesystem broker otherwise), not the
    suite's in-memory one."""
    monkeypatch.setenv("CELERY_BROKER_URL", settings.CELERY_BROKER_URL)
    monkeypatch.setitem(celery_app.conf, "broker_url", settings.CELERY_BROKER_URL)


def test_health_is_public_and_reports_each_part(client: Client, db, emulator, configured_broker):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "azure": "ok"}


@pytest.fixture
def broker_down(monkeypatch):
    # Nothing listens on port 1: the broker is unreachable, as when Redis is down. Celery reads
    # CELERY_BROKER_URL from the environment before its configuration, so set both.
    down = "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CELERY_BROKER_URL", down)
    monkeypatch.setitem(celery_app.conf, "broker_url", down)


def test_health_names_the_broker_when_it_is_down(client: Client, db, emulator, broker_down):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "broker": "unreachable", "azure": "ok"}


def test_health_names_azure_when_the_emulator_is_down(client: Client, db, settings):
    settings.AZURE_MODE = "emulator"
    settings.AZURE_EMULATOR_URL = "http://127.0.0.1:1"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["azure"] == "unreachable"
