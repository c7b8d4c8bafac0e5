"""The provisioning engine: bring Azure in line with what Switchyard's database says.

Each service call advances one run as far as Azure allows right now and then says when to look
again. Every step is idempotent (resource names are deterministic, and each step first asks
Azure what exists), so a repeated or interrupted run creates nothing twice. Long-running
operations are started without waiting (`polling=False`); the Celery task re-schedules itself
instead of a worker sleeping.
"""

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisioning.azure import cognitive_services_client
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.removal import delete_account, delete_deployment, purge_account
from provisioning.signals import deployment_run_finished
from provisioning.steps import PermanentAzureError as PermanentAzureError
from provisioning.steps import (
    StepFunction,
    Wait,
    ensure_account,
    ensure_content_filter,
    ensure_deployment,
    grant_data_access,
)
from provisioning.steps import TransientAzureError as TransientAzureError
from provisioning.steps import region_label as region_label

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


def _start_run(deployment: ModelDeployment, state: str) -> str:
    deployment.state = state
    deployment.run += 1
    deployment.run_token = uuid.uuid4().hex
    deployment.status_message = ""
    deployment.next_step_at = timezone.now()
    deployment.save(
        update_fields=["state", "run", "run_token", "status_message", "next_step_at", "updated_at"]
    )
    return deployment.run_token


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
        raise ValueError("Capacity is at least 1.")
    with transaction.atomic():
        locked = ModelDeployment.objects.select_for_update().get(pk=deployment.pk)
        if locked.state != State.ACTIVE:
            raise ValueError(
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
    token spent. Only one message at a time can own the run, and the row lock keeps two
    deliveries of it apart.
    """
    cutoff = timezone.now() - timedelta(seconds=overdue_seconds)
    overdue = Q(next_step_at__lt=cutoff) | Q(next_step_at__isnull=True, updated_at__lt=cutoff)
    resumed = []
    for deployment_id in (
        ModelDeployment.objects.runs_under_way().filter(overdue).values_list("pk", flat=True)
    ):
        with transaction.atomic():
            # A row a worker has locked is a step running right now, not a stalled one.
            deployment = (
                ModelDeployment.objects.select_for_update(skip_locked=True)
                .runs_under_way()
                .filter(overdue, pk=deployment_id)
                .first()
            )
            if deployment is None:
                continue
            deployment.next_step_at = timezone.now()
            deployment.save(update_fields=["next_step_at"])
            task = _task_for(deployment)
            transaction.on_commit(functools.partial(task.delay, deployment.pk, deployment.run_token))
            resumed.append(deployment.pk)
    if resumed:
        logger.warning("Sent the overdue steps of deployments %s again", resumed)
    return resumed


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


def _advance(
    deployment_id: int,
    token: str | None,
    running_state: str,
    steps_for: Callable[[ModelDeployment], list[tuple[str, StepFunction]]],
) -> float | None:
    with transaction.atomic():
        deployment = (
            # Lock only the deployment row: the account is a nullable join PostgreSQL cannot lock.
            ModelDeployment.objects.select_for_update(of=("self",))
            .select_related("landing_zone", "department", "account")
            .get(pk=deployment_id)
        )
        if deployment.state != running_state or (token is not None and token != deployment.run_token):
            return None  # finished, failed, or superseded by a newer run: nothing to do
        if running_state == State.FAILED and not deployment.is_cleaning_up:
            return None  # the clean-up is over
        outcome = _run_steps(deployment, steps_for(deployment))
        if isinstance(outcome, PermanentAzureError):
            if running_state == State.FAILED:
                _stop_cleaning_up(deployment, str(outcome))
            else:
                clean_up = _is_first_provisioning(deployment) and not outcome.created_nothing
                _give_up(deployment, str(outcome), clean_up=clean_up)
            return None
        if outcome is None:
            _finish(deployment, running_state)
            return None
        # Waiting for Azure, or Azure was busy: the task schedules the next look.
        seconds = outcome.seconds if isinstance(outcome, Wait) else 0.0
        deployment.next_step_at = timezone.now() + timedelta(seconds=seconds)
        deployment.save(update_fields=["next_step_at", "updated_at"])
    if isinstance(outcome, TransientAzureError):
        raise outcome
    return outcome.seconds


def _run_steps(deployment: ModelDeployment, steps: list[tuple[str, StepFunction]]) -> Outcome:
    """Take the run's steps in order as far as Azure allows now, recording each one."""
    Status = ProvisioningOperation.Status
    # No retries inside the SDK: a throttled call returns to the task, which re-schedules
    # itself with backoff rather than sleeping in the worker.
    client = cognitive_services_client(deployment.landing_zone.subscription_id, retries=0)
    for step, function in steps:
        operation, _ = ProvisioningOperation.objects.get_or_create(
            deployment=deployment, run=deployment.run, step=step
        )
        if operation.status == Status.SUCCEEDED:
            continue
        try:
            result = function(deployment, client, operation)
        except TransientAzureError as error:
            operation.error, operation.status = str(error), Status.RUNNING
            operation.save(update_fields=["error", "status"])
            return error
        except PermanentAzureError as error:
            operation.error, operation.status, operation.finished_at = (
                str(error),
                Status.FAILED,
                timezone.now(),
            )
            operation.save(update_fields=["error", "status", "finished_at"])
            logger.info("Deployment %s failed at %s: %s", deployment.pk, step, error)
            return error
        if isinstance(result, Wait):
            operation.status = Status.WAITING
            operation.save(update_fields=["status", "error"])
            return result
        operation.status, operation.error, operation.finished_at = Status.SUCCEEDED, "", timezone.now()
        operation.save(update_fields=["status", "error", "finished_at"])
    return None


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
    logger.info("Deployment %s is %s", deployment.pk, deployment.state)
    _announce_finished(deployment)


# Giving up -------------------------------------------------------------------------------------

CLEANED_UP = "What the run created in Azure has been removed, so it holds no quota."


def _give_up(deployment: ModelDeployment, message: str, *, clean_up: bool) -> None:
    """End the run as failed, telling the lead why. A first provisioning run that got as far as
    Azure then removes what it created there: a failed deployment keeps holding its quota, and
    an account nothing uses only counts against the region's accounts."""
    from provisioning.tasks import clean_up_failed_run_task

    deployment.state = State.FAILED
    deployment.status_message = message
    deployment.run_token = ""
    deployment.next_step_at = None
    if clean_up and deployment.account_id is not None:
        deployment.run_token = token = uuid.uuid4().hex
        deployment.next_step_at = timezone.now()
        transaction.on_commit(lambda: clean_up_failed_run_task.delay(deployment.pk, token))
    deployment.save(update_fields=["state", "status_message", "run_token", "next_step_at", "updated_at"])
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
