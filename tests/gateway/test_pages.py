"""The API key pages walk the ladder (anonymous, another department, a member, finance, a lead, an
admin); a new key is shown once, on the answer to the form that made it; rotate and revoke ask
first; the department page lists the keys with their use this month; admin revokes through the
service."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals.models import DeploymentRequest
from gateway.keys import api_key_create, api_key_revoke
from gateway.models import ApiKey
from gateway.secrets import key_hash
from money.models import MonthlyCallerRollup, UsageRecord

pytestmark = pytest.mark.django_db

NEW = "/departments/marketing/keys/new/"
KEY = re.compile(r'value="(sy-[A-Za-z0-9_-]{40})"')


def text(response):
    return response.content.decode()


@pytest.fixture
def key(marketing, marketing_lead, company_assistant) -> ApiKey:
    made, _ = api_key_create(
        department=marketing,
        name="Website chat widget",
        deployments=[company_assistant],
        actor=marketing_lead,
    )
    return made


def form(company_assistant, **values):
    data = {
        "name": "Newsletter bot",
        "deployments": [str(company_assistant.pk)],
        "requests_per_minute": "",
        "tokens_per_minute": "",
        "expires_in_days": "90",
        "purpose": "",
        "once": "form-token-1",
    }
    data.update(values)
    return data


def urls(key: ApiKey) -> list[str]:
    return [
        NEW,
        f"/departments/marketing/keys/{key.pk}/rotate/",
        f"/departments/marketing/keys/{key.pk}/revoke/",
    ]


# The ladder ----------------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, key):
    for url in [*urls(key), "/departments/marketing/keys/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        assert client.post(url).status_code == 302
    assert ApiKey.objects.get().status() == "active"


def test_another_departments_lead_finds_nothing(client_for, key, finance_lead, company_assistant):
    client = client_for(finance_lead)
    for url in [*urls(key), "/departments/marketing/keys/"]:
        assert client.get(url).status_code == 404
    assert client.post(NEW, form(company_assistant)).status_code == 404
    assert client.post(f"/departments/marketing/keys/{key.pk}/revoke/").status_code == 404
    # Nor under their own department's address: the key is Marketing's.
    assert client.get(f"/departments/finance/keys/{key.pk}/revoke/").status_code == 404
    assert client.post(f"/departments/finance/keys/{key.pk}/revoke/").status_code == 404
    assert ApiKey.objects.get().status() == "active"
    assert ApiKey.objects.count() == 1


def test_a_member_sees_no_key_and_may_not_manage_them(client_for, key, marketing_member, company_assistant):
    client = client_for(marketing_member)
    assert client.get("/departments/marketing/").status_code == 403
    for url in [*urls(key), "/departments/marketing/keys/"]:
        assert client.get(url).status_code == 403
    assert client.post(NEW, form(company_assistant)).status_code == 403
    assert client.post(f"/departments/marketing/keys/{key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().status() == "active"


def test_finance_sees_the_list_but_changes_nothing(client_for, key, finance_approver, company_assistant):
    client = client_for(finance_approver)
    page = text(client.get("/departments/marketing/"))
    assert "Website chat widget" in page
    assert key.prefix in page
    assert "New API key" not in page
    assert "/revoke/" not in page
    for url in urls(key):
        assert client.get(url).status_code == 403
    assert (
        client.post(f"/departments/marketing/keys/{key.pk}/rotate/", {"grace_hours": "0"}).status_code == 403
    )
    assert ApiKey.objects.count() == 1
    # The deployment page's link to a department's keys takes finance to the list.
    assert client.get("/departments/marketing/keys/")["Location"] == "/departments/marketing/#api-keys"


@pytest.mark.parametrize("who", ["marketing_lead", "platform_admin"])
def test_a_lead_or_an_admin_creates_a_key_and_sees_it_once(
    request, client_for, marketing, company_assistant, who
):
    user = request.getfixturevalue(who)
    client = client_for(user)
    page = text(client.get("/departments/marketing/"))
    assert "New API key" in page
    assert "No working key" in page

    blank = client.get(NEW)
    assert blank.status_code == 200
    assert "Company assistant · company-assistant · shared service" in text(blank)

    made = client.post(NEW, form(company_assistant, requests_per_minute="120"))
    assert made.status_code == 200
    raw = KEY.search(text(made)).group(1)
    assert "This is the only time Switchyard shows it" in text(made)
    assert "no-store" in made["Cache-Control"]
    key = ApiKey.objects.get(secret_hash=key_hash(raw))
    assert (key.name, key.requests_per_minute, key.created_by) == ("Newsletter bot", 120, user)

    # The department page lists it by prefix; the key itself is never shown again.
    page = text(client.get("/departments/marketing/"))
    assert "Newsletter bot" in page
    assert key.prefix in page
    assert raw not in page
    assert "120 RPM" in page
    assert "Active" in page


def test_posting_the_same_form_twice_makes_one_key(client_for, marketing_lead, company_assistant):
    client = client_for(marketing_lead)
    first = client.post(NEW, form(company_assistant))
    assert KEY.search(text(first))
    again = client.post(NEW, form(company_assistant), follow=True)
    assert ApiKey.objects.count() == 1
    assert "was made with this form already; its secret is shown only once" in text(again)
    assert not KEY.search(text(again))


def test_the_form_says_what_is_wrong_next_to_each_field_and_keeps_what_was_typed(
    client_for, marketing_lead, company_assistant, ledger
):
    client = client_for(marketing_lead)
    response = client.post(
        NEW,
        form(
            company_assistant, name="Widget", deployments=[], expires_in_days="400", tokens_per_minute="abc"
        ),
    )
    assert response.status_code == 400
    page = text(response)
    assert "Choose at least one deployment the key may call." in page
    assert "Ensure this value is less than or equal to 365." in page
    assert "Enter a whole number." in page
    assert 'value="Widget"' in page
    # A deployment of another department is not even offered, and refused if posted.
    response = client.post(NEW, form(company_assistant, deployments=[str(ledger.pk)]))
    assert response.status_code == 400
    assert f"{ledger.pk} is not a deployment this department may use." in text(response)
    assert not ApiKey.objects.exists()


def test_a_key_for_restricted_data_is_shown_once_and_waits_for_approval(
    client_for, marketing_lead, contracts
):
    client = client_for(marketing_lead)
    assert "restricted data: needs approval" in text(client.get(NEW))
    refused = client.post(NEW, form(contracts))
    assert refused.status_code == 400
    assert "say what the application does with the data" in text(refused)

    made = client.post(NEW, form(contracts, purpose="Summaries of signed contracts."))
    raw = KEY.search(text(made)).group(1)
    assert "It works once approved" in text(made)
    key = ApiKey.objects.get(secret_hash=key_hash(raw))
    request = DeploymentRequest.objects.get(api_key=key)
    page = text(client.get("/departments/marketing/"))
    assert "Waiting for approval" in page
    assert f'href="/requests/{request.pk}/"' in page

    # The request page says what the key is, and the approver may approve or reject only.
    detail = text(client.get(f"/requests/{request.pk}/"))
    assert key.prefix in detail
    assert contracts.gateway_name in detail
    assert raw not in detail


# Rotate and revoke ---------------------------------------------------------------------------------


def test_rotating_asks_for_the_grace_period_then_shows_the_new_key_once(client_for, marketing_lead, key):
    client = client_for(marketing_lead)
    url = f"/departments/marketing/keys/{key.pk}/rotate/"
    confirm = text(client.get(url))
    assert "The old key keeps working for" in confirm
    assert "24 hours" in confirm

    assert client.post(url, {"grace_hours": "5"}).status_code == 400  # not one of the choices
    rotated = client.post(url, {"grace_hours": "72"})
    assert rotated.status_code == 200
    raw = KEY.search(text(rotated)).group(1)
    assert f"It replaces <code>{key.prefix}…</code>, which keeps working until" in text(rotated)
    successor = ApiKey.objects.get(secret_hash=key_hash(raw))
    key.refresh_from_db()
    assert successor.replaces == key
    assert abs(key.grace_until - (timezone.now() + timedelta(hours=72))) < timedelta(minutes=1)

    page = text(client.get("/departments/marketing/"))
    assert "Rotated" in page
    assert "works until" in page
    assert successor.prefix in page
    # Rotating the old key again is refused with a message, not a second successor.
    again = client.post(url, {"grace_hours": "0"}, follow=True)
    assert "rotated already: rotate its successor" in text(again)
    assert ApiKey.objects.count() == 2


def test_revoking_asks_first_and_then_stops_the_key(client_for, marketing_lead, key):
    client = client_for(marketing_lead)
    url = f"/departments/marketing/keys/{key.pk}/revoke/"
    confirm = client.get(url)
    assert "Applications using this key are refused from the moment you revoke it." in text(confirm)
    assert ApiKey.objects.get().status() == "active"  # asking changes nothing

    done = client.post(url, follow=True)
    assert f"The key “Website chat widget” ({key.prefix}…) is revoked" in text(done)
    assert ApiKey.objects.get().status() == "revoked"
    assert "Ended lately (1)" in text(done)
    assert "is revoked already" in text(client.get(url))


def test_a_key_page_with_an_id_no_column_holds_is_not_found(client_for, marketing_lead, key):
    assert (
        client_for(marketing_lead).get("/departments/marketing/keys/99999999999999999999/revoke/").status_code
        == 404
    )


# What the department page lists ------------------------------------------------------------------


def test_the_list_shows_each_keys_calls_this_month(
    client_for, marketing, marketing_lead, key, company_assistant
):
    api_key_create(
        department=marketing, name="Batch job", deployments=[company_assistant], actor=marketing_lead
    )
    month = timezone.localdate().replace(day=1)
    MonthlyCallerRollup.objects.create(
        month=month,
        department=marketing,
        deployment=company_assistant,
        source=UsageRecord.Source.API,
        api_key_key=key.pk,
        requests=42,
        input_tokens=30_000,
        output_tokens=12_000,
        cost=Decimal("1.2345"),
    )
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))

    page = text(client_for(marketing_lead).get("/departments/marketing/"))
    row = page[page.index("Website chat widget") : page.index("</tr>", page.index("Website chat widget"))]
    assert "42 calls" in row
    assert "42,000 tokens" in row
    assert "$1.23" in row
    assert "5\xa0minutes ago" in row
    other_row = page[page.index("Batch job") : page.index("</tr>", page.index("Batch job"))]
    assert "0 calls" in other_row
    assert "Never" in other_row
    assert "This month: <strong>42 calls</strong>, $1.23 metered" in page


def test_ended_keys_are_listed_apart_from_the_working_ones(client_for, marketing, marketing_lead, key):
    api_key_revoke(key=key, actor=marketing_lead)
    page = text(client_for(marketing_lead).get("/departments/marketing/"))
    assert "No working key" in page
    assert "Ended lately (1)" in page
    assert "Revoked" in page


# Django admin -----------------------------------------------------------------------------------


def test_admins_look_keys_up_read_only_and_revoke_through_the_service(
    client_for, platform_admin, marketing_lead, key
):
    client = client_for(platform_admin)
    listing = client.get("/admin/gateway/apikey/?q=widget")
    assert listing.status_code == 200
    assert key.prefix in text(listing)
    detail = text(client.get(f"/admin/gateway/apikey/{key.pk}/change/"))
    assert key.prefix in detail
    assert key.secret_hash not in detail
    assert 'name="name"' not in detail  # nothing to edit
    assert client.get("/admin/gateway/apikey/add/").status_code == 403

    response = client.post(
        "/admin/gateway/apikey/", {"action": "revoke", "_selected_action": [str(key.pk)]}, follow=True
    )
    assert "1 key revoked." in text(response)
    key.refresh_from_db()
    assert key.status() == "revoked"
    assert key.revoked_by == platform_admin
    # A lead is not let into admin at all.
    assert client_for(marketing_lead).get("/admin/gateway/apikey/").status_code == 302


def test_the_request_form_does_not_offer_a_key_request(client_for, marketing_lead):
    """A key for restricted data is asked for by making the key; the request form has no such kind."""
    client = client_for(marketing_lead)
    page = text(client.get("/requests/new/?kind=api_key"))
    assert "<h1>New deployment</h1>" in page
    assert "API key for restricted data" not in page
    assert client.post("/requests/new/", {"kind": "api_key", "purpose": "x"}).status_code == 400
    assert not DeploymentRequest.objects.exists()
