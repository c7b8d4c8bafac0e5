"""The request state machine. Only these functions change a request's state: each locks the
request, refuses what its state or the actor's role does not allow, writes an AuditEvent and,
once the decision is final, hands over to provisioning after commit."""

import logging
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals import notifications
from approvals.access import may_author, may_change, next_step_for, owner_left
from approvals.handover import finish, hand_over
from approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest, RequestEdit
from approvals.policy import PlannedStep, approval_plan, grounding_plan
from approvals.rounds import edit_record, round_records, spec_changes, wrote_round
from approvals.spec import (
    FieldErrors,
    RequestSpec,
    current_grant,
    estimate_errors,
    grant_state,
    request_spec_errors,
    spec_bounds_errors,
    spec_estimate,
)
from audit.services import audit_record
from gateway.keys import ApiKeyRefused, api_key_reject, api_key_revoke
from gateway.models import ApiKey
from grounding.grounding_services import GroundingRefused, grounding_reject, grounding_remove
from grounding.models import DataSet, Grounding
from money.budgets import budget_status
from org.models import Department, User
from provisioning.models import DataClassification, ModelDeployment

logger = logging.getLogger(__name__)

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind
StepState = ApprovalStep.State

EXPIRY_WARNING_DAYS = 14


class RequestActionRefused(Exception):
    """The request's state or the actor's role does not allow this; the message says why."""


class RequestSpecInvalid(RequestActionRefused):
    """The request breaks the rules as they stand; `errors` holds the messages by field
    ("__all__" for the request as a whole)."""

    def __init__(self, errors: FieldErrors) -> None:
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


def _refuse_unless_author(request: DeploymentRequest, actor: User) -> None:
    if not may_change(actor, request):
        raise RequestActionRefused("Only the department's leads and platform admins can change this request.")


def _lock(request: DeploymentRequest) -> DeploymentRequest:
    return (
        DeploymentRequest.objects.select_for_update(of=("self",))
        .select_related("department", "target", "requester")
        .get(pk=request.pk)
    )


def state_refusal(request: DeploymentRequest, action: str) -> RequestActionRefused:
    """Why `request` cannot be `action` ("edited", "cancelled") in its state: the services' refusal,
    and what the pages say before they try."""
    return RequestActionRefused(
        f"Request #{request.pk} is {request.get_state_display().lower()}: it cannot be {action}."
    )


# Writing a request -----------------------------------------------------------------------------


def request_estimate(request: DeploymentRequest, *, today: date | None = None) -> Decimal:
    today = today or timezone.localdate()
    return spec_estimate(kind=request.kind, spec=RequestSpec.of(request), today=today).monthly_cost


def _apply_spec(request: DeploymentRequest, spec: RequestSpec) -> None:
    """Write `spec` into the request; refuse values no request may hold, draft or not."""
    errors = spec_bounds_errors(spec)
    if errors:
        raise RequestSpecInvalid(errors)
    # A request about an existing deployment describes it, so the trail and the queue read on
    # their own.
    spec = spec.following_target(request.kind)
    for name in RequestSpec.field_names():
        setattr(request, name, getattr(spec, name))
    if request.kind != Kind.NEW_DEPLOYMENT and spec.target is not None and not request.display_name:
        request.display_name = spec.target.display_name
    request.estimated_monthly_cost = request_estimate(request)
    errors = estimate_errors(spec, request.estimated_monthly_cost)
    if errors:
        raise RequestSpecInvalid(errors)


def request_create(
    *,
    actor: User,
    department: Department,
    kind: str,
    spec: RequestSpec,
    submit: bool = False,
) -> DeploymentRequest:
    """A new request, saved as a draft or submitted at once."""
    if not may_author(actor, department):
        raise RequestActionRefused(f"Only {department.name}'s leads and platform admins can ask for it.")
    with transaction.atomic():
        request = DeploymentRequest(kind=kind, department=department, requester=actor)
        _apply_spec(request, spec)
        request.save()
        audit_record(
            actor=actor,
            verb="request.created",
            target=request,
            department=request.department,
            after=request.snapshot(),
        )
        edit_record(request=request, actor=actor, action=RequestEdit.Action.CREATED, changes=[])
        if submit:
            request = _submit(request, actor)
    return request


def request_update(
    *, request: DeploymentRequest, actor: User, spec: RequestSpec, submit: bool = False
) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        if not locked.can_be_edited():
            raise state_refusal(locked, "edited")
        before, was = locked.snapshot(), RequestSpec.of(locked)
        _apply_spec(locked, spec)
        locked.save()
        changes = spec_changes(was, RequestSpec.of(locked))
        audit_record(
            actor=actor,
            verb="request.edited",
            target=locked,
            department=locked.department,
            before=before,
            after={**locked.snapshot(), "changes": changes},
        )
        if changes:
            edit_record(request=locked, actor=actor, action=RequestEdit.Action.EDITED, changes=changes)
        if submit:
            locked = _submit(locked, actor)
    return locked


def request_submit(*, request: DeploymentRequest, actor: User) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        return _submit(locked, actor)


def _submit(request: DeploymentRequest, actor: User | None) -> DeploymentRequest:
    """Draft or sent back -> submitted, with the approvals the policy asks for in a new round,
    once the request still meets every rule as things stand now. The caller holds the lock."""
    if not request.can_be_edited():
        raise state_refusal(request, "submitted")
    today = timezone.localdate()
    errors = request_spec_errors(
        kind=request.kind, department=request.department, spec=RequestSpec.of(request), today=today
    )
    if errors:
        raise RequestSpecInvalid(errors)
    before = request.snapshot()
    edit_record(request=request, actor=actor, action=RequestEdit.Action.SUBMITTED, changes=[])
    request.estimated_monthly_cost = request_estimate(request, today=today)
    if request.kind == Kind.SHARED_ACCESS and request.target is not None:
        # What the approver decides on, and what hand-over checks is still so.
        grant = current_grant(department=request.department, deployment=request.target)
        request.grant_at_submission = grant_state(grant)
    request.round += 1
    request.state = State.SUBMITTED
    request.submitted_at = timezone.now()
    request.status_message = ""
    request.save()
    budget = budget_status(department=request.department, on=today)
    plan = approval_plan(
        request=request,
        policy=ApprovalPolicy.current(),
        budget_left=max(budget.budget - budget.spent, Decimal(0)),
    )
    return _open_round(request, plan, actor=actor, before=before)


def _open_round(
    request: DeploymentRequest, plan: list[PlannedStep], *, actor: User | None, before: dict[str, object]
) -> DeploymentRequest:
    """The submitted request's new round: its steps as planned, the submission audited, the steps
    the policy approves by itself approved (and the request with them when nothing else is left),
    the approvers told."""
    ApprovalStep.objects.bulk_create(
        ApprovalStep(
            request=request,
            round=request.round,
            order=order,
            kind=step.kind,
            reason=step.reason,
            assignee=step.assignee,
        )
        for order, step in enumerate(plan, start=1)
    )
    audit_record(
        actor=actor,
        verb="request.submitted",
        target=request,
        department=request.department,
        before=before,
        after=request.snapshot(),
    )
    automatic = [step for step in plan if step.kind == ApprovalStep.Kind.AUTOMATIC]
    if automatic:
        edits = round_records(request)
        ApprovalStep.objects.filter(
            request=request, round=request.round, kind=ApprovalStep.Kind.AUTOMATIC
        ).update(state=StepState.APPROVED, decided_at=timezone.now(), round_edits=edits)
        audit_record(
            actor=None,
            verb="request.auto_approved",
            target=request,
            department=request.department,
            after={"round": request.round, "edits": edits},
            note=automatic[0].reason,
        )
        if len(automatic) == len(plan):
            return _approve(request, actor=None)
    notifications.waiting_for_approval(request)
    return request


# Deciding ----------------------------------------------------------------------------------------


def request_approve(*, request: DeploymentRequest, actor: User, comment: str = "") -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        if locked.state != State.SUBMITTED:
            raise state_refusal(locked, "approved")
        step = _step_to_decide(locked, actor)
        _decide(step, actor, StepState.APPROVED, comment)
        audit_record(
            actor=actor,
            verb="request.step_approved",
            target=locked,
            department=locked.department,
            after={"step": step.kind, "round": step.round, "edits": step.round_edits},
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
    if request.kind == Kind.API_KEY:
        raise RequestActionRefused(
            "A key cannot be changed once made, so there is nothing to send back: approve it, or "
            "reject it and say why (the lead then makes a new key)."
        )
    if request.kind == Kind.GROUNDING:
        raise RequestActionRefused(
            "A grounding has nothing to edit, so there is nothing to send back: approve it, or "
            "reject it and say why (the lead then asks again)."
        )
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
            raise state_refusal(locked, verb)
        step = _step_to_decide(locked, actor)
        before = locked.snapshot()
        _decide(step, actor, step_state, comment)
        locked.steps.filter(round=locked.round, state=StepState.PENDING).update(state=StepState.WITHDRAWN)
        locked.state = state
        locked.decided_at = timezone.now()
        if state == State.REJECTED:
            locked.finished_at = locked.decided_at
        locked.save()
        if state == State.REJECTED and locked.api_key is not None:
            api_key_reject(key=locked.api_key, actor=actor, reason=f"Request #{locked.pk}: {comment}")
        if state == State.REJECTED and locked.grounding is not None:
            grounding_reject(
                grounding=locked.grounding, actor=actor, reason=f"Request #{locked.pk}: {comment}"
            )
        audit_record(
            actor=actor,
            verb=f"request.{step_state}",
            target=locked,
            department=locked.department,
            before=before,
            after={**locked.snapshot(), "edits": step.round_edits},
            note=comment,
        )
        notifications.decision(locked, actor=actor, verb=verb, comment=comment, final=True)
    return locked


def _step_to_decide(request: DeploymentRequest, actor: User) -> ApprovalStep:
    if request.requester_id == actor.pk:
        raise RequestActionRefused("Nobody approves their own request: another approver decides.")
    wrote = wrote_round(request, actor)
    if wrote:
        raise RequestActionRefused(wrote)
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
        owner = pending.filter(kind=ApprovalStep.Kind.DATA_OWNER).select_related("assignee").first()
        if owner is not None and owner.assignee is not None and owner_left(request, owner):
            raise RequestActionRefused(
                f"{owner.assignee.display_name}, the data set's owner, no longer leads its department: "
                "a platform admin decides in their place."
            )
        if owner is not None and owner.assignee is not None:
            raise RequestActionRefused(
                f"This request waits for {owner.assignee.display_name}, the data set's owner: "
                "only they decide it."
            )
        kinds = ", ".join(step.get_kind_display().lower() for step in pending)
        raise RequestActionRefused(f"This request waits for a {kinds}; your role cannot decide it.")
    return step


def _decide(step: ApprovalStep, actor: User, state: str, comment: str) -> None:
    """Record the decision with who edited what in the round it decides."""
    step.state = state
    step.decided_by = actor
    step.decided_at = timezone.now()
    step.comment = comment.strip()
    step.round_edits = round_records(step.request)
    step.save(update_fields=["state", "decided_by", "decided_at", "comment", "round_edits"])


def _approve(request: DeploymentRequest, *, actor: User | None) -> DeploymentRequest:
    """Submitted -> approved -> handed to provisioning. The caller holds the lock."""
    before = request.snapshot()
    request.state = State.APPROVED
    request.decided_at = timezone.now()
    request.save()
    audit_record(
        actor=actor,
        verb="request.approved",
        target=request,
        department=request.department,
        before=before,
        after=request.snapshot(),
    )
    return hand_over(request, actor=actor)


# Following provisioning ---------------------------------------------------------------------------


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
                finish(request, State.FAILED, actor=None)
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
                    finish(request, State.FAILED, actor=None)
                else:
                    finish(request, State.COMPLETED, actor=None)
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
            raise state_refusal(locked, "retried")
        audit_record(
            actor=actor,
            verb="request.retried",
            target=locked,
            department=locked.department,
            before=locked.snapshot(),
        )
        locked.status_message = ""
        locked.finished_at = None
        return hand_over(locked, actor=actor)


def request_cancel(*, request: DeploymentRequest, actor: User) -> DeploymentRequest:
    with transaction.atomic():
        locked = _lock(request)
        _refuse_unless_author(locked, actor)
        if not locked.can_be_cancelled():
            raise state_refusal(locked, "cancelled")
        before = locked.snapshot()
        locked.steps.filter(round=locked.round, state=StepState.PENDING).update(state=StepState.WITHDRAWN)
        locked.state = State.CANCELLED
        locked.finished_at = timezone.now()
        locked.save()
        audit_record(
            actor=actor,
            verb="request.cancelled",
            target=locked,
            department=locked.department,
            before=before,
            after=locked.snapshot(),
        )
        if locked.api_key is not None:
            # The key asked for is not wanted any more: it must not start working later.
            try:
                api_key_revoke(key=locked.api_key, actor=actor)
            except ApiKeyRefused as refusal:
                raise RequestActionRefused(str(refusal)) from refusal
        if locked.grounding is not None and locked.grounding.state == Grounding.State.REQUESTED:
            # Nobody waits for this data set any more: it must not start answering later.
            try:
                grounding_remove(
                    grounding=locked.grounding, actor=actor, reason=f"Request #{locked.pk} cancelled"
                )
            except GroundingRefused as refusal:
                raise RequestActionRefused(str(refusal)) from refusal
    return locked


# API keys for restricted data ---------------------------------------------------------------------


def request_for_api_key(*, key: ApiKey, actor: User | None, purpose: str) -> DeploymentRequest:
    """The approval a key for restricted data waits for, submitted at once and routed by the
    policy as any request for restricted data. The gateway asks for it inside the transaction
    that creates the key, so the key and its request commit together."""
    request = DeploymentRequest(kind=Kind.API_KEY, department=key.department, requester=actor, api_key=key)
    spec = RequestSpec(
        purpose=purpose,
        display_name=f"API key “{key.name}”",
        data_classification=DataClassification.RESTRICTED,
    )
    _apply_spec(request, spec)
    request.save()
    audit_record(
        actor=actor,
        verb="request.created",
        target=request,
        department=request.department,
        after=request.snapshot(),
        note=f"For the key {key.prefix}…",
    )
    edit_record(request=request, actor=actor, action=RequestEdit.Action.CREATED, changes=[])
    return _submit(request, actor)


def request_withdraw_for_key(*, key: ApiKey, actor: User | None) -> list[int]:
    """The key waiting for approval was revoked: its open request has nothing left to decide."""
    return _withdraw_open(
        DeploymentRequest.objects.filter(api_key=key),
        actor=actor,
        note="The key was revoked, so nothing is left to decide.",
    )


def _withdraw_open(requests: QuerySet[DeploymentRequest], *, actor: User | None, note: str) -> list[int]:
    """Cancels the open ones of `requests` (their waiting steps withdrawn), each under its lock."""
    withdrawn = []
    for request in requests.filter(state__in=State.open()):
        locked = _lock(request)
        if locked.state not in State.open():
            continue
        before = locked.snapshot()
        locked.steps.filter(round=locked.round, state=StepState.PENDING).update(state=StepState.WITHDRAWN)
        locked.state = State.CANCELLED
        locked.finished_at = timezone.now()
        locked.save()
        audit_record(
            actor=actor,
            verb="request.cancelled",
            target=locked,
            department=locked.department,
            before=before,
            after=locked.snapshot(),
            note=note,
        )
        withdrawn.append(locked.pk)
    return withdrawn


# Grounding an assistant on a data set --------------------------------------------------------------


def request_for_grounding(*, grounding: Grounding, actor: User | None, purpose: str) -> DeploymentRequest:
    """The approval a grounding waits for, submitted at once: the data set's owner decides, and the
    approvers its classification needs (`grounding_plan`). Grounding asks for it inside the
    transaction that creates the grounding, so both commit together; when the policy approves it
    at once, the grounding is active before that transaction ends."""
    deployment, data_set = grounding.deployment, grounding.data_set
    request = DeploymentRequest(
        kind=Kind.GROUNDING,
        department=deployment.department,
        requester=actor,
        grounding=grounding,
        target=deployment,
        purpose=purpose,
        display_name=f"{data_set.name} for {deployment.display_name}"[:120],
        data_classification=data_set.data_classification,
    )
    request.save()
    audit_record(
        actor=actor,
        verb="request.created",
        target=request,
        department=request.department,
        after=request.snapshot(),
        note=f"Ground {deployment.display_name} on {data_set.name} ({data_set.department.name})",
    )
    edit_record(request=request, actor=actor, action=RequestEdit.Action.CREATED, changes=[])
    edit_record(request=request, actor=actor, action=RequestEdit.Action.SUBMITTED, changes=[])
    before = request.snapshot()
    request.round = 1
    request.state = State.SUBMITTED
    request.submitted_at = timezone.now()
    request.save()
    plan = grounding_plan(
        deployment=deployment, data_set=data_set, requester=actor, policy=ApprovalPolicy.current()
    )
    return _open_round(request, plan, actor=actor, before=before)


def request_withdraw_for_grounding(*, grounding: Grounding, actor: User | None) -> list[int]:
    """The grounding waiting for approval was withdrawn: its open request has nothing left to decide."""
    return _withdraw_open(
        DeploymentRequest.objects.filter(grounding=grounding),
        actor=actor,
        note="The data set was taken off the assistant, so nothing is left to decide.",
    )


def _pending_owner_steps(**filters: object) -> list[ApprovalStep]:
    return list(
        ApprovalStep.objects.filter(
            kind=ApprovalStep.Kind.DATA_OWNER,
            state=StepState.PENDING,
            request__state=State.SUBMITTED,
            request__kind=Kind.GROUNDING,
            **filters,
        ).select_related("request", "assignee")
    )


def grounding_steps_follow_owner(*, data_set: DataSet) -> list[int]:
    """The data set has a new owner: the groundings still waiting for its old owner wait for the
    new one now, who is told by email."""
    moved = []
    for step in _pending_owner_steps(request__grounding__data_set=data_set):
        with transaction.atomic():
            request = _lock(step.request)
            step = (
                ApprovalStep.objects.select_for_update(of=("self",))
                .select_related("assignee")
                .get(pk=step.pk)
            )
            if step.state != StepState.PENDING or step.assignee_id == data_set.owner_id:
                continue
            was = step.assignee.display_name if step.assignee else "nobody"
            owner = data_set.owner
            step.assignee = owner
            step.reason = (
                f"{owner.display_name} owns {data_set.name} ({data_set.department.name}) and decides "
                "which assistants answer from it."
            )
            step.save(update_fields=["assignee", "reason"])
            audit_record(
                actor=None,
                verb="request.reassigned",
                target=request,
                department=request.department,
                after={"step": step.kind, "assignee": owner.pk},
                note=f"{data_set.name} has a new owner: the approval waits for {owner.display_name} "
                f"now instead of {was}.",
            )
            notifications.waiting_for_approval(request)
            moved.append(request.pk)
    return moved


def grounding_steps_owner_left(*, user_id: int, department_id: int) -> list[int]:
    """The person `user_id` no longer leads a department whose data sets they own: the groundings waiting for
    them go to the platform admins, who decide in the owner's place (or give the data set a new
    owner, and the approval follows). The trail and an email say so."""
    warned = []
    for step in _pending_owner_steps(
        assignee_id=user_id, request__grounding__data_set__department_id=department_id
    ):
        owner = step.assignee.display_name if step.assignee else "The owner"
        with transaction.atomic():
            request = _lock(step.request)
            audit_record(
                actor=None,
                verb="request.owner_left",
                target=request,
                department=request.department,
                after={"step": step.kind, "assignee": user_id},
                note=f"{owner}, the data set's owner, no longer leads its department: a platform admin "
                "decides in their place, or gives the data set a new owner.",
            )
            notifications.waiting_for_approval(request)
            warned.append(request.pk)
    return warned


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
                actor=None,
                verb="request.expiry_warned",
                target=locked,
                department=locked.department,
                note=f"Expires {locked.expires_on}",
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
                kind=Kind.DECOMMISSION, department=request.department, requester=None
            )
            spec = RequestSpec(
                purpose=f"{request.deployment.display_name} reached the expiry date set in request "
                f"#{request.pk} ({request.expires_on:%d %b %Y}).",
                data_classification=request.data_classification,
                target=request.deployment,
            )
            _apply_spec(decommission, spec)
            decommission.save()
            audit_record(
                actor=None,
                verb="request.created",
                target=decommission,
                department=decommission.department,
                after=decommission.snapshot(),
                note="Expiry date reached",
            )
            _submit(decommission, None)
            decommissioning.append(decommission.pk)
    if warned or decommissioning:
        logger.info("Expiry: warned about %s, asked to decommission %s", warned, decommissioning)
    return {"warned": warned, "decommission_requests": decommissioning}
