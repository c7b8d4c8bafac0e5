"""The profile page where people make, list and revoke their access tokens: anonymous -> sign-in;
another person's token -> 404; the owner -> the page."""

import re

from django.test import Client

from api.models import AccessToken
from api.tokens import access_token_create
from audit.models import AuditEvent
from gateway.secrets import key_hash


def test_anonymous_is_sent_to_sign_in(db):
    for path in ("/profile/tokens/", "/profile/tokens/1/revoke/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_user_menu_links_to_the_page(client_for, marketing_member):
    page = client_for(marketing_member).get("/").content.decode()
    assert 'href="/profile/tokens/"' in page


def test_someone_elses_token_is_a_404(client_for, marketing_lead, marketing_member):
    token, _raw = access_token_create(user=marketing_lead, name="Pipeline", actor=None)
    client = client_for(marketing_member)

    assert client.get(f"/profile/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/profile/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_person_makes_a_token_sees_it_once_and_then_only_its_prefix(client_for, marketing_member):
    client = client_for(marketing_member)

    response = client.post("/profile/tokens/", {"name": "Reporting script", "expires_in_days": "30"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'value="(sy-pat-[^"]+)"', response.content.decode()).group(1)
    token = AccessToken.objects.get(secret_hash=key_hash(raw))
    assert (token.user, token.name) == (marketing_member, "Reporting script")
    assert AuditEvent.objects.filter(verb="access_token.created", actor=marketing_member).count() == 1

    listing = client.get("/profile/tokens/").content.decode()
    assert token.prefix in listing
    assert raw not in listing


def test_the_form_says_what_is_wrong(client_for, marketing_member):
    client = client_for(marketing_member)

    response = client.post("/profile/tokens/", {"name": "", "expires_in_days": "400"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Name the token after the script or tool that uses it." in page
    assert "365" in page
    assert not AccessToken.objects.exists()


def test_a_person_revokes_their_token(client_for, marketing_member):
    token, _raw = access_token_create(user=marketing_member, name="Pipeline", actor=None)
    client = client_for(marketing_member)
    assert "Revoke “Pipeline”?" in client.get(f"/profile/tokens/{token.pk}/revoke/").content.decode()

    response = client.post(f"/profile/tokens/{token.pk}/revoke/", follow=True)

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.revoked_by == marketing_member
    assert "is revoked" in response.content.decode()
    assert AuditEvent.objects.filter(verb="access_token.revoked", actor=marketing_member).count() == 1


def test_a_form_posted_twice_makes_one_token(client_for, marketing_member):
    client = client_for(marketing_member)
    once = re.search(r'name="once" value="([^"]+)"', client.get("/profile/tokens/").content.decode()).group(1)
    values = {"name": "Nightly export", "expires_in_days": "30", "once": once}

    first = client.post("/profile/tokens/", values)
    again = client.post("/profile/tokens/", values, follow=True)

    assert "sy-pat-" in first.content.decode()
    assert AccessToken.objects.filter(user=marketing_member).count() == 1
    page = again.content.decode()
    assert "was made with this form already" in page
    assert re.search(r'value="sy-pat-', page) is None
