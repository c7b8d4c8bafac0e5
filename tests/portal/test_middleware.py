"""Django's security, CSRF and clickjacking middleware run on the event loop under ASGI
(`portal.runtime.middleware`): they still protect every response, and Django's deploy checks still see
them."""

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from portal.runtime.middleware import check_middleware_settings
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_pages_served_on_the_event_loop_carry_the_security_headers():
    response = async_to_sync(AsyncClient().get)("/accounts/login/")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_a_post_without_the_csrf_token_is_refused_on_the_event_loop(marketing):
    person = make_user(email="mark@example.com", department=marketing)
    client = AsyncClient(enforce_csrf_checks=True)
    client.force_login(person)

    response = async_to_sync(client.post)("/chat/new", {"deployment": "1"})

    assert response.status_code == 403


def test_the_deploy_checks_look_at_the_event_loop_middleware(settings):
    settings.SECURE_HSTS_SECONDS = 0
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"

    ids = {message.id for message in check_middleware_settings()}

    assert {"security.W004", "security.W019"} <= ids
    assert not any(id_.startswith("portal.") for id_ in ids)


def test_the_deploy_checks_report_a_missing_security_middleware(settings):
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if "Security" not in path]

    ids = {message.id for message in check_middleware_settings()}

    assert "portal.security.W001" in ids
