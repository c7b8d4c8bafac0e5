"""The approval policy: which approvals each kind of request needs, and why."""

from decimal import Decimal

import pytest

from approvals.models import ApprovalStep, DeploymentRequest
from approvals.policy import approval_plan
from approvals.services import RequestActionRefused, RequestSpecInvalid, request_approve
from org.models import Membership, PlatformGroup
from provisioning.models import AccessGrant, ModelDeployment
from tests.factories import make_deployment, make_request, make_user

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind


def steps_of(request: DeploymentRequest) -> list[tuple[str, str]]:
    return [(step.kind, step.state) for step in request.steps.filter(round=request.round)]


def test_a_small_global_standard_deployment_within_budget_is_approved_by_policy_and_provisioned(
    marketing, marketing_lead, zone, offers, policy
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=20)

    assert request.state == State.PROVISIONING
    assert steps_of(request) == [(ApprovalStep.Kind.AUTOMATIC, ApprovalStep.State.APPROVED)]
    assert "approved by policy" in request.steps.get().reason
    deployment = request.deployment
    assert deployment.state == ModelDeployment.State.PROVISIONING
    assert (deployment.department, deployment.display_name, deployment.capacity) == (
        marketing,
        "Copy assistant",
        20,
    )
    assert deployment.landing_zone == zone


def test_a_deployment_above_the_automatic_size_waits_for_a_platform_admin_and_says_why(
    marketing, marketing_lead, zone, offers, policy
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)

    assert request.state == State.SUBMITTED
    assert steps_of(request) == [(ApprovalStep.Kind.PLATFORM, ApprovalStep.State.PENDING)]
    assert "50K TPM is more than the 20K TPM approved automatically" in request.steps.get().reason
    assert request.deployment is None


def test_provisioned_throughput_needs_a_second_approval_by_finance(
    marketing, marketing_lead, zone, offers, policy
):
    marketing.monthly_budget = Decimal("100000")
    marketing.save()
    request = make_request(
        department=marketing,
        requester=marketing_lead,
        model_name="gpt-4o",
        model_version="2024-11-20",
        sku="ProvisionedManaged",
        capacity=15,
    )

    assert steps_of(request) == [
        (ApprovalStep.Kind.PLATFORM, ApprovalStep.State.PENDING),
        (ApprovalStep.Kind.FINANCE, ApprovalStep.State.PENDING),
    ]
    finance_reason = request.steps.get(kind=ApprovalStep.Kind.FINANCE).reason
    assert "provisioned throughput (PTU)" in finance_reason
    # 15 PTU x the shipped hourly rate x 730 hours is far above the threshold, which is named too.
    assert "above the $1,000.00 threshold" in finance_reason


def test_an_estimate_above_the_threshold_needs_finance_even_for_a_token_sku(
    marketing, marketing_lead, zone, offers, policy
):
    policy.finance_cost_threshold = Decimal("50.00")
    policy.save()
    request = make_request(
        department=marketing, requester=marketing_lead, capacity=10, input_tokens_per_month=Decimal("400")
    )

    assert [kind for kind, _ in steps_of(request)] == [ApprovalStep.Kind.PLATFORM, ApprovalStep.Kind.FINANCE]
    assert request.estimated_monthly_cost == Decimal("400") * Decimal("0.15")


def test_restricted_data_is_never_approved_automatically_and_needs_finance(
    marketing, marketing_lead, zone, offers, policy
):
    request = make_request(
        department=marketing, requester=marketing_lead, capacity=5, data_classification="restricted"
    )

    assert [kind for kind, _ in steps_of(request)] == [ApprovalStep.Kind.PLATFORM, ApprovalStep.Kind.FINANCE]
    assert (
        "restricted data always needs a person" in request.steps.get(kind=ApprovalStep.Kind.PLATFORM).reason
    )
    assert "restricted data" in request.steps.get(kind=ApprovalStep.Kind.FINANCE).reason


def test_a_request_beyond_the_remaining_budget_is_refused_at_submission(
    marketing, marketing_lead, zone, offers, policy
):
    marketing.monthly_budget = Decimal("10.00")
    marketing.save()
    with pytest.raises(RequestSpecInvalid) as refusal:
        make_request(
            department=marketing, requester=marketing_lead, capacity=5, input_tokens_per_month=Decimal("100")
        )

    assert "This would exceed Marketing's monthly budget" in refusal.value.errors["input_tokens_per_month"][0]
    assert not DeploymentRequest.objects.exists()


def test_the_policy_never_approves_beyond_the_remaining_budget(marketing, policy):
    over = DeploymentRequest(
        kind=Kind.NEW_DEPLOYMENT, sku="GlobalStandard", capacity=5, estimated_monthly_cost=Decimal("15")
    )

    [step] = approval_plan(request=over, policy=policy, budget_left=Decimal("10.00"))

    assert step.kind == ApprovalStep.Kind.PLATFORM
    assert "more than the $10.00 left in the budget" in step.reason


def test_switching_automatic_approval_off_sends_everything_to_a_platform_admin(
    marketing, marketing_lead, zone, offers, policy
):
    policy.auto_approve_max_capacity = 0
    policy.save()
    request = make_request(department=marketing, requester=marketing_lead, capacity=1)

    assert "automatic approval is switched off" in request.steps.get().reason


def test_access_to_a_shared_service_is_granted_by_policy_with_its_cap(
    marketing, marketing_lead, zone, policy
):
    shared = make_deployment(
        department=marketing, display_name="Company assistant", scope=ModelDeployment.Scope.SHARED
    )
    request = make_request(
        department=marketing, requester=marketing_lead, kind=Kind.SHARED_ACCESS, target=shared, tpm_cap=5
    )

    assert request.state == State.COMPLETED
    grant = AccessGrant.objects.get(deployment=shared, department=marketing)
    assert grant.tpm_cap == 5


def test_a_decommission_waits_for_a_platform_admin(marketing, marketing_lead, zone, policy):
    deployment = make_deployment(department=marketing, landing_zone=zone)
    request = make_request(
        department=marketing, requester=marketing_lead, kind=Kind.DECOMMISSION, target=deployment
    )

    assert steps_of(request) == [(ApprovalStep.Kind.PLATFORM, ApprovalStep.State.PENDING)]
    assert "cannot be undone" in request.steps.get().reason
    assert request.estimated_monthly_cost == 0


def test_nobody_approves_their_own_request(marketing, zone, offers, policy):
    admin_lead = make_user(
        email="both@example.com",
        department=marketing,
        role=Membership.Role.LEAD,
        platform_group=PlatformGroup.ADMINS,
    )
    request = make_request(department=marketing, requester=admin_lead, capacity=50)

    with pytest.raises(RequestActionRefused, match="Nobody approves their own request"):
        request_approve(request=request, actor=admin_lead)
    assert DeploymentRequest.objects.get(pk=request.pk).state == State.SUBMITTED


def test_the_second_approval_comes_from_someone_else(marketing, marketing_lead, zone, offers, policy):
    both = make_user(email="both@example.com", platform_group=PlatformGroup.ADMINS)
    both.groups.add(*make_user(email="f@example.com", platform_group=PlatformGroup.FINANCE).groups.all())
    both = type(both).objects.get(pk=both.pk)
    request = make_request(
        department=marketing, requester=marketing_lead, capacity=5, data_classification="restricted"
    )

    request_approve(request=request, actor=both)
    with pytest.raises(RequestActionRefused, match="second approval comes from someone else"):
        request_approve(request=request, actor=both)
    assert steps_of(DeploymentRequest.objects.get(pk=request.pk)) == [
        (ApprovalStep.Kind.PLATFORM, ApprovalStep.State.APPROVED),
        (ApprovalStep.Kind.FINANCE, ApprovalStep.State.PENDING),
    ]


def test_a_finance_approver_cannot_give_the_platform_approval(
    marketing, marketing_lead, zone, offers, policy, finance_approver
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)

    with pytest.raises(RequestActionRefused, match="waits for a platform admin"):
        request_approve(request=request, actor=finance_approver)
