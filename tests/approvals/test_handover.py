"""Handing an approved request over to provisioning: what the engine refuses fails the request
with the engine's reason, and never undoes the approval."""

from approvals import services
from approvals.models import DeploymentRequest
from provisioning.models import ModelDeployment
from tests.factories import make_deployment, make_request

State = DeploymentRequest.State


def test_a_capacity_change_the_engine_refuses_fails_the_request_with_its_reason(
    marketing, marketing_lead, platform_admin, zone, offers, policy
):
    deployment = make_deployment(department=marketing, landing_zone=zone, capacity=10)
    resize = make_request(
        department=marketing,
        requester=marketing_lead,
        kind=DeploymentRequest.Kind.CAPACITY_CHANGE,
        target=deployment,
        capacity=50,  # above the automatic size: it waits for a platform admin
    )
    assert resize.state == State.SUBMITTED
    # Meanwhile someone else's request started decommissioning it.
    ModelDeployment.objects.filter(pk=deployment.pk).update(state=ModelDeployment.State.DECOMMISSIONING)

    decided = services.request_approve(request=resize, actor=platform_admin)

    assert decided.state == State.FAILED
    assert decided.status_message == (
        "Only an active deployment can change capacity; this one is Decommissioning."
    )
    assert ModelDeployment.objects.get(pk=deployment.pk).capacity == 10
