"""The request state machine. Only these functions change a request's state: each locks the
request, refuses what its state or the actor's role does not allow, writes an AuditEvent and,
once the decision is final, hands over to provisioning after commit."""

import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from chat.metering import budget_status
from portal.approvals import notifications
from portal.approvals.estimates import monthly_cost_estimate
from portal.approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest
from portal.approvals.policy import approval_plan
from portal.audit.services import audit_record
from portal.org.models import Department, Membership, User
from provisioning.models import AccessGrant, LandingZone, ModelDeployment
from provisioning.services import (
    deployment_change_capacity,
    deployment_request_decommission,
    deployment_request_provisioning,
)

logger = logging.getLogger(__name__)

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind
StepState = ApprovalStep.State

# Fields of a request its author may set (and change while it is a draft or sent back).
SPEC_FIELDS = (
    "purpose",
    "display_name",
    "system_prompt",
    "data_classification",
    "private_network",
    "expires_on",
    "region",
    "model_name",
    "model_version",
    "sku",
    "capacity",
    "tpm_cap",
    "input_tokens_per_month",
    "output_tokens_per_month",
    "target",
)
EXPIRY_WARNING_DAYS = 14


class RequestActionRefused(Exception):
    """The request's state or the actor's role does not allow this; the message says why."""


# Who may do what -------------------------------------------------------------------------------


def may_author(user: User, department: Department) -> bool:
    """Leads ask for their department; platform admins may ask on its behalf."""
    if user.is_platform_admin:
        return True
    return any(
        m.department_id == department.pk and m.role == Membership.Role.LEAD
        for m in user.memberships_with_departments
    )


def next_step_for(request: DeploymentRequest, user: User) -> ApprovalStep | None:
    """The pending step of the current round `user` may decide, if any."""
    if request.state != State.SUBMITTED or request.requester_id == user.pk:
        return None
    steps = [step for step in request.steps.all() if step.round == request.round]
    if any(step.state == StepState.APPROVED and step.decided_by_id == user.pk for step in steps):
        return None  # four eyes: a second approval comes from someone else
    for step in steps:
        if step.state != StepState.PENDING:
            continue
        if step.kind == ApprovalStep.Kind.PLATFORM and user.is_platform_admin:
            return step
        if step.kind == ApprovalStep.Kind.FINANCE and user.is_finance_approver:
            return step
    return None


def _refuse_unless_author(request: DeploymentRequest, actor: User) -> None:
    if request.requester_id != actor.pk and not may_author(actor, request.department):
        raise RequestActionRefused("Only the department's leads and platform admins can change this request.")


def _lock(request: DeploymentRequest) -> DeploymentRequest:
    return (
        DeploymentRequest.objects.select_for_update(of=("self",))
        .select_related("department", "target", "requester")
        .get(pk=request.pk)
    )


def _refuse(request: DeploymentRequest, action: str) -> RequestActionRefused:
    return RequestActionRefused(
        f"Request #{request.pk} is {request.get_state_display().lower()}: it cannot be {action}."
    )


# Writing a request -----------------------------------------------------------------------------


def request_estimate(request: DeploymentRequest, *, today: date | None = None) -> Decimal:
    today = today or timezone.localdate()
    if request.kind == Kind.DECOMMISSION:
        return Decimal(0)
    model_source: Any = request.target if request.kind == Kind.SHARED_ACCESS and request.target else request
    sku = model_source.sku
    capacity = request.capacity
    if request.kind == Kind.CAPACITY_CHANGE and request.target:
        sku = request.target.sku
        model_source = request.target
    return monthly_cost_estimate(
        model_name=model_source.model_name,
        model_version=model_source.model_version,
        sku=sku,
        capacity=capacity,
        input_millions=request.input_tokens_per_month,
        output_millions=request.output_tokens_per_month,
        on=today,
    ).monthly_cost


def _apply_spec(request: DeploymentRequest, spec: dict[str, Any]) -> None:
    for field in SPEC_FIELDS:
        if field in spec:
            setattr(request, field, spec[field])
    target = request.target
    if request.kind in {Kind.CAPACITY_CHANGE, Kind.DECOMMISSION, Kind.SHARED_ACCESS} and target is not None:
        # The request describes what it changes, so the trail and the queue read on their own.
        request.region, request.model_name, request.model_version = (
            target.region,
            target.model_name,
            target.model_version,
        )
        request.sku = target.sku
        if not request.display_name:
            request.display_name = target.display_name
    request.estimated_monthly_cost = request_estimate(request)


def request_create(
    *, actor: User, department: Department, kind: str, spec: dict[str, Any], submit: bool
) -> DeploymentRequest:
    if not may_author(actor, department):
        raise RequestActionRefused(f"Only {department.name}'s leads and platform admins can ask for it.")
    with transaction.atomic():
        request = DeploymentRequest(kind=kind, department=department, requester=actor)
        _apply_spec(request, spec)
        request.save()
        audit_record(actor=actor, verb="request.created", target=request, after=request.snapshot())
        if submit:
            request = _submit(request, actor)
    return request


def request_update(
    *, request: DeploymentRequest, actor: User, spec: dict[str, Any], submit: bool
) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        if not locked.can_be_edited():
            raise _refuse(locked, "edited")
        before = locked.snapshot()
        _apply_spec(locked, spec)
        locked.save()
        audit_record(
            actor=actor, verb="request.edited", target=locked, before=before, after=locked.snapshot()
        )
        if submit:
            locked = _submit(locked, actor)
    return locked


def request_submit(*, request: DeploymentRequest, actor: User) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        return _submit(locked, actor)


def _submit(request: DeploymentRequest, actor: User | None) -> DeploymentRequest:
    """Draft or sent back -> submitted, with the approvals the policy asks for in a new round.
    The caller holds the lock."""
    if not request.can_be_edited():
        raise _refuse(request, "submitted")
    before = request.snapshot()
    request.estimated_monthly_cost = request_estimate(request)
    request.round += 1
    request.state = State.SUBMITTED
    request.submitted_at = timezone.now()
    request.status_message = ""
    request.save()
    budget = budget_status(department=request.department)
    plan = approval_plan(
        request=request,
        policy=ApprovalPolicy.current(),
        budget_left=max(budget.budget - budget.spent, Decimal(0)),
    )
    ApprovalStep.objects.bulk_create(
        ApprovalStep(request=request, round=request.round, order=order, kind=step.kind, reason=step.reason)
        for order, step in enumerate(plan, start=1)
    )
    audit_record(
        actor=actor, verb="request.submitted", target=request, before=before, after=request.snapshot()
    )
    automatic = [step for step in plan if step.kind == ApprovalStep.Kind.AUTOMATIC]
    if automatic:
        ApprovalStep.objects.filter(request=request, round=request.round).update(
            state=StepState.APPROVED, decided_at=timezone.now()
        )
        audit_record(actor=None, verb="request.auto_approved", target=request, note=automatic[0].reason)
        return _approve(request, actor=None)
    notifications.waiting_for_approval(request)
    return request


# Deciding ----------------------------------------------------------------------------------------


def request_approve(*, request: DeploymentRequest, actor: User, comment: str = "") -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        if locked.state != State.SUBMITTED:
            raise _refuse(locked, "approved")
        step = _step_to_decide(locked, actor)
        _decide(step, actor, StepState.APPROVED, comment)
        audit_record(
            actor=actor,
            verb="request.step_approved",
            target=locked,
            after={"step": step.kind, "round": step.round},
            note=comment,
        )
        if locked.steps.filter(round=locked.round, state=StepState.PENDING).exists():
            notifications.decision(locked, actor=actor, verb="approved", comment=comment, final=False)
            notifications.waiting_for_approval(locked)
            return locked
        notifications.decision(locked, actor=actor, verb="approved", comment=comment, final=True)
        return _approve(locked, actor=actor)


def request_reject(*, request: DeploymentRequest, actor: User, reason: str) -> DeploymentRequest:
    if not reason.strip():
        raise RequestActionRefused("Say why the request is rejected: the requester reads it.")
    return _close_round(request, actor, StepState.REJECTED, State.REJECTED, reason, "rejected")


def request_send_back(*, request: DeploymentRequest, actor: User, comment: str) -> DeploymentRequest:
    if not comment.strip():
        raise RequestActionRefused("Say what should change: the requester reads it.")
    return _close_round(
        request, actor, StepState.CHANGES_REQUESTED, State.CHANGES_REQUESTED, comment, "sent back"
    )


def _close_round(
    request: DeploymentRequest, actor: User, step_state: str, state: str, comment: str, verb: str
) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        if locked.state != State.SUBMITTED:
            raise _refuse(locked, verb)
        step = _step_to_decide(locked, actor)
        before = locked.snapshot()
        _decide(step, actor, step_state, comment)
        locked.steps.filter(round=locked.round, state=StepState.PENDING).update(state=StepState.WITHDRAWN)
        locked.state = state
        locked.decided_at = timezone.now()
        if state == State.REJECTED:
            locked.finished_at = locked.decided_at
        locked.save()
        audit_record(
            actor=actor,
            verb=f"request.{step_state}",
            target=locked,
            before=before,
            after=locked.snapshot(),
            note=comment,
        )
        notifications.decision(locked, actor=actor, verb=verb, comment=comment, final=True)
    return locked


def _step_to_decide(request: DeploymentRequest, actor: User) -> ApprovalStep:
    if request.requester_id == actor.pk:
        raise RequestActionRefused("Nobody approves their own request: another approver decides.")
    step = next_step_for(request, actor)
    if step is None:
        pending = request.steps.filter(round=request.round, state=StepState.PENDING)
        if (
            pending.filter(decided_by=None).exists()
            and request.steps.filter(round=request.round, decided_by=actor, state=StepState.APPROVED).exists()
        ):
            raise RequestActionRefused(
                "You approved this request already: the second approval comes from someone else."
            )
        kinds = ", ".join(step.get_kind_display().lower() for step in pending)
        raise RequestActionRefused(f"This request waits for a {kinds}; your role cannot decide it.")
    return step


def _decide(step: ApprovalStep, actor: User, state: str, comment: str) -> None:
    step.state = state
    step.decided_by = actor
    step.decided_at = timezone.now()
    step.comment = comment.strip()
    step.save(update_fields=["state", "decided_by", "decided_at", "comment"])


def _approve(request: DeploymentRequest, *, actor: User | None) -> DeploymentRequest:
    """Submitted -> approved -> handed to provisioning. The caller holds the lock."""
    before = request.snapshot()
    request.state = State.APPROVED
    request.decided_at = timezone.now()
    request.save()
    audit_record(
        actor=actor, verb="request.approved", target=request, before=before, after=request.snapshot()
    )
    return _hand_over(request, actor=actor)


# Handing over to provisioning ---------------------------------------------------------------------


def _hand_over(request: DeploymentRequest, *, actor: User | None) -> DeploymentRequest:
    before = request.snapshot()
    try:
        if request.kind == Kind.NEW_DEPLOYMENT:
            deployment = request.deployment or _deployment_for(request)
            request.deployment = deployment
            deployment = deployment_request_provisioning(deployment=deployment)
        elif request.kind == Kind.SHARED_ACCESS:
            assert request.target is not None
            AccessGrant.objects.update_or_create(
                deployment=request.target,
                department=request.department,
                defaults={"tpm_cap": request.tpm_cap},
            )
            request.deployment = request.target
            return _finish(request, State.COMPLETED, actor=actor, before=before)
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
    except ValueError as error:
        request.status_message = str(error)
        return _finish(request, State.FAILED, actor=actor, before=before)
    if deployment.state == ModelDeployment.State.ACTIVE:
        return _finish(request, State.COMPLETED, actor=actor, before=before)  # nothing to change
    request.deployment = deployment
    request.provisioning_run = deployment.run
    request.state = State.PROVISIONING
    request.status_message = ""
    request.save()
    audit_record(
        actor=actor, verb="request.provisioning", target=request, before=before, after=request.snapshot()
    )
    return request


def _deployment_for(request: DeploymentRequest) -> ModelDeployment:
    zone = LandingZone.for_department(request.department)
    if zone is None:
        raise ValueError(
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
    )


def _finish(
    request: DeploymentRequest, state: str, *, actor: User | None, before: dict[str, Any] | None = None
) -> DeploymentRequest:
    before = before or request.snapshot()
    request.state = state
    request.finished_at = timezone.now()
    request.save()
    audit_record(
        actor=actor,
        verb=f"request.{state}",
        target=request,
        before=before,
        after=request.snapshot(),
        note=request.status_message,
    )
    notifications.finished(request)
    return request


def request_follow_provisioning(*, deployment_id: int) -> list[int]:
    """Bring the requests waiting on this deployment's run to where the run ended."""
    finished = []
    for request_id in DeploymentRequest.objects.filter(
        state=State.PROVISIONING, deployment_id=deployment_id
    ).values_list("pk", flat=True):
        with transaction.atomic():
            request = (
                DeploymentRequest.objects.select_for_update(of=("self",))
                .select_related("department", "deployment", "requester")
                .get(pk=request_id)
            )
            deployment = request.deployment
            if request.state != State.PROVISIONING or deployment is None:
                continue
            if deployment.state in ModelDeployment.State.in_flight():
                continue
            if deployment.state == ModelDeployment.State.FAILED:
                request.status_message = deployment.status_message or "Provisioning failed."
                _finish(request, State.FAILED, actor=None)
            else:
                expected = (
                    ModelDeployment.State.DECOMMISSIONED
                    if request.kind == Kind.DECOMMISSION
                    else ModelDeployment.State.ACTIVE
                )
                if deployment.state != expected:
                    request.status_message = (
                        f"The deployment ended up {deployment.get_state_display().lower()}."
                    )
                    _finish(request, State.FAILED, actor=None)
                else:
                    _finish(request, State.COMPLETED, actor=None)
            finished.append(request.pk)
    return finished


def requests_follow_provisioning() -> list[int]:
    """A safety net for a lost signal: every request whose run already ended."""
    deployment_ids = (
        DeploymentRequest.objects.filter(state=State.PROVISIONING)
        .exclude(deployment__state__in=ModelDeployment.State.in_flight())
        .values_list("deployment_id", flat=True)
        .distinct()
    )
    finished: list[int] = []
    for deployment_id in list(deployment_ids):
        finished += request_follow_provisioning(deployment_id=deployment_id)
    return finished


def request_retry(*, request: DeploymentRequest, actor: User) -> DeploymentRequest:
    if not actor.is_platform_admin:
        raise RequestActionRefused("Only platform admins can retry a failed request.")
    with transaction.atomic():
        locked = _lock(request)
        if not locked.can_be_retried():
            raise _refuse(locked, "retried")
        audit_record(actor=actor, verb="request.retried", target=locked, before=locked.snapshot())
        locked.status_message = ""
        locked.finished_at = None
        return _hand_over(locked, actor=actor)


def request_cancel(*, request: DeploymentRequest, actor: User) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        if not locked.can_be_cancelled():
            raise _refuse(locked, "cancelled")
        before = locked.snapshot()
        locked.steps.filter(round=locked.round, state=StepState.PENDING).update(state=StepState.WITHDRAWN)
        locked.state = State.CANCELLED
        locked.finished_at = timezone.now()
        locked.save()
        audit_record(
            actor=actor, verb="request.cancelled", target=locked, before=before, after=locked.snapshot()
        )
    return locked


# Lifecycle -------------------------------------------------------------------------------------------


def requests_check_expiry(*, today: date | None = None) -> dict[str, list[int]]:
    """Warn leads 14 days before a deployment expires; on the day, ask to decommission it."""
    today = today or timezone.localdate()
    live = DeploymentRequest.objects.filter(
        kind=Kind.NEW_DEPLOYMENT,
        state=State.COMPLETED,
        expires_on__isnull=False,
        deployment__state=ModelDeployment.State.ACTIVE,
    ).select_related("department", "deployment")
    warned, decommissioning = [], []
    for request in live.filter(
        expires_on__gt=today, expires_on__lte=today + timedelta(days=EXPIRY_WARNING_DAYS)
    ):
        with transaction.atomic():
            locked = _lock(request)
            if locked.expiry_warned_on is not None:
                continue
            locked.expiry_warned_on = today
            locked.save(update_fields=["expiry_warned_on", "updated_at"])
            audit_record(
                actor=None, verb="request.expiry_warned", target=locked, note=f"Expires {locked.expires_on}"
            )
            notifications.expiry_warning(locked)
            warned.append(locked.pk)
    for request in live.filter(expires_on__lte=today):
        assert request.deployment is not None
        if DeploymentRequest.objects.filter(
            kind=Kind.DECOMMISSION, target=request.deployment, state__in=State.open()
        ).exists():
            continue
        with transaction.atomic():
            decommission = DeploymentRequest(
                kind=Kind.DECOMMISSION,
                department=request.department,
                requester=None,
                purpose=f"{request.deployment.display_name} reached the expiry date set in request "
                f"#{request.pk} ({request.expires_on:%d %b %Y}).",
                data_classification=request.data_classification,
            )
            _apply_spec(decommission, {"target": request.deployment})
            decommission.save()
            audit_record(
                actor=None,
                verb="request.created",
                target=decommission,
                after=decommission.snapshot(),
                note="Expiry date reached",
            )
            _submit(decommission, None)
            decommissioning.append(decommission.pk)
    if warned or decommissioning:
        logger.info("Expiry: warned about %s, asked to decommission %s", warned, decommissioning)
    return {"warned": warned, "decommission_requests": decommissioning}
