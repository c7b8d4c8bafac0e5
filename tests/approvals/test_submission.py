"""Submitting checks the whole request again against things as they are now (catalog, quota,
deployments, expiry, budget), not only what the form checked when the draft was saved. A request
that no longer fits is refused with each message next to its field, and nothing is lost."""

import html
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals import services
from approvals.models import DeploymentRequest
from approvals.spec import RequestSpec
from provisioning.models import CatalogEntry, ModelDeployment, Quota
from tests.approvals.test_pages import NEW
from tests.factories import make_deployment, make_request

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind


@pytest.fixture
def saved_draft(client_for, marketing_lead, zone, offers, policy) -> DeploymentRequest:
    """A draft the lead saved through the form while everything fitted: 30K TPM of gpt-4o-mini."""
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = client_for(marketing_lead).post(
        "/requests/new/", {**NEW, "expires_on": tomorrow.isoformat(), "action": "draft"}
    )
    assert response.status_code == 302
    return DeploymentRequest.objects.get()


def submit(client, request: DeploymentRequest):
    return client.post(f"/requests/{request.pk}/submit/")


def field_errors(page: str, field: str) -> str:
    """The messages shown next to `field`."""
    start = page.index(f'id="id_{field}_errors"')
    return html.unescape(page[start : page.index("</ul>", start)])


def assert_refused_next_to(response, request: DeploymentRequest, field: str, message: str) -> None:
    assert response.status_code == 400
    page = response.content.decode()
    assert message in field_errors(page, field)
    assert "no longer fits" in page
    kept = DeploymentRequest.objects.get(pk=request.pk)
    assert (kept.state, kept.round) == (State.DRAFT, 0)
    assert (kept.display_name, kept.capacity) == ("Copy assistant", 30)


def test_a_draft_whose_model_left_the_catalog_is_refused_with_the_message_next_to_the_model(
    client_for, saved_draft, marketing_lead
):
    CatalogEntry.objects.filter(model_name="gpt-4o-mini", region="swedencentral").delete()

    response = submit(client_for(marketing_lead), saved_draft)

    assert_refused_next_to(
        response, saved_draft, "model_name", "gpt-4o-mini is not offered in Sweden Central."
    )


def test_a_draft_asking_for_more_than_the_quota_left_now_is_refused(client_for, saved_draft, marketing_lead):
    Quota.objects.filter(usage_name="OpenAI.GlobalStandard.gpt-4o-mini", region="swedencentral").update(
        current_value=Decimal(80)
    )

    response = submit(client_for(marketing_lead), saved_draft)

    assert_refused_next_to(response, saved_draft, "capacity", "Sweden Central has 20 K TPM of gpt-4o-mini")


def test_a_draft_whose_expiry_date_has_passed_is_refused(client_for, saved_draft, marketing_lead):
    DeploymentRequest.objects.filter(pk=saved_draft.pk).update(expires_on=timezone.localdate())

    response = submit(client_for(marketing_lead), saved_draft)

    assert_refused_next_to(response, saved_draft, "expires_on", "The expiry date must be in the future.")


def test_a_draft_over_the_budget_as_it_stands_now_is_refused(
    client_for, saved_draft, marketing, marketing_lead
):
    marketing.monthly_budget = Decimal("2.00")
    marketing.save()

    response = submit(client_for(marketing_lead), saved_draft)

    assert_refused_next_to(
        response, saved_draft, "input_tokens_per_month", "This would exceed Marketing's monthly budget"
    )


def test_the_refused_draft_is_fixed_and_submitted_from_the_form_it_was_shown_in(
    client_for, saved_draft, marketing_lead
):
    Quota.objects.filter(usage_name="OpenAI.GlobalStandard.gpt-4o-mini").update(current_value=Decimal(80))
    client = client_for(marketing_lead)
    refused = submit(client, saved_draft).content.decode()
    assert f'action="/requests/{saved_draft.pk}/edit/"' in refused

    response = client.post(f"/requests/{saved_draft.pk}/edit/", {**NEW, "capacity": "20"})

    assert response.status_code == 302
    submitted = DeploymentRequest.objects.get(pk=saved_draft.pk)
    assert (submitted.round, submitted.capacity) == (1, 20)  # 20K TPM: approved by policy at once
    assert submitted.state == State.PROVISIONING


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        (
            Kind.SHARED_ACCESS,
            {"state": ModelDeployment.State.DECOMMISSIONED},
            "only an active shared service",
        ),
        (Kind.SHARED_ACCESS, {"scope": ModelDeployment.Scope.DEDICATED}, "is not a shared service"),
        (Kind.CAPACITY_CHANGE, {"state": ModelDeployment.State.DECOMMISSIONING}, "it cannot be resized now"),
        (
            Kind.DECOMMISSION,
            {"state": ModelDeployment.State.DECOMMISSIONED},
            "it cannot be decommissioned now",
        ),
    ],
)
def test_a_draft_whose_deployment_changed_meanwhile_is_refused(
    client_for, marketing, marketing_lead, zone, offers, policy, kind, change, message
):
    scope = ModelDeployment.Scope.SHARED if kind == Kind.SHARED_ACCESS else ModelDeployment.Scope.DEDICATED
    deployment = make_deployment(
        department=marketing, display_name="Brand voice", scope=scope, landing_zone=zone
    )
    spec = {"target": deployment, "capacity": 30} if kind == Kind.CAPACITY_CHANGE else {"target": deployment}
    draft = make_request(department=marketing, requester=marketing_lead, kind=kind, submit=False, **spec)
    ModelDeployment.objects.filter(pk=deployment.pk).update(**change)

    response = submit(client_for(marketing_lead), draft)

    assert response.status_code == 400
    assert message in field_errors(response.content.decode(), "target")
    assert DeploymentRequest.objects.get(pk=draft.pk).state == State.DRAFT


def test_the_services_refuse_a_resubmission_that_no_longer_fits_and_change_nothing(
    saved_draft, marketing_lead, platform_admin
):
    services.request_submit(request=saved_draft, actor=marketing_lead)
    services.request_send_back(request=saved_draft, actor=platform_admin, comment="Smaller, please")
    CatalogEntry.objects.filter(model_name="gpt-4o-mini").update(capacity_maximum=10)

    with pytest.raises(services.RequestSpecInvalid) as refusal:
        services.request_update(
            request=saved_draft,
            actor=marketing_lead,
            spec=replace(RequestSpec.of(saved_draft), capacity=25),
            submit=True,
        )

    assert refusal.value.errors == {"capacity": ["Capacity for this model and SKU is 1 to 10 K TPM."]}
    kept = DeploymentRequest.objects.get(pk=saved_draft.pk)
    assert (kept.state, kept.round, kept.capacity) == (State.CHANGES_REQUESTED, 1, 30)


def test_editing_keeps_what_the_form_does_not_ask_and_clears_what_is_emptied(
    client_for, marketing, marketing_lead, zone, policy
):
    assistant = make_deployment(
        department=marketing,
        display_name="Brand voice",
        scope=ModelDeployment.Scope.SHARED,
        landing_zone=zone,
    )
    capped = make_request(
        department=marketing,
        requester=marketing_lead,
        kind=Kind.SHARED_ACCESS,
        target=assistant,
        tpm_cap=8,
        submit=False,
    )
    retiring = make_deployment(department=marketing, display_name="Old helper", landing_zone=zone)
    restricted = make_request(
        department=marketing,
        requester=marketing_lead,
        kind=Kind.DECOMMISSION,
        target=retiring,
        data_classification="restricted",
        submit=False,
    )
    client = client_for(marketing_lead)

    client.post(
        f"/requests/{restricted.pk}/edit/",
        {
            "kind": "decommission",
            "department": "marketing",
            "target": retiring.pk,
            "purpose": "Replaced",
            "action": "draft",
        },
    )
    response = client.post(
        f"/requests/{capped.pk}/edit/",
        {
            "kind": "shared_access",
            "department": "marketing",
            "target": assistant.pk,
            "purpose": "Q",
            "data_classification": "internal",
            "tpm_cap": "",
            "action": "draft",
        },
    )

    assert response.status_code == 302, response.context["form"].errors
    assert DeploymentRequest.objects.get(pk=restricted.pk).data_classification == "restricted"
    assert DeploymentRequest.objects.get(pk=capped.pk).tpm_cap is None
