"""Handing an approved request over: provisioning starts its run, a shared access changes the
department's grant. Failures here fail the request with a message; they never undo the approval."""

from typing import Any

from django.utils import timezone
from django.utils.text import slugify

from approvals import notifications
from approvals.models import DeploymentRequest
from approvals.spec import grant_label, grant_state
from audit.services import audit_record
from gateway.keys import ApiKeyRefused, api_key_approve
from grounding.grounding_services import GroundingRefused, grounding_activate
from org.models import User
from provisioning.errors import ProvisioningRefused
from provisioning.models import AccessGrant, LandingZone, ModelDeployment
from provisioning.services import (
    deployment_change_capacity,
    deployment_request_decommission,
    deployment_request_provisioning,
)
from provisioning.spillover import SpilloverRefused, spillover_twin_create

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind


class HandOverFailed(Exception):
    """Provisioning cannot take the approved request as it stands; the request fails with this."""


def hand_over(request: DeploymentRequest, *, actor: User | None) -> DeploymentRequest:
    """Approved -> provisioning (or completed, or failed with the reason). The caller holds the
    request's lock."""
    before = request.snapshot()
    try:
        if request.kind == Kind.NEW_DEPLOYMENT:
            deployment = request.deployment or _deployment_for(request)
            request.deployment = deployment
            deployment = deployment_request_provisioning(deployment=deployment)
        elif request.kind == Kind.SHARED_ACCESS:
            _grant_access(request, actor=actor)
            request.deployment = request.target
            return finish(request, State.COMPLETED, actor=actor, before=before)
        elif request.kind == Kind.API_KEY:
            _activate_key(request, actor=actor)
            return finish(request, State.COMPLETED, actor=actor, before=before)
        elif request.kind == Kind.GROUNDING:
            _activate_grounding(request, actor=actor)
            request.deployment = request.target
            return finish(request, State.COMPLETED, actor=actor, before=before)
        elif request.kind == Kind.CAPACITY_CHANGE:
            assert request.target is not None
            assert request.capacity is not None
            request.deployment = request.target
            if request.target.state == ModelDeployment.State.FAILED:
                deployment = deployment_request_provisioning(deployment=request.target)
            else:
                deployment = deployment_change_capacity(deployment=request.target, capacity=request.capacity)
        else:
            assert request.target is not None
            request.deployment = request.target
            deployment = deployment_request_decommission(deployment=request.target)
    except (HandOverFailed, ProvisioningRefused) as error:
        request.status_message = str(error)
        return finish(request, State.FAILED, actor=actor, before=before)
    if deployment.state == ModelDeployment.State.ACTIVE:
        return finish(request, State.COMPLETED, actor=actor, before=before)  # nothing to change
    request.deployment = deployment
    request.provisioning_run = deployment.run
    request.state = State.PROVISIONING
    request.status_message = ""
    request.save()
    audit_record(
        actor=actor,
        verb="request.provisioning",
        target=request,
        department=request.department,
        before=before,
        after=request.snapshot(),
    )
    return request


def _activate_key(request: DeploymentRequest, *, actor: User | None) -> None:
    """The key this request was for starts working, unless it was revoked or ran out meanwhile."""
    if request.api_key is None:
        raise HandOverFailed("The key this request was for no longer exists.")
    try:
        api_key_approve(key=request.api_key, actor=actor, note=f"Request #{request.pk}")
    except ApiKeyRefused as refusal:
        raise HandOverFailed(str(refusal)) from refusal


def _activate_grounding(request: DeploymentRequest, *, actor: User | None) -> None:
    """The assistant answers from the data set from its next turn, unless the grounding was taken
    back meanwhile."""
    if request.grounding is None:
        raise HandOverFailed("The grounding this request was for no longer exists.")
    try:
        grounding_activate(grounding=request.grounding, actor=actor, note=f"Request #{request.pk}")
    except GroundingRefused as refusal:
        raise HandOverFailed(str(refusal)) from refusal


def _grant_access(request: DeploymentRequest, *, actor: User | None) -> None:
    """Create the department's grant, or change the one the approver saw. A grant that changed
    since the request was submitted (an admin's cap, say) is left as it is and the request fails."""
    target = request.target
    assert target is not None
    grant = (
        AccessGrant.objects.select_for_update()
        .filter(deployment=target, department=request.department)
        .first()
    )
    seen = request.grant_at_submission
    if grant_state(grant) != seen:
        raise HandOverFailed(
            f"{request.department.name}'s access to {target.display_name} changed meanwhile: it was "
            f"{grant_label(seen)} when this request was submitted and is {grant_label(grant_state(grant))} "
            "now. Nothing was changed; ask again if the change is still needed."
        )
    if grant is None:
        grant = AccessGrant.objects.create(
            deployment=target, department=request.department, tpm_cap=request.tpm_cap
        )
    else:
        grant.tpm_cap = request.tpm_cap
        grant.save(update_fields=["tpm_cap"])
    audit_record(
        actor=actor,
        verb="grant.created" if seen is None else "grant.changed",
        target=grant,
        department=grant.department,
        before=seen,
        after=grant_state(grant),
        note=f"Request #{request.pk}",
    )


def _deployment_for(request: DeploymentRequest) -> ModelDeployment:
    zone = LandingZone.for_department(request.department)
    if zone is None:
        raise HandOverFailed(
            f"{request.department.name} has no landing zone to deploy into. A platform admin adds one."
        )
    name = f"{slugify(request.display_name)[:40].strip('-') or 'deployment'}-r{request.pk}"
    return ModelDeployment.objects.create(
        department=request.department,
        scope=ModelDeployment.Scope.DEDICATED,
        display_name=request.display_name,
        system_prompt=request.system_prompt,
        landing_zone=zone,
        region=request.region,
        network_mode=request.network_mode,
        name=name,
        model_name=request.model_name,
        model_version=request.model_version,
        sku=request.sku,
        capacity=request.capacity or 1,
        data_classification=request.data_classification,
    )


def _add_spillover_twin(request: DeploymentRequest) -> None:
    """The request asked for a pay-as-you-go twin of its PTU deployment: create and provision it
    now that the deployment is in place, linked as its fallback. Not getting one does not fail
    the request (the deployment is what was approved); the request says why instead."""
    primary = request.deployment
    if primary is None or request.kind not in {Kind.NEW_DEPLOYMENT, Kind.CAPACITY_CHANGE}:
        return
    try:
        twin = spillover_twin_create(primary=primary, note=f"Request #{request.pk}")
    except SpilloverRefused as refusal:
        request.status_message = f"No spillover twin was added: {refusal}"
        return
    request.status_message = (
        f"Spillover twin: {twin.display_name} ({twin.get_sku_display()}, {twin.capacity_label}, "
        f"{twin.get_state_display().lower()}) takes the calls that find {primary.display_name} full."
    )


def finish(
    request: DeploymentRequest, state: str, *, actor: User | None, before: dict[str, Any] | None = None
) -> DeploymentRequest:
    before = before or request.snapshot()
    if state == State.COMPLETED and request.spillover_twin:
        _add_spillover_twin(request)
    request.state = state
    request.finished_at = timezone.now()
    request.save()
    audit_record(
        actor=actor,
        verb=f"request.{state}",
        target=request,
        department=request.department,
        before=before,
        after=request.snapshot(),
        note=request.status_message,
    )
    notifications.finished(request)
    return request
