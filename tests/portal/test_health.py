import pytest
from django.test import Client

from portal.celery import app as celery_app


def test_health_is_public_and_reports_each_part(client: Client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.fixture
def broker_down(monkeypatch):
    # Nothing listens on port 1: the broker is unreachable, as when Redis is down. Celery reads
    # CELERY_BROKER_URL from the environment before its configuration, so set both.
    down = "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CELERY_BROKER_URL", down)
    monkeypatch.setitem(celery_app.conf, "broker_url", down)


def test_health_names_the_broker_when_it_is_down(client: Client, db, broker_down):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "broker": "unreachable"}
