"""Callers of the automation API: the same person with a personal access token, with an Entra ID
access token from the emulator, or signed in to the browser session."""

import uuid
from typing import Any

import pytest
from django.test import Client

from api import auth
from api.tokens import access_token_create
from gateway.jwks import signing_keys
from org.models import User
from tests.gateway.entra_tokens import person_token

METHODS = ["access_token", "entra", "session"]


@pytest.fixture(autouse=True)
def _own_rate_counts(monkeypatch):
    """Counts of this test alone: ids start again with each test database, the cache does not."""
    monkeypatch.setattr(auth, "RATE_KEY_PREFIX", f"api:rate:test-{uuid.uuid4().hex}:")


@pytest.fixture
def anonymous() -> Client:
    return Client()


def token_for(user: User, *, name: str = "Test script", days: int = 90) -> str:
    _token, raw = access_token_create(user=user, name=name, expires_in_days=days, actor=None)
    return raw


def bearer(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def entra_keys(settings):
    """Each test starts with no cached key set of the emulator's, and may fetch it at once."""
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 0
    signing_keys.forget()
    yield
    signing_keys.forget()


@pytest.fixture(params=METHODS)
def api_as(request):
    """A client that calls as the given person, each of the three ways in turn."""
    method = request.param

    def client_for(user: User) -> Client:
        if method == "access_token":
            return bearer(token_for(user))
        if method == "entra":
            emulator = request.getfixturevalue("emulator")
            request.getfixturevalue("entra_keys")
            return bearer(person_token(emulator, user))
        client = Client()
        client.force_login(user)
        return client

    client_for.method = method  # type: ignore[attr-defined]
    return client_for


def assert_problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body
