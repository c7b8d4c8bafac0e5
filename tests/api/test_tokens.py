"""Personal access tokens: hashed, shown once, expiring, revocable, audited; a deactivated person's
tokens stop working; the command prints one on its last line."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from api.models import AccessToken
from api.tokens import (
    AccessTokenInvalid,
    AccessTokenRefused,
    access_token_create,
    access_token_revoke,
)
from audit.models import AuditEvent
from gateway.secrets import key_hash
from tests.api.conftest import assert_problem, bearer, token_for
from tests.factories import make_user


def test_only_the_hash_and_a_prefix_are_kept(marketing_lead):
    token, raw = access_token_create(user=marketing_lead, name="Terraform", actor=marketing_lead)

    assert raw.startswith("sy-pat-")
    assert len(raw) == len("sy-pat-") + 40
    assert token.prefix == raw[:15]
    assert token.secret_hash == key_hash(raw)
    assert raw not in str(AccessToken.objects.filter(pk=token.pk).values().get())
    assert token.expires_at - token.created_at == timedelta(days=90)


def test_creating_and_revoking_are_audited_without_the_secret(marketing_lead):
    token, raw = access_token_create(user=marketing_lead, name="Terraform", actor=marketing_lead)
    access_token_revoke(token=token, actor=marketing_lead)

    events = list(AuditEvent.objects.filter(object_type="api.accesstoken").order_by("sequence"))
    assert [e.verb for e in events] == ["access_token.created", "access_token.revoked"]
    assert all(e.actor == marketing_lead for e in events)
    for event in events:
        assert raw not in str(event.after)
        assert token.secret_hash not in str(event.after)
    assert events[1].after["revoked_at"] is not None


def test_a_token_lasts_from_one_to_365_days(marketing_lead):
    for days in (0, 366, -1):
        with pytest.raises(AccessTokenInvalid) as invalid:
            access_token_create(user=marketing_lead, name=f"Script {days}", expires_in_days=days, actor=None)
        assert "expires_in_days" in invalid.value.errors
    token, _raw = access_token_create(user=marketing_lead, name="Yearly", expires_in_days=365, actor=None)
    assert token.expires_at - token.created_at == timedelta(days=365)


@pytest.mark.parametrize("name", ["", "x" * 81, "two\nlines"])
def test_a_token_needs_a_one_line_name(marketing_lead, name):
    with pytest.raises(AccessTokenInvalid) as invalid:
        access_token_create(user=marketing_lead, name=name, actor=None)
    assert "name" in invalid.value.errors


def test_two_working_tokens_have_different_names(marketing_lead):
    access_token_create(user=marketing_lead, name="Terraform", actor=None)
    with pytest.raises(AccessTokenInvalid):
        access_token_create(user=marketing_lead, name="terraform", actor=None)


def test_nobody_makes_or_revokes_someone_elses_token(marketing_lead, marketing_member, platform_admin):
    with pytest.raises(AccessTokenRefused):
        access_token_create(user=marketing_lead, name="Sneaky", actor=marketing_member)
    token, _raw = access_token_create(user=marketing_lead, name="Mine", actor=None)
    with pytest.raises(AccessTokenRefused):
        access_token_revoke(token=token, actor=marketing_member)
    assert access_token_revoke(token=token, actor=platform_admin).revoked_at is not None


def test_an_expired_token_is_refused(marketing_lead):
    raw = token_for(marketing_lead)
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    body = assert_problem(bearer(raw).get("/api/v1/me"), 401)

    assert "expired" in body["detail"]


def test_a_revoked_token_is_refused(marketing_lead):
    raw = token_for(marketing_lead)
    access_token_revoke(token=AccessToken.objects.get(), actor=marketing_lead)

    body = assert_problem(bearer(raw).get("/api/v1/me"), 401)

    assert "revoked" in body["detail"]


def test_a_deactivated_persons_tokens_stop_working(marketing_lead):
    raw = token_for(marketing_lead)
    assert bearer(raw).get("/api/v1/me").status_code == 200
    marketing_lead.is_active = False
    marketing_lead.save(update_fields=["is_active"])

    body = assert_problem(bearer(raw).get("/api/v1/me"), 401)

    assert "deactivated" in body["detail"]


def test_a_made_up_token_is_refused(db):
    body = assert_problem(bearer("sy-pat-" + "a" * 40).get("/api/v1/me"), 401)
    assert "Unknown access token" in body["detail"]


def test_a_gateway_key_is_told_where_it_belongs(db):
    body = assert_problem(bearer("sy-" + "a" * 40).get("/api/v1/me"), 401)
    assert "gateway" in body["detail"]


def test_a_bearer_token_is_judged_alone_even_with_a_session(marketing_lead):
    client = Client(headers={"Authorization": "Bearer sy-pat-forged"})
    client.force_login(marketing_lead)

    assert_problem(client.get("/api/v1/me"), 401)


def test_last_used_is_written_at_most_once_a_minute(marketing_lead, django_assert_num_queries):
    raw = token_for(marketing_lead)
    client = bearer(raw)
    client.get("/api/v1/me")
    first = AccessToken.objects.get().last_used_at
    assert first is not None

    client.get("/api/v1/me")
    assert AccessToken.objects.get().last_used_at == first

    AccessToken.objects.update(last_used_at=first - timedelta(seconds=61))
    client.get("/api/v1/me")
    assert AccessToken.objects.get().last_used_at > first


def test_people_list_and_revoke_their_tokens_through_the_api(marketing_lead, marketing_member):
    raw = token_for(marketing_lead, name="Pipeline")
    other = AccessToken.objects.create(
        user=marketing_lead,
        name="Old",
        prefix="sy-pat-old00000",
        secret_hash="0" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )
    client = bearer(raw)

    listed = client.get("/api/v1/me/tokens").json()
    assert {t["name"] for t in listed} == {"Pipeline", "Old"}
    assert all("secret_hash" not in t for t in listed)

    assert_problem(bearer(token_for(marketing_member)).delete(f"/api/v1/me/tokens/{other.pk}"), 404)
    response = client.delete(f"/api/v1/me/tokens/{other.pk}")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert AuditEvent.objects.filter(verb="access_token.revoked", object_id=str(other.pk)).count() == 1


def test_a_session_write_needs_the_csrf_token(marketing_lead):
    token, _raw = access_token_create(user=marketing_lead, name="Pipeline", actor=None)
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketing_lead)

    body = assert_problem(client.delete(f"/api/v1/me/tokens/{token.pk}"), 403)
    assert "CSRF" in body["title"]
    token.refresh_from_db()
    assert token.revoked_at is None

    client.get("/profile/tokens/")  # the page sets the CSRF cookie, as a browser gets it
    response = client.delete(
        f"/api/v1/me/tokens/{token.pk}", headers={"X-CSRFToken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 200, response.content


def test_a_bearer_write_needs_no_csrf_token(marketing_lead):
    raw = token_for(marketing_lead)
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})

    response = client.delete(f"/api/v1/me/tokens/{AccessToken.objects.get().pk}")

    assert response.status_code == 200


# The command ------------------------------------------------------------------------------------


def test_the_command_prints_a_working_token_on_its_last_line(marketing_lead):
    out = StringIO()
    call_command(
        "create_access_token", "--user", "LEAD@example.com", "--name", "CI", "--days", "7", stdout=out
    )

    raw = out.getvalue().strip().splitlines()[-1]
    token = AccessToken.objects.get(secret_hash=key_hash(raw))
    assert token.user == marketing_lead
    assert token.expires_at - token.created_at == timedelta(days=7)
    assert bearer(raw).get("/api/v1/me").json()["email"] == "lead@example.com"
    assert AuditEvent.objects.get(verb="access_token.created").actor is None


def test_the_command_explains_what_is_wrong(marketing_lead):
    with pytest.raises(CommandError, match="No person"):
        call_command("create_access_token", "--user", "nobody@example.com", "--name", "CI")
    with pytest.raises(CommandError, match="1 to 365 days"):
        call_command("create_access_token", "--user", "lead@example.com", "--name", "CI", "--days", "400")
    gone = make_user(email="gone@example.com")
    gone.is_active = False
    gone.save()
    with pytest.raises(CommandError, match="deactivated"):
        call_command("create_access_token", "--user", "gone@example.com", "--name", "CI")
