"""A request for provisioned (PTU) throughput may ask for a pay-as-you-go spillover twin: the form
and the estimate say what it would be, the rules say when there can be none, and once the
request completes the twin is provisioned too and is the deployment's fallback."""

from decimal import Decimal
from typing import Any

import pytest

from approvals import services
from approvals.models import DeploymentRequest
from approvals.spec import RequestSpec, request_spec_errors
from provisioning.catalog import catalog_sync, prices_load_shipped
from provisioning.fallbacks import fallback_chain
from provisioning.models import Fallback, ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION, drive_run
from tests.factories import make_deployment, make_landing_zone, make_offer, make_request

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind
Sku = ModelDeployment.Sku


@pytest.fixture
def ptu_offers(zone):
    """gpt-4o in Sweden Central as provisioned throughput and pay-as-you-go Standard; Japan East's
    provisioned offer has no pay-as-you-go twin in this catalog."""
    subscription = zone.subscription_id
    zone.allowed_regions = ["swedencentral", "japaneast"]
    zone.save()
    for region, sku, minimum, step in (
        ("swedencentral", Sku.PROVISIONED, 50, 50),
        ("swedencentral", Sku.STANDARD, 1, 1),
        ("swedencentral", Sku.GLOBAL_STANDARD, 1, 1),
        ("japaneast", Sku.PROVISIONED, 50, 50),
    ):
        make_offer(
            region=region,
            model_name="gpt-4o",
            model_version="2024-11-20",
            sku=sku,
            minimum=minimum,
            step=step,
            subscription_id=subscription,
        )
    prices_load_shipped()


def ptu_spec(**changes: Any) -> RequestSpec:
    values: dict[str, Any] = {
        "purpose": "Campaign copy at launch peaks",
        "display_name": "Launch copy",
        "region": "swedencentral",
        "model_name": "gpt-4o",
        "model_version": "2024-11-20",
        "sku": Sku.PROVISIONED,
        "capacity": 50,
        "spillover_twin": True,
    }
    values.update(changes)
    return RequestSpec(**values)


class TestAsking:
    def test_the_form_offers_the_twin_for_ptu_and_the_estimate_prices_it(
        self, client_for, marketing, marketing_lead, zone, ptu_offers
    ):
        response = client_for(marketing_lead).post(
            "/requests/new/preview/",
            {
                "kind": "new_deployment",
                "department": marketing.slug,
                "region": "swedencentral",
                "model_name": "gpt-4o",
                "model_version": "2024-11-20",
                "sku": Sku.PROVISIONED,
                "capacity": "50",
                "spillover_twin": "on",
            },
            headers={"HX-Request": "true"},
        )

        page = response.content.decode()
        assert "Add a pay-as-you-go spillover twin" in page
        assert "Spillover twin</strong>: Standard, 10K TPM, pay-as-you-go: $" in page
        assert "only for the calls that spill over" in page

    def test_a_pay_as_you_go_request_is_not_offered_the_twin(
        self, client_for, marketing, marketing_lead, zone, ptu_offers
    ):
        response = client_for(marketing_lead).post(
            "/requests/new/preview/",
            {
                "kind": "new_deployment",
                "department": marketing.slug,
                "region": "swedencentral",
                "model_name": "gpt-4o",
                "model_version": "2024-11-20",
                "sku": Sku.STANDARD,
                "capacity": "10",
            },
            headers={"HX-Request": "true"},
        )

        assert "spillover twin" not in response.content.decode()

    def test_the_request_page_says_it_was_asked(
        self, client_for, marketing, marketing_lead, zone, ptu_offers
    ):
        request = services.request_create(
            actor=marketing_lead, department=marketing, kind=Kind.NEW_DEPLOYMENT, spec=ptu_spec()
        )

        page = client_for(marketing_lead).get(f"/requests/{request.pk}/").content.decode()

        assert "Spillover twin" in page
        assert "A pay-as-you-go twin takes the calls that find the provisioned throughput full" in page


class TestRules:
    def errors(self, marketing, spec, kind=Kind.NEW_DEPLOYMENT):
        from django.utils import timezone

        return request_spec_errors(kind=kind, department=marketing, spec=spec, today=timezone.localdate())

    def test_only_for_provisioned_throughput(self, marketing, zone, ptu_offers):
        errors = self.errors(marketing, ptu_spec(sku=Sku.STANDARD, capacity=10))

        assert errors["spillover_twin"] == [
            "A spillover twin backs up provisioned (PTU) throughput; this SKU is pay-as-you-go already."
        ]

    def test_a_region_without_a_pay_as_you_go_offer_has_nothing_to_spill_over_to(
        self, marketing, zone, ptu_offers
    ):
        errors = self.errors(marketing, ptu_spec(region="japaneast"))

        assert errors["spillover_twin"] == [
            "Japan East offers gpt-4o 2024-11-20 in no pay-as-you-go SKU within the same data zone, so "
            "there is nothing to spill over to."
        ]

    def test_the_twin_needs_its_quota(self, marketing, zone, ptu_offers):
        from provisioning.models import Quota

        Quota.objects.filter(usage_name="OpenAI.Standard.gpt-4o").update(limit=Decimal(4))

        errors = self.errors(marketing, ptu_spec())

        assert errors["spillover_twin"] == [
            "Sweden Central has 4K TPM of gpt-4o (Standard) left in this subscription; a spillover twin "
            "needs 10K TPM."
        ]

    def test_a_deployment_that_spills_over_already_cannot_ask_again(
        self, marketing, zone, ptu_offers, platform_admin
    ):
        primary = make_deployment(
            department=marketing,
            display_name="Launch copy",
            landing_zone=zone,
            model_name="gpt-4o",
            model_version="2024-11-20",
            sku=Sku.PROVISIONED,
            capacity=50,
        )
        twin = make_deployment(
            department=marketing,
            display_name="Launch copy (spillover)",
            landing_zone=zone,
            model_name="gpt-4o",
            model_version="2024-11-20",
            sku=Sku.STANDARD,
            capacity=10,
        )
        Fallback.objects.create(deployment=primary, fallback=twin, position=1)

        errors = self.errors(
            marketing,
            RequestSpec(purpose="More", target=primary, capacity=100, spillover_twin=True),
            kind=Kind.CAPACITY_CHANGE,
        )

        assert errors["spillover_twin"] == ["Launch copy already spills over to Launch copy (spillover)."]


def test_a_completed_ptu_request_gets_its_twin_provisioned_as_its_fallback(
    emulator,
    settings,
    marketing,
    marketing_lead,
    platform_admin,
    finance_approver,
    client_for,
    django_capture_on_commit_callbacks,
):
    settings.PROVISIONING_POLL_SECONDS = 0.1
    marketing.monthly_budget = Decimal("100000.00")  # 50 PTU cost about $73,000 a month
    marketing.save()
    zone = make_landing_zone(
        name="Central",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central-ai",
        allowed_regions=["swedencentral"],
    )
    assert catalog_sync(landing_zone=zone).failures == []
    prices_load_shipped()
    request = make_request(department=marketing, requester=marketing_lead, **ptu_spec().__dict__)
    assert request.state == State.SUBMITTED, request.status_message

    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(request=request, actor=platform_admin)
        request = services.request_approve(
            request=DeploymentRequest.objects.get(pk=request.pk), actor=finance_approver
        )
    assert request.state == State.PROVISIONING
    primary = request.deployment

    with django_capture_on_commit_callbacks(execute=True):
        assert drive_run(primary.pk).state == ModelDeployment.State.ACTIVE
    request.refresh_from_db()
    assert request.state == State.COMPLETED
    twin = Fallback.objects.get(deployment=primary).fallback
    assert (twin.model_name, twin.model_version, twin.region, twin.sku, twin.capacity) == (
        "gpt-4o",
        "2024-11-20",
        "swedencentral",
        Sku.STANDARD,
        10,
    )
    assert (twin.department, twin.landing_zone, twin.display_name) == (
        marketing,
        zone,
        "Launch copy (spillover)",
    )
    assert fallback_chain(primary) == []  # not tried until it is up

    assert drive_run(twin.pk).state == ModelDeployment.State.ACTIVE

    assert fallback_chain(primary) == [twin]
    page = client_for(marketing_lead).get(f"/requests/{request.pk}/").content.decode()
    assert "Spillover twin: Launch copy (spillover) (Standard, 10K TPM, provisioning) takes the calls" in page
