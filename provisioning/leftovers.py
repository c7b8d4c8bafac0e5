"""Removing what the drift check found left over in Azure: a platform admin asks, a Celery task
deletes it (and purges an account, so its quota and name are free at once), step by step, as a
provisioning run does, and like it with no database transaction open while Azure answers.
Every request and outcome goes to the audit trail."""

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from org.models import User
from provisioning.azure import cognitive_services_client
from provisioning.azure_errors import PermanentAzureError, TransientAzureError
from provisioning.claims import Claim, claimed, claimed_if_free
from provisioning.drift import account_in_use, deployment_uses
from provisioning.models import LeftoverResource, ModelDeployment, OpenAIAccount, ProvisioningOperation
from provisioning.steps.common import DONE, StepResult, Wait
from provisioning.steps.removal import purge_deleted_account, remove_account, remove_model_deployment

logger = logging.getLogger(__name__)

Kind = LeftoverResource.Kind
State = LeftoverResource.State
Status = ProvisioningOperation.Status


class LeftoverRemovalRefused(Exception):
    """The removal cannot start; the message says why, for the admin who asked."""


def leftover_remove(*, leftover: LeftoverResource, actor: User) -> LeftoverResource:
    """Start removing a leftover from Azure once the caller's transaction commits."""
    from provisioning.tasks import remove_leftover_task

    if not actor.is_platform_admin:
        raise LeftoverRemovalRefused("Only platform admins remove what is left over in Azure.")
    with transaction.atomic():
        locked = (
            LeftoverResource.objects.select_for_update().select_related("landing_zone").get(pk=leftover.pk)
        )
        if locked.state == State.REMOVING:
            raise LeftoverRemovalRefused(f"The {locked} is already being removed.")
        if _used_again(locked):
            raise LeftoverRemovalRefused(
                f"A Switchyard deployment uses the {locked} again, so it is not left over any more."
            )
        before = locked.snapshot()
        locked.state, locked.error = State.REMOVING, ""
        locked.step, locked.status, locked.attempt = _steps(locked)[0][0], Status.RUNNING, 1
        locked.token, locked.next_step_at = uuid.uuid4().hex, timezone.now()
        locked.save()
        audit_record(
            actor=actor,
            verb="leftover.removal_requested",
            target=locked,
            before=before,
            after=locked.snapshot(),
        )
        transaction.on_commit(functools.partial(remove_leftover_task.delay, locked.pk, locked.token))
    return locked


def _used_again(leftover: LeftoverResource) -> bool:
    """Checked again when the removal is asked for: the drift check may be minutes old."""
    zone = leftover.landing_zone
    if leftover.kind == Kind.DEPLOYMENT:
        records = ModelDeployment.objects.live().filter(
            landing_zone=zone, account__name=leftover.account_name, name=leftover.deployment_name
        )
        return any(deployment_uses(record) for record in records)
    row = OpenAIAccount.objects.filter(landing_zone=zone, name=leftover.account_name).first()
    return row is not None and account_in_use(row)


# The removal's steps -----------------------------------------------------------------------------

StepFunction = Callable[[LeftoverResource, CognitiveServicesManagementClient], StepResult]


def _delete_deployment(leftover: LeftoverResource, client: CognitiveServicesManagementClient) -> StepResult:
    group = leftover.landing_zone.resource_group
    return remove_model_deployment(
        client, leftover, group=group, account=leftover.account_name, name=leftover.deployment_name
    )


def _delete_account(leftover: LeftoverResource, client: CognitiveServicesManagementClient) -> StepResult:
    return remove_account(
        client, leftover, group=leftover.landing_zone.resource_group, name=leftover.account_name
    )


def _purge_account(leftover: LeftoverResource, client: CognitiveServicesManagementClient) -> StepResult:
    group = leftover.landing_zone.resource_group
    return purge_deleted_account(
        client, leftover, region=leftover.region, group=group, name=leftover.account_name
    )


def _steps(leftover: LeftoverResource) -> list[tuple[str, StepFunction]]:
    if leftover.kind == Kind.DEPLOYMENT:
        return [("delete", _delete_deployment)]
    if leftover.kind == Kind.ACCOUNT:
        return [("delete", _delete_account), ("purge", _purge_account)]
    return [("purge", _purge_account)]


def leftover_advance_removal(*, leftover_id: int, token: str | None = None) -> float | None:
    """Advance a removal as far as Azure allows now. Returns seconds until the next look, or None
    when it is over (the row goes: Azure no longer has the resource) or not this message's."""
    # One worker at a time, as a deployment's run (provisioning.services).
    with claimed(Claim.LEFTOVER_REMOVAL, leftover_id):
        leftover = LeftoverResource.objects.select_related("landing_zone").filter(pk=leftover_id).first()
        if leftover is None or leftover.state != State.REMOVING or token not in {None, leftover.token}:
            return None
        outcome = _take_steps(leftover)
    if isinstance(outcome, TransientAzureError):
        raise outcome
    return outcome.seconds if isinstance(outcome, Wait) else None


Outcome = Wait | TransientAzureError | PermanentAzureError | None
# What a step changes on the row as the removal goes; saved with its outcome.
REMOVAL_FIELDS = ("step", "status", "attempt", "error", "next_step_at")


def _take_steps(leftover: LeftoverResource) -> Wait | TransientAzureError | None:
    client = cognitive_services_client(leftover.landing_zone.subscription_id, retries=0)
    taken = leftover.token
    steps = _steps(leftover)
    start = next(n for n, (step, _) in enumerate(steps) if step == leftover.step)
    for step, function in steps[start:]:
        if step != leftover.step:
            leftover.step, leftover.status, leftover.attempt = step, Status.RUNNING, 1
        try:
            outcome: Outcome = function(leftover, client)
        except (TransientAzureError, PermanentAzureError) as error:
            outcome = error
        if outcome is DONE:
            continue  # the next step starts; a removal taken up again asks Azure afresh
        if not _record(leftover, taken, outcome) or isinstance(outcome, PermanentAzureError):
            return None
        return outcome
    _removed(leftover.pk, taken)
    return None


def _record(leftover: LeftoverResource, taken: str, outcome: Outcome) -> bool:
    """Save where the removal stands, unless it changed while Azure answered (False)."""
    with transaction.atomic():
        locked = _lock(leftover.pk, taken)
        if locked is None:
            return False
        if isinstance(outcome, TransientAzureError):
            leftover.error, leftover.next_step_at = str(outcome), timezone.now()
        elif isinstance(outcome, Wait):
            leftover.status, leftover.error = Status.WAITING, ""
            leftover.next_step_at = timezone.now() + timedelta(seconds=outcome.seconds)
        for name in REMOVAL_FIELDS:
            setattr(locked, name, getattr(leftover, name))
        if isinstance(outcome, PermanentAzureError):
            _removal_failed(locked, str(outcome))
        else:
            locked.save(update_fields=list(REMOVAL_FIELDS))
    return True


def _removed(leftover_id: int, taken: str) -> None:
    with transaction.atomic():
        leftover = _lock(leftover_id, taken)
        if leftover is None:
            return
        audit_record(actor=None, verb="leftover.removed", target=leftover, before=leftover.snapshot())
        logger.info("Removed the leftover %s from Azure", leftover)
        leftover.delete()


def _lock(leftover_id: int, token: str | None) -> LeftoverResource | None:
    leftover = (
        LeftoverResource.objects.select_for_update(of=("self",))
        .select_related("landing_zone")
        .filter(pk=leftover_id, state=State.REMOVING)
        .first()
    )
    if leftover is None or (token is not None and token != leftover.token):
        return None
    return leftover


def _removal_failed(leftover: LeftoverResource, error: str) -> None:
    before = leftover.snapshot()
    leftover.state, leftover.error, leftover.token, leftover.next_step_at = (
        State.REMOVAL_FAILED,
        error,
        "",
        None,
    )
    leftover.save()
    audit_record(
        actor=None, verb="leftover.removal_failed", target=leftover, before=before, after=leftover.snapshot()
    )
    logger.warning("Removing the leftover %s failed: %s", leftover, error)


def leftover_schedule_next_step(*, leftover_id: int, token: str | None, seconds: float) -> str | None:
    """As a run's next step: a fresh token for the message that will carry it."""
    with transaction.atomic():
        leftover = _lock(leftover_id, token)
        if leftover is None:
            return None
        leftover.token = uuid.uuid4().hex
        leftover.next_step_at = timezone.now() + timedelta(seconds=seconds)
        leftover.save(update_fields=["token", "next_step_at"])
        return leftover.token


def leftover_fail(*, leftover_id: int, message: str, token: str | None = None) -> None:
    with transaction.atomic():
        leftover = _lock(leftover_id, token)
        if leftover is not None:
            _removal_failed(leftover, message)


def leftovers_resume_stalled(*, overdue_seconds: float) -> list[int]:
    """Removals whose next step is overdue lost their message with a worker: send it again,
    with the current token (see deployments_resume_stalled)."""
    cutoff = timezone.now() - timedelta(seconds=overdue_seconds)
    overdue = Q(state=State.REMOVING) & (Q(next_step_at__lt=cutoff) | Q(next_step_at__isnull=True))
    resumed = []
    for leftover_id in LeftoverResource.objects.filter(overdue).values_list("pk", flat=True):
        # A removal a worker has claimed is a step running right now, not a stalled one.
        with claimed_if_free(Claim.LEFTOVER_REMOVAL, leftover_id) as free:
            if free and _send_again(leftover_id, overdue):
                resumed.append(leftover_id)
    return resumed


def _send_again(leftover_id: int, overdue: Q) -> bool:
    from provisioning.tasks import remove_leftover_task

    with transaction.atomic():
        leftover = LeftoverResource.objects.select_for_update().filter(overdue, pk=leftover_id).first()
        if leftover is None:
            return False
        leftover.next_step_at = timezone.now()
        leftover.save(update_fields=["next_step_at"])
        transaction.on_commit(functools.partial(remove_leftover_task.delay, leftover.pk, leftover.token))
        return True
