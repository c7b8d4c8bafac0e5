"""Local passwords: never for an account that signs in with Entra ID; with Entra sign-in on, only
for break-glass accounts; and Django admin signs people in through the same (throttled) sign-in.
"""

import re

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.core.cache import cache
from django.test import Client

from audit.models import AuditEvent
from org.models import PlatformGroup, User
from tests.entra import CLIENT_ID, TENANT_ID
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-passphrase-for-2026"
SIGNS_IN_WITH_MICROSOFT = "This account signs in with Microsoft"
PASSWORD_SIGN_IN_OFF = "Password sign-in is off"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # allauth counts failed sign-ins in the cache, which outlives a test's database transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def entra_on(settings):
    settings.ENTRA_TENANT_ID = TENANT_ID
    settings.ENTRA_CLIENT_ID = CLIENT_ID


@pytest.fixture
def nora(db) -> User:
    """A person who signs in with Entra ID and had a local password from before."""
    person = make_user(email="nora@example.com")
    SocialAccount.objects.create(user=person, provider="entra", uid="3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f")
    return person


def sign_in(client: Client, email: str, password: str = PASSWORD, url: str = "/accounts/login/"):
    return client.post(url, {"login": email, "password": password})


def signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def page_text(response) -> str:
    return str(response.content.decode())


# Accounts that sign in with Entra ID ---------------------------------------------------------------


def test_an_entra_account_cannot_sign_in_with_a_password_it_had_before(nora, client):
    response = sign_in(client, "nora@example.com")

    assert response.status_code == 200
    assert SIGNS_IN_WITH_MICROSOFT in page_text(response)
    assert not signed_in(client)
    assert not Client().login(email="nora@example.com", password=PASSWORD)


def test_a_wrong_password_for_an_entra_account_says_only_that_it_is_wrong(nora, client):
    text = page_text(sign_in(client, "nora@example.com", "not-the-password"))

    assert "not correct" in text
    assert SIGNS_IN_WITH_MICROSOFT not in text


def test_an_entra_account_gets_no_password_reset_link(nora, client):
    response = client.post("/accounts/password/reset/", {"email": "nora@example.com"})

    assert response.status_code == 302  # the same answer as for any address
    [message] = mail.outbox
    assert SIGNS_IN_WITH_MICROSOFT in message.body
    assert "/accounts/password/reset/key/" not in message.body


def test_a_reset_link_from_before_the_move_to_entra_is_refused(nora, client):
    key = default_token_generator.make_token(nora)
    link = f"/accounts/password/reset/key/{user_pk_to_url_str(nora)}-{key}/"

    form_url = client.get(link)["Location"]
    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert SIGNS_IN_WITH_MICROSOFT in page_text(response)
    nora.refresh_from_db()
    assert not nora.check_password(NEW_PASSWORD)
    assert not signed_in(client)


def test_an_entra_account_cannot_change_its_password(nora, client):
    client.force_login(nora)

    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert SIGNS_IN_WITH_MICROSOFT in page_text(response)
    nora.refresh_from_db()
    assert not nora.check_password(NEW_PASSWORD)


def test_an_entra_account_cannot_set_a_password(nora, client):
    nora.set_unusable_password()
    nora.save()
    client.force_login(nora)

    response = client.post("/accounts/password/set/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert SIGNS_IN_WITH_MICROSOFT in page_text(response)
    nora.refresh_from_db()
    assert not nora.has_usable_password()


# Entra sign-in on: passwords only for break-glass accounts -----------------------------------------


def test_with_entra_on_a_password_signs_in_only_a_break_glass_account(entra_on, marketing_member, client):
    response = sign_in(client, marketing_member.email)

    assert PASSWORD_SIGN_IN_OFF in page_text(response)
    assert not signed_in(client)

    marketing_member.is_break_glass = True
    marketing_member.save()
    response = sign_in(client, marketing_member.email)

    assert response.status_code == 302
    assert signed_in(client)
    event = AuditEvent.objects.get(verb="user.break_glass_sign_in")
    assert event.actor == marketing_member


def test_with_entra_on_an_entra_account_marked_break_glass_still_has_no_password(entra_on, nora, client):
    User.objects.filter(pk=nora.pk).update(is_break_glass=True)

    assert SIGNS_IN_WITH_MICROSOFT in page_text(sign_in(client, "nora@example.com"))
    assert not signed_in(client)


def test_with_entra_on_only_break_glass_accounts_get_a_reset_link(entra_on, marketing_member, client):
    client.post("/accounts/password/reset/", {"email": marketing_member.email})
    marketing_member.is_break_glass = True
    marketing_member.save()
    client.post("/accounts/password/reset/", {"email": marketing_member.email})

    refused, sent = mail.outbox
    assert PASSWORD_SIGN_IN_OFF in refused.body
    assert "/accounts/password/reset/key/" not in refused.body
    assert "/accounts/password/reset/key/" in sent.body


def test_the_sign_in_page_with_entra_on_offers_microsoft_and_a_break_glass_link(entra, client, settings):
    settings.SHOW_DEMO_SIGNINS = True

    page = page_text(client.get("/accounts/login/?next=/costs/"))

    assert "Sign in with Microsoft" in page
    assert 'name="password"' not in page
    assert "Demo sign-ins" not in page  # their passwords open nothing while Entra sign-in is on
    link = re.search(r'href="([^"]*mode=break-glass[^"]*)"', page)
    assert link is not None
    assert "next=/costs/" in link.group(1).replace("&amp;", "&").replace("%2F", "/")

    break_glass = page_text(client.get(link.group(1).replace("&amp;", "&")))

    assert 'name="password"' in break_glass
    assert "Break-glass sign-in" in break_glass


def test_the_sign_in_page_without_entra_is_the_password_form(client, settings):
    settings.SHOW_DEMO_SIGNINS = True

    page = page_text(client.get("/accounts/login/"))

    assert 'name="password"' in page
    assert "mode=break-glass" not in page
    assert "Demo sign-ins" in page


# Django admin signs in through the same sign-in --------------------------------------------------------


def test_the_admin_sign_in_sends_people_to_the_portals_sign_in(client):
    response = client.get("/admin/login/?next=/admin/org/user/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/org/user/"
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


def test_admin_sign_in_is_throttled_like_every_sign_in(platform_admin, client):
    # Guessing through the admin's own form gets nowhere, even with the right password at the end.
    for _ in range(6):
        sign_in(client, platform_admin.email, "a-wrong-guess", url="/admin/login/?next=/admin/")
    sign_in(client, platform_admin.email, url="/admin/login/?next=/admin/")
    assert client.get("/admin/").status_code == 302

    # The sign-in it sends people to counts failed attempts as it does for everyone.
    target = client.get("/admin/login/?next=/admin/")["Location"]
    for _ in range(5):
        assert "not correct" in page_text(sign_in(client, platform_admin.email, "a-wrong-guess", url=target))
    throttled = sign_in(client, platform_admin.email, url=target)

    assert "Too many failed login attempts" in page_text(throttled)
    assert client.get("/admin/").status_code == 302


def test_with_entra_on_a_local_admin_password_does_not_open_admin(entra_on, platform_admin, client):
    target = client.get("/admin/login/?next=/admin/")["Location"]

    assert PASSWORD_SIGN_IN_OFF in page_text(sign_in(client, platform_admin.email, url=target))
    assert client.get("/admin/").status_code == 302
    assert not Client().login(email=platform_admin.email, password=PASSWORD)

    platform_admin.is_break_glass = True
    platform_admin.save()
    response = sign_in(client, platform_admin.email, url=target)

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_person_without_admin_access_is_told_so(marketing_member, client):
    client.force_login(marketing_member)

    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 403


# The break-glass flag in Django admin ---------------------------------------------------------------


def admin_change_form(user: User, **changes) -> dict[str, object]:
    data: dict[str, object] = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_marking_a_break_glass_account_in_admin_is_audited(marketing_member, client):
    root = make_user(email="root@example.com", platform_group=PlatformGroup.ADMINS)
    root.is_superuser = True
    root.save()
    client.force_login(root)
    url = f"/admin/org/user/{marketing_member.pk}/change/"

    response = client.post(url, admin_change_form(marketing_member, is_break_glass="on"))

    assert response.status_code == 302, page_text(response)
    marketing_member.refresh_from_db()
    assert marketing_member.is_break_glass
    event = AuditEvent.objects.get(verb="user.break_glass_granted")
    assert (event.actor, event.object_id) == (root, str(marketing_member.pk))

    client.post(url, admin_change_form(marketing_member))

    assert AuditEvent.objects.filter(verb="user.break_glass_revoked").count() == 1


def test_an_entra_account_cannot_be_marked_break_glass_or_given_a_password_in_admin(nora, client):
    root = make_user(email="root@example.com", platform_group=PlatformGroup.ADMINS)
    root.is_superuser = True
    root.save()
    client.force_login(root)

    marked = client.post(f"/admin/org/user/{nora.pk}/change/", admin_change_form(nora, is_break_glass="on"))
    given = client.post(
        f"/admin/org/user/{nora.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert SIGNS_IN_WITH_MICROSOFT in page_text(marked)
    assert SIGNS_IN_WITH_MICROSOFT in page_text(given)
    nora.refresh_from_db()
    assert not nora.is_break_glass
    assert not nora.check_password(NEW_PASSWORD)


# Development (`make run`): the demo's passwords beside "Sign in with Microsoft" ----------------------


@pytest.fixture
def passwords_beside_entra(entra_on, settings):
    settings.DEBUG = True
    settings.PASSWORD_SIGN_IN_WITH_ENTRA = True


def test_in_development_a_password_signs_in_beside_microsoft(
    passwords_beside_entra, marketing_member, client
):
    response = sign_in(client, marketing_member.email)

    assert response.status_code == 302
    assert signed_in(client)
    assert not AuditEvent.objects.filter(verb="user.break_glass_sign_in").exists()


def test_in_development_an_entra_account_still_has_no_password(passwords_beside_entra, nora, client):
    assert SIGNS_IN_WITH_MICROSOFT in page_text(sign_in(client, "nora@example.com"))
    assert not signed_in(client)


def test_outside_development_the_setting_opens_nothing(
    passwords_beside_entra, marketing_member, client, settings
):
    settings.DEBUG = False

    response = sign_in(client, marketing_member.email, url="http://127.0.0.1/accounts/login/")

    assert PASSWORD_SIGN_IN_OFF in page_text(response)
    assert not signed_in(client)


def test_the_development_sign_in_page_shows_microsoft_and_the_demo_passwords(entra, client, settings):
    settings.DEBUG = True
    settings.PASSWORD_SIGN_IN_WITH_ENTRA = True
    settings.SHOW_DEMO_SIGNINS = True

    page = page_text(client.get("/accounts/login/"))

    assert "Sign in with Microsoft Entra ID" in page
    assert 'name="password"' in page
    assert "or with email and password" in page
    assert "mode=break-glass" not in page
    assert "admin@example.com" in page  # a demo password sign-in
    assert "nina@example.com" in page  # a demo person who signs in with Microsoft
