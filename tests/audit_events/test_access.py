"""Access grants and their caps; API keys (the department's pages); service principals (the
admin): each event names the department it concerns."""

import pytest
from django.urls import reverse

from gateway.keys import api_key_create
from gateway.models import ApiKey, ServicePrincipal
from provisioning.models import AccessGrant, ModelDeployment
from tests.audit_events.conftest import admin_form, assert_from_the_request, only_event
from tests.factories import make_department, make_deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def central_it(db):
    return make_department(name="Central IT", slug="central-it")


@pytest.fixture
def assistant(central_it, marketing) -> ModelDeployment:
    """Central IT's shared assistant, granted to Marketing."""
    return make_deployment(department=central_it, display_name="Company assistant", shared_with=[marketing])


def test_a_grant_given_in_the_admin_is_audited(admin_client, admin, central_it, marketing, finance):
    assistant = make_deployment(
        department=central_it, display_name="Company assistant", shared_with=[marketing]
    )

    response = admin_client.post(
        reverse("admin:provisioning_accessgrant_add"),
        {"deployment": assistant.pk, "department": finance.pk, "tpm_cap": "50", "monthly_budget_cap": "200"},
    )

    assert response.status_code == 302
    grant = AccessGrant.objects.get(department=finance)
    event = only_event("grant.created")
    assert (event.actor, event.object_type, event.object_id) == (
        admin,
        "provisioning.accessgrant",
        str(grant.pk),
    )
    assert event.department == finance
    assert event.before is None
    assert event.after == {
        "deployment_id": assistant.pk,
        "department_id": finance.pk,
        "tpm_cap": 50,
        "monthly_budget_cap": "200",
    }
    assert_from_the_request(event, response)


def test_a_grants_cap_changed_on_the_deployments_admin_page_is_audited(
    admin_client, admin, assistant, marketing
):
    grant = AccessGrant.objects.get(department=marketing)
    url = reverse("admin:provisioning_modeldeployment_change", args=[assistant.pk])
    data = admin_form(admin_client, url)
    assert data["grants-0-id"] == str(grant.pk)

    response = admin_client.post(url, {**data, "grants-0-tpm_cap": "30"})

    assert response.status_code == 302, response.content.decode()[:3000]
    event = only_event("grant.changed")
    assert (event.actor, event.object_id, event.department) == (admin, str(grant.pk), marketing)
    assert (event.before, event.after) == ({"tpm_cap": None}, {"tpm_cap": 30})
    assert_from_the_request(event, response)


def test_a_grant_taken_away_in_the_admin_is_audited(admin_client, admin, assistant, marketing):
    grant = AccessGrant.objects.get(department=marketing)

    response = admin_client.post(
        reverse("admin:provisioning_accessgrant_delete", args=[grant.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not AccessGrant.objects.filter(department=marketing).exists()
    event = only_event("grant.revoked")
    assert (event.actor, event.object_id, event.department) == (admin, str(grant.pk), marketing)
    assert event.before["department_id"] == marketing.pk
    assert event.after is None
    assert_from_the_request(event, response)


def test_a_key_made_on_the_departments_page_is_audited_for_the_department(
    client_for, marketing, marketing_lead, assistant
):
    response = client_for(marketing_lead).post(
        "/departments/marketing/keys/new/",
        {
            "name": "Newsletter bot",
            "deployments": [str(assistant.pk)],
            "expires_in_days": "90",
            "once": "form-token-1",
        },
    )

    assert response.status_code == 200  # the page that shows the secret once
    key = ApiKey.objects.get(name="Newsletter bot")
    event = only_event("api_key.created")
    assert (event.actor, event.actor_kind, event.object_id) == (marketing_lead, "person", str(key.pk))
    assert event.department == marketing
    assert_from_the_request(event, response)


@pytest.fixture
def key(marketing, marketing_lead, assistant) -> ApiKey:
    made, _ = api_key_create(
        department=marketing, name="Website chat widget", deployments=[assistant], actor=marketing_lead
    )
    return made


def test_a_key_rotated_on_its_page_is_audited_for_the_department(client_for, marketing, marketing_lead, key):
    response = client_for(marketing_lead).post(
        f"/departments/marketing/keys/{key.pk}/rotate/", {"grace_hours": "0"}
    )

    assert response.status_code == 200
    event = only_event("api_key.rotated")
    assert (event.actor, event.object_id, event.department) == (marketing_lead, str(key.pk), marketing)
    assert event.after["successor"] == ApiKey.objects.get(replaces=key).prefix
    assert_from_the_request(event, response)


def test_a_key_revoked_on_its_page_is_audited_for_the_department(client_for, marketing, marketing_lead, key):
    response = client_for(marketing_lead).post(f"/departments/marketing/keys/{key.pk}/revoke/")

    assert response.status_code == 302
    event = only_event("api_key.revoked")
    assert (event.actor, event.object_id, event.department) == (marketing_lead, str(key.pk), marketing)
    assert event.before["revoked_at"] is None
    assert event.after["revoked_at"] is not None
    assert_from_the_request(event, response)


def test_a_service_principal_registered_in_the_admin_is_audited_for_its_department(
    admin_client, admin, marketing, assistant
):
    response = admin_client.post(
        "/admin/gateway/serviceprincipal/add/",
        {
            "name": "Campaign reporter",
            "department": marketing.pk,
            "object_id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
            "application_id": "3b2f6c1d-9e4a-4f7b-8c5d-6a1e2f3b4c5d",
            "enabled": "on",
            "deployments": [assistant.pk],
            "requests_per_minute": "60",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    principal = ServicePrincipal.objects.get()
    event = only_event("service_principal.registered")
    assert (event.actor, event.object_id, event.department) == (admin, str(principal.pk), marketing)
    assert event.after["object_id"] == "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
    assert_from_the_request(event, response)
