"""Signing in and out: with a password, with Microsoft Entra ID, and failing to."""

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from org.models import User
from tests.audit_events.conftest import assert_from_the_request, only_event
from tests.entra import entra_callback, portal_client
from tests.factories import PASSWORD, make_user
from tests.portal.conftest import entra  # noqa: F401  (the emulator's Entra ID tenant)

pytestmark = pytest.mark.django_db


def sign_in(client: Client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_signing_in_with_a_password_is_audited(client):
    nora = make_user(email="nora@example.com")

    response = sign_in(client, "nora@example.com")

    assert response.status_code == 302
    event = only_event("auth.signed_in")
    assert (event.actor, event.actor_kind, event.actor_label) == (nora, "person", "nora@example.com")
    assert (event.object_type, event.object_id) == ("org.user", str(nora.pk))
    assert event.department is None
    assert_from_the_request(event, response)


def test_signing_in_with_entra_id_is_audited(entra):  # noqa: F811
    response = entra_callback(portal_client(), "nina@example.com")

    assert response.status_code == 302
    nina = User.objects.get(email="nina@example.com")
    event = only_event("auth.signed_in")
    assert (event.actor, event.actor_kind, event.object_id) == (nina, "person", str(nina.pk))
    assert_from_the_request(event, response)


def test_a_failed_sign_in_keeps_the_address_tried_and_never_the_password(client):
    nora = make_user(email="nora@example.com")

    response = sign_in(client, "nora@example.com", "a-wrong-guess-of-hers")

    assert response.status_code == 200  # the form again, with its error
    event = only_event("auth.sign_in_failed")
    assert (event.actor, event.actor_kind, event.actor_label) == (None, "system", "nora@example.com")
    assert (event.object_type, event.object_id) == ("org.user", str(nora.pk))
    assert event.after == {"email": "nora@example.com"}
    assert_from_the_request(event, response)
    stored = json.dumps([list(row) for row in AuditEvent.objects.values_list()], default=str)
    assert "a-wrong-guess-of-hers" not in stored
    assert "*****" not in stored  # not even masked


def test_a_failed_sign_in_as_nobody_known_keeps_the_address_tried(client):
    response = sign_in(client, "nobody@example.com", "guess")

    event = only_event("auth.sign_in_failed")
    assert event.after == {"email": "nobody@example.com"}
    assert event.object_type == "org.user"
    assert_from_the_request(event, response)


def test_signing_out_is_audited(client):
    nora = make_user(email="nora@example.com")
    sign_in(client, "nora@example.com")

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    event = only_event("auth.signed_out")
    assert (event.actor, event.actor_kind, event.object_id) == (nora, "person", str(nora.pk))
    assert_from_the_request(event, response)


def test_a_failed_entra_id_sign_in_is_audited(entra):  # noqa: F811
    client = Client()
    client.post("/accounts/oidc/entra/login/")

    # A callback whose state this browser never started: a forged or replayed answer.
    response = client.get("/accounts/oidc/entra/login/callback/", {"code": "auth-code", "state": "forged"})

    assert "_auth_user_id" not in client.session
    event = only_event("auth.sign_in_failed")
    assert (event.actor, event.actor_kind) == (None, "system")
    assert event.note.startswith("Microsoft Entra ID sign-in failed")
    assert_from_the_request(event, response)
