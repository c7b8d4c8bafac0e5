"""The provisioning engine's run state machine: bring Azure in line with what Switchyard's
database says.

A deployment's run (provisioning, decommissioning, or the clean-up of a failed run) starts here
and is advanced by a Celery task: each call takes the run's steps (provisioning.steps) as far as
Azure allows right now and then says when to look again. Every step is idempotent (resource
names are deterministic, and each step first asks Azure what exists), so a repeated or
interrupted run creates nothing twice. Long-running operations are started without waiting
(`polling=False`); the Celery task re-schedules itself instead of a worker sleeping.

No database transaction is open while Azure answers. A call claims the run (provisioning.claims:
one worker at a time, freed if the worker dies) and reads it; then, step by step, it calls
Azure with no transaction open and records the step's outcome in a short transaction that
first checks, under the row's lock, that the run is still the same run. A cancel, a
decommission or a newer run may have replaced it while Azure answered: then the call records
nothing more and stops, and the run that replaced it goes on.
"""

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from base.metrics import provisioning_run_observed
from provisioning.azure import cognitive_services_client
from provisioning.azure_errors import PermanentAzureError, TransientAzureError
from provisioning.claims import Claim, claimed, claimed_if_free
from provisioning.errors import ProvisioningRefused
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.signals import deployment_run_finished
from provisioning.steps.account import ensure_account
from provisioning.steps.common import DONE, StepFunction, Wait
from provisioning.steps.content_filter import ensure_content_filter
from provisioning.steps.data_access import grant_data_access
from provisioning.steps.deployment import ensure_deployment
from provisioning.steps.removal import delete_account, delete_deployment, purge_account

logger = logging.getLogger(__name__)

Step = ProvisioningOperation.Step
State = ModelDeployment.State

# Starting runs ---------------------------------------------------------------------------------


def _announce_finished(deployment: ModelDeployment) -> None:
    """Tell whoever follows this deployment (a request waiting on it) once the run's end commits."""
    deployment_id, state = deployment.pk, deployment.state
    transaction.on_commit(
        lambda: deployment_run_finished.send(ModelDeployment, deployment_id=deployment_id, state=state)
    )


def _run_observed(deployment: ModelDeployment, *, kind: str, outcome: str) -> None:
    """Count the run's end and its duration (from its first step) in Prometheus's series
    (base.metrics), once its end commits."""
    started = (
        ProvisioningOperation.objects.filter(deployment=deployment, run=deployment.run)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    seconds = (timezone.now() - started).total_seconds() if started is not None else None
    transaction.on_commit(lambda: provisioning_run_observed(kind=kind, outcome=outcome, seconds=seconds))


def _start_run(deployment: ModelDeployment, state: str) -> str:
    deployment.state = state
    deployment.run += 1
    deployment.run_token = uuid.uuid4().hex
    deployment.status_message = ""
    deployment.next_step_at = timezone.now()
    deployment.save(
        update_fields=["state", "run", "run_token", "status_message", "next_step_at", "updated_at"]
    )
    _run_record(deployment, "provisioning.started")
    return deployment.run_token


def _run_record(deployment: ModelDeployment, verb: str, note: str = "") -> None:
    """Audit a run's start or end (a provisioning or a decommissioning run, as its state says),
    in the transaction that records it; Switchyard acts."""
    audit_record(
        actor=None,
        verb=verb,
        target=deployment,
        department=deployment.department,
        after={"run": deployment.run, "state": deployment.state},
        note=note,
    )


def deployment_request_provisioning(*, deployment: ModelDeployment) -> ModelDeployment:
    """Start provisioning a new (or failed) deployment once the caller's transaction commits."""
    from provisioning.tasks import provision_deployment_task

    with transaction.atomic():
        locked = ModelDeployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.state not in {State.REQUESTED, State.FAILED}:
            return locked
        token = _start_run(locked, State.PROVISIONING)
        transaction.on_commit(lambda: provision_deployment_task.delay(locked.pk, token))
    return locked


def deployment_change_capacity(*, deployment: ModelDeployment, capacity: int) -> ModelDeployment:
    """Resize an active deployment: the next run PUTs the deployment with the new capacity."""
    from provisioning.tasks import provision_deployment_task

    if capacity < 1:
        raise ProvisioningRefused("Capacity is at least 1.")
    with transaction.atomic():
        locked = ModelDeployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.state != State.ACTIVE:
            raise ProvisioningRefused(
                f"Only an active deployment can change capacity; this one is {locked.get_state_display()}."
            )
        if locked.capacity == capacity:
            return locked
        locked.capacity = capacity
        locked.save(update_fields=["capacity", "updated_at"])
        token = _start_run(locked, State.PROVISIONING)
        transaction.on_commit(lambda: provision_deployment_task.delay(locked.pk, token))
    return locked


def deployment_request_decommission(*, deployment: ModelDeployment) -> ModelDeployment:
    from provisioning.tasks import decommission_deployment_task

    with transaction.atomic():
        locked = ModelDeployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.state in {State.DECOMMISSIONING, State.DECOMMISSIONED}:
            return locked
        token = _start_run(locked, State.DECOMMISSIONING)
        transaction.on_commit(lambda: decommission_deployment_task.delay(locked.pk, token))
    return locked


def deployment_schedule_next_step(*, deployment_id: int, token: str | None, seconds: float) -> str | None:
    """The run looks at Azure again in `seconds`: the message that will carry that step gets a
    fresh token, so the message that carried this one (or a copy of it) can no longer advance
    the run. Returns the new token, or None when this message no longer owns the run."""
    with transaction.atomic():
        deployment = ModelDeployment.objects.select_for_update().get(pk=deployment_id)
        if not _is_under_way(deployment) or (token is not None and token != deployment.run_token):
            return None
        deployment.run_token = uuid.uuid4().hex
        deployment.next_step_at = timezone.now() + timedelta(seconds=seconds)
        deployment.save(update_fields=["run_token", "next_step_at", "updated_at"])
        return deployment.run_token


def deployments_resume_stalled(*, overdue_seconds: float) -> list[int]:
    """Runs whose next step is overdue: its message was lost with a worker that died holding it
    (a countdown task waits in the worker's memory; the filesystem broker never hands a taken
    message out again, Redis only after its visibility timeout). Send the step again.

    The copy carries the run's current token: if the first message was only late, whichever
    runs first advances the run and hands the next step a new token, and the other finds its
    token spent. Only one message at a time can own the run, and the run's claim keeps two
    deliveries of it apart.
    """
    cutoff = timezone.now() - timedelta(seconds=overdue_seconds)
    overdue = Q(next_step_at__lt=cutoff) | Q(next_step_at__isnull=True, updated_at__lt=cutoff)
    resumed = []
    for deployment_id in (
        ModelDeployment.objects.runs_under_way().filter(overdue).values_list("pk", flat=True)
    ):
        # A run a worker has claimed is a step running right now (Azure may be slow to answer),
        # not a stalled one; a killed worker's claim is gone with it.
        with claimed_if_free(Claim.RUN, deployment_id) as free:
            if free and _send_again(deployment_id, overdue):
                resumed.append(deployment_id)
    if resumed:
        logger.warning("Sent the overdue steps of deployments %s again", resumed)
    return resumed


def _send_again(deployment_id: int, overdue: Q) -> bool:
    with transaction.atomic():
        deployment = (
            ModelDeployment.objects.select_for_update()
            .runs_under_way()
            .filter(overdue, pk=deployment_id)
            .first()
        )
        if deployment is None:
            return False
        deployment.next_step_at = timezone.now()
        deployment.save(update_fields=["next_step_at"])
        task = _task_for(deployment)
        transaction.on_commit(functools.partial(task.delay, deployment.pk, deployment.run_token))
        return True


def _task_for(deployment: ModelDeployment) -> "Task[Any, Any]":
    from provisioning import tasks

    if deployment.state == State.DECOMMISSIONING:
        return tasks.decommission_deployment_task
    if deployment.state == State.FAILED:
        return tasks.clean_up_failed_run_task
    return tasks.provision_deployment_task


def _is_under_way(deployment: ModelDeployment) -> bool:
    return deployment.state in {State.PROVISIONING, State.DECOMMISSIONING} or deployment.is_cleaning_up


def deployment_fail(*, deployment_id: int, message: str, token: str | None = None) -> None:
    """The task gave up retrying: end the run (or its clean-up) with `message`."""
    with transaction.atomic():
        deployment = ModelDeployment.objects.select_for_update().get(pk=deployment_id)
        if token is not None and token != deployment.run_token:
            return
        if not (deployment.state in State.in_flight() or deployment.is_cleaning_up):
            return
        ProvisioningOperation.objects.filter(
            deployment=deployment,
            run=deployment.run,
            status__in=[ProvisioningOperation.Status.RUNNING, ProvisioningOperation.Status.WAITING],
        ).update(status=ProvisioningOperation.Status.FAILED, error=message, finished_at=timezone.now())
        if deployment.is_cleaning_up:
            _stop_cleaning_up(deployment, message)
        else:
            _give_up(deployment, message, clean_up=_is_first_provisioning(deployment))


# Running runs ----------------------------------------------------------------------------------


def deployment_provision(*, deployment_id: int, token: str | None = None) -> float | None:
    """Advance a provisioning run. Returns seconds until the next look, or None when done."""
    return _advance(deployment_id, token, State.PROVISIONING, _provisioning_steps)


def deployment_decommission(*, deployment_id: int, token: str | None = None) -> float | None:
    """Advance a decommissioning run: delete the deployment, then the account once it is empty
    (purging it, so its name and quota are free at once)."""
    return _advance(deployment_id, token, State.DECOMMISSIONING, _decommission_steps)


def deployment_clean_up(*, deployment_id: int, token: str | None = None) -> float | None:
    """Advance the clean-up of a failed provisioning run: delete the deployment it left in
    Azure (a failed deployment still holds its quota), then its account if nothing else uses
    it, purged (a deleted account holds its quota for 48 hours)."""
    return _advance(deployment_id, token, State.FAILED, _decommission_steps)


Outcome = Wait | TransientAzureError | PermanentAzureError | None


@dataclass(frozen=True)
class _Run:
    """A run as this call took it: the deployment as its steps see (and change) it, and the
    run's token then. Any other token later means the run ended or another replaced it."""

    deployment: ModelDeployment
    token: str
    state: str
    steps: list[tuple[str, StepFunction]]


def _advance(
    deployment_id: int,
    token: str | None,
    running_state: str,
    steps_for: Callable[[ModelDeployment], list[tuple[str, StepFunction]]],
) -> float | None:
    # One worker at a time takes a run's steps: a second delivery of the message (or a copy the
    # overdue check sent) waits its turn, then finds the run moved on.
    with claimed(Claim.RUN, deployment_id):
        run = _take(deployment_id, token, running_state, steps_for)
        outcome = _run_steps(run) if run is not None else None
    if isinstance(outcome, TransientAzureError):
        raise outcome
    return outcome.seconds if isinstance(outcome, Wait) else None


def _take(
    deployment_id: int,
    token: str | None,
    running_state: str,
    steps_for: Callable[[ModelDeployment], list[tuple[str, StepFunction]]],
) -> _Run | None:
    """The run, if this message may advance it. A plain read: whatever changes after it, each
    step's record checks again under the row's lock."""
    deployment = ModelDeployment.objects.select_related("landing_zone", "department", "account").get(
        pk=deployment_id
    )
    if deployment.state != running_state or (token is not None and token != deployment.run_token):
        return None  # finished, failed, or superseded by a newer run: nothing to do
    if running_state == State.FAILED and not deployment.is_cleaning_up:
        return None  # the clean-up is over
    return _Run(deployment, deployment.run_token, running_state, steps_for(deployment))


def _run_steps(run: _Run) -> Wait | TransientAzureError | None:
    """Take the run's steps in order as far as Azure allows now, recording each one. Returns
    what the task does next: look again after a wait, retry after Azure was busy, or nothing
    (the run ended, or another replaced it)."""
    # No retries inside the SDK: a throttled call returns to the task, which re-schedules
    # itself with backoff rather than sleeping in the worker.
    client = cognitive_services_client(run.deployment.landing_zone.subscription_id, retries=0)
    for step, function in run.steps:
        operation = _operation(run, step)
        if operation is None:
            return None
        if operation.status == ProvisioningOperation.Status.SUCCEEDED:
            continue
        try:
            outcome: Outcome = function(run.deployment, client, operation)
        except (TransientAzureError, PermanentAzureError) as error:
            outcome = error
        if not _record(run, operation, outcome) or isinstance(outcome, PermanentAzureError):
            return None
        if outcome is not DONE:
            return outcome
    _finish_if_same(run)
    return None


def _lock_if_same(run: _Run) -> ModelDeployment | None:
    """The deployment's row, locked for the rest of the transaction, if it is still this run's."""
    deployment = ModelDeployment.objects.select_for_update().get(pk=run.deployment.pk)
    if deployment.run_token != run.token or deployment.state != run.state:
        return None
    return deployment


def _operation(run: _Run, step: str) -> ProvisioningOperation | None:
    """The step's record in this run, created when the step is first taken (None: the run was
    replaced meanwhile)."""
    key = {"deployment_id": run.deployment.pk, "run": run.deployment.run, "step": step}
    operation = ProvisioningOperation.objects.filter(**key).first()
    if operation is not None:
        return operation
    with transaction.atomic():
        if _lock_if_same(run) is None:
            return None
        return ProvisioningOperation.objects.create(**key)


def _record(run: _Run, operation: ProvisioningOperation, outcome: Outcome) -> bool:
    """Save the step's outcome and what it means for the run, unless the run changed while Azure
    answered (False: then nothing is saved)."""
    with transaction.atomic():
        deployment = _lock_if_same(run)
        if deployment is None:
            logger.info("Deployment %s: its run was replaced while Azure answered", run.deployment.pk)
            return False
        _save_operation(operation, outcome)
        _save_step_changes(deployment, run.deployment)
        if isinstance(outcome, PermanentAzureError):
            logger.info("Deployment %s failed at %s: %s", deployment.pk, operation.step, outcome)
            _end_in_failure(deployment, run.state, outcome)
        elif outcome is not DONE:
            # Waiting for Azure, or Azure was busy: the task schedules the next look.
            seconds = outcome.seconds if isinstance(outcome, Wait) else 0.0
            deployment.next_step_at = timezone.now() + timedelta(seconds=seconds)
            deployment.save(update_fields=["next_step_at", "updated_at"])
    return True


def _save_step_changes(deployment: ModelDeployment, stepped: ModelDeployment) -> None:
    """What a step changed on the deployment itself: the account it took, the drift it cleared."""
    changed = []
    if deployment.account_id != stepped.account_id:
        deployment.account_id = stepped.account_id
        changed.append("account")
    if deployment.drift != stepped.drift:
        deployment.drift = stepped.drift
        changed.append("drift")
    if changed:
        deployment.save(update_fields=changed)


def _save_operation(operation: ProvisioningOperation, outcome: Outcome) -> None:
    Status = ProvisioningOperation.Status
    if isinstance(outcome, TransientAzureError):
        operation.error, operation.status = str(outcome), Status.RUNNING
    elif isinstance(outcome, PermanentAzureError):
        operation.error, operation.status, operation.finished_at = str(outcome), Status.FAILED, timezone.now()
    elif isinstance(outcome, Wait):
        operation.status = Status.WAITING
    else:
        operation.status, operation.error, operation.finished_at = Status.SUCCEEDED, "", timezone.now()
    # The step counted its attempts on the operation; they are saved with its outcome.
    operation.save(update_fields=["status", "error", "finished_at", "attempt"])


def _finish_if_same(run: _Run) -> None:
    with transaction.atomic():
        deployment = _lock_if_same(run)
        if deployment is not None:
            _finish(deployment, run.state)


def _finish(deployment: ModelDeployment, running_state: str) -> None:
    deployment.run_token = ""
    deployment.next_step_at = None
    if running_state == State.FAILED:
        deployment.status_message = f"{deployment.status_message} {CLEANED_UP}".strip()
        deployment.save(update_fields=["run_token", "next_step_at", "status_message", "updated_at"])
        logger.info("Deployment %s: what its failed run created in Azure is removed", deployment.pk)
        return
    deployment.state = State.ACTIVE if running_state == State.PROVISIONING else State.DECOMMISSIONED
    deployment.save(update_fields=["state", "run_token", "next_step_at", "account", "updated_at"])
    _run_record(deployment, "provisioning.succeeded")
    _run_observed(
        deployment,
        kind="provisioning" if running_state == State.PROVISIONING else "decommissioning",
        outcome="succeeded",
    )
    logger.info("Deployment %s is %s", deployment.pk, deployment.state)
    _announce_finished(deployment)


# Giving up -------------------------------------------------------------------------------------

CLEANED_UP = "What the run created in Azure has been removed, so it holds no quota."


def _end_in_failure(deployment: ModelDeployment, running_state: str, error: PermanentAzureError) -> None:
    if running_state == State.FAILED:
        _stop_cleaning_up(deployment, str(error))
    else:
        clean_up = _is_first_provisioning(deployment) and not error.created_nothing
        _give_up(deployment, str(error), clean_up=clean_up)


def _give_up(deployment: ModelDeployment, message: str, *, clean_up: bool) -> None:
    """End the run as failed, telling the lead why. A first provisioning run that got as far as
    Azure then removes what it created there: a failed deployment keeps holding its quota, and
    an account nothing uses only counts against the region's accounts."""
    from provisioning.tasks import clean_up_failed_run_task

    kind = "decommissioning" if deployment.state == State.DECOMMISSIONING else "provisioning"
    deployment.state = State.FAILED
    deployment.status_message = message
    deployment.run_token = ""
    deployment.next_step_at = None
    if clean_up and deployment.account_id is not None:
        deployment.run_token = token = uuid.uuid4().hex
        deployment.next_step_at = timezone.now()
        transaction.on_commit(lambda: clean_up_failed_run_task.delay(deployment.pk, token))
    deployment.save(update_fields=["state", "status_message", "run_token", "next_step_at", "updated_at"])
    _run_record(deployment, "provisioning.failed", note=message)
    _run_observed(deployment, kind=kind, outcome="failed")
    _announce_finished(deployment)


def _stop_cleaning_up(deployment: ModelDeployment, error: str) -> None:
    deployment.run_token = ""
    deployment.next_step_at = None
    deployment.status_message = (
        f"{deployment.status_message} Removing what the run created in Azure failed too: "
        f"{error.rstrip('.')}. The drift check lists it as left over on the Deployments page, where "
        "a platform admin can remove it."
    ).strip()
    deployment.save(update_fields=["run_token", "next_step_at", "status_message", "updated_at"])
    logger.warning("Deployment %s: the clean-up of its failed run gave up: %s", deployment.pk, error)


def _is_first_provisioning(deployment: ModelDeployment) -> bool:
    """A provisioning run of a deployment that was never up: all it has in Azure is this run's."""
    return deployment.state == State.PROVISIONING and not _was_deployed(deployment)


def _was_deployed(deployment: ModelDeployment) -> bool:
    return deployment.operations.filter(
        run__lt=deployment.run,
        step__in=[Step.ENSURE_DEPLOYMENT, Step.CHANGE_CAPACITY],
        status=ProvisioningOperation.Status.SUCCEEDED,
    ).exists()


# Steps of each kind of run ---------------------------------------------------------------------


def _provisioning_steps(deployment: ModelDeployment) -> list[tuple[str, StepFunction]]:
    if _was_deployed(deployment):
        # Everything around it is in place: a later run only changes the deployment itself.
        return [(Step.CHANGE_CAPACITY, ensure_deployment)]
    return [
        (Step.ENSURE_ACCOUNT, ensure_account),
        (Step.ENSURE_CONTENT_FILTER, ensure_content_filter),
        (Step.GRANT_ROLE, grant_data_access),
        (Step.ENSURE_DEPLOYMENT, ensure_deployment),
    ]


def _decommission_steps(deployment: ModelDeployment) -> list[tuple[str, StepFunction]]:
    steps: list[tuple[str, StepFunction]] = [(Step.DELETE_DEPLOYMENT, delete_deployment)]
    if deployment.account is not None and not _account_still_used(deployment):
        steps += [(Step.DELETE_ACCOUNT, delete_account), (Step.PURGE_ACCOUNT, purge_account)]
    return steps


def _account_still_used(deployment: ModelDeployment) -> bool:
    assert deployment.account is not None
    return ModelDeployment.objects.exclude(pk=deployment.pk).on_account(deployment.account).exists()
