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

from django.db import transaction
from django.utils import timezone

from provisioning.azure import cognitive_services_client
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.signals import deployment_run_finished
from provisioning.steps import PermanentAzureError as PermanentAzureError
from provisioning.steps import (
    StepFunction,
    Wait,
    delete_account,
    delete_deployment,
    ensure_account,
    ensure_content_filter,
    ensure_deployment,
    grant_data_access,
    purge_account,
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
    deployment.save(update_fields=["state", "run", "run_token", "status_message", "updated_at"])
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


def deployments_resume_stalled(*, older_than_seconds: float) -> list[int]:
    """Runs nobody has advanced for a while (a worker died mid-run): start them again.

    A fresh token makes any late message of the old attempt a no-op.
    """
    from provisioning.tasks import decommission_deployment_task, provision_deployment_task

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    resumed = []
    running = [State.PROVISIONING, State.DECOMMISSIONING]
    for deployment_id in ModelDeployment.objects.filter(state__in=running, updated_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            deployment = ModelDeployment.objects.select_for_update().get(pk=deployment_id)
            if deployment.state not in running or deployment.updated_at >= cutoff:
                continue
            deployment.run_token = uuid.uuid4().hex
            deployment.save(update_fields=["run_token", "updated_at"])
            task = (
                decommission_deployment_task
                if deployment.state == State.DECOMMISSIONING
                else provision_deployment_task
            )
            token = deployment.run_token
            transaction.on_commit(functools.partial(task.delay, deployment.pk, token))
            resumed.append(deployment.pk)
    if resumed:
        logger.warning("Resumed stalled provisioning runs of deployments %s", resumed)
    return resumed


def deployment_fail(*, deployment_id: int, message: str) -> None:
    with transaction.atomic():
        deployment = ModelDeployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.state not in State.in_flight():
            return
        deployment.state = State.FAILED
        deployment.status_message = message
        deployment.run_token = ""
        deployment.save(update_fields=["state", "status_message", "run_token", "updated_at"])
        _announce_finished(deployment)
        ProvisioningOperation.objects.filter(
            deployment=deployment,
            run=deployment.run,
            status__in=[ProvisioningOperation.Status.RUNNING, ProvisioningOperation.Status.WAITING],
        ).update(status=ProvisioningOperation.Status.FAILED, error=message, finished_at=timezone.now())


# Running runs ----------------------------------------------------------------------------------


def deployment_provision(*, deployment_id: int, token: str | None = None) -> float | None:
    """Advance a provisioning run. Returns seconds until the next look, or None when done."""
    return _advance(deployment_id, token, State.PROVISIONING, _provisioning_steps)


def deployment_decommission(*, deployment_id: int, token: str | None = None) -> float | None:
    """Advance a decommissioning run: delete the deployment, then the account once it is empty
    (purging it, so its name and quota are free at once)."""
    return _advance(deployment_id, token, State.DECOMMISSIONING, _decommission_steps)


def _advance(
    deployment_id: int,
    token: str | None,
    running_state: str,
    steps_for: Callable[[ModelDeployment], list[tuple[str, StepFunction]]],
) -> float | None:
    failure: Exception | None = None
    with transaction.atomic():
        deployment = (
            # Lock only the deployment row: the account is a nullable join PostgreSQL cannot lock.
            ModelDeployment.objects.select_for_update(of=("self",))
            .select_related("landing_zone", "department", "account")
            .get(pk=deployment_id)
        )
        if deployment.state != running_state or (token is not None and token != deployment.run_token):
            return None  # finished, failed, or superseded by a newer run: nothing to do
        # No retries inside the SDK: a throttled call returns to the task, which re-schedules
        # itself with backoff rather than sleeping in the worker.
        client = cognitive_services_client(deployment.landing_zone.subscription_id, retries=0)
        for step, function in steps_for(deployment):
            operation, _ = ProvisioningOperation.objects.get_or_create(
                deployment=deployment, run=deployment.run, step=step
            )
            if operation.status == ProvisioningOperation.Status.SUCCEEDED:
                continue
            try:
                result = function(deployment, client, operation)
            except TransientAzureError as error:
                operation.error = str(error)
                operation.status = ProvisioningOperation.Status.RUNNING
                operation.save(update_fields=["error", "status"])
                deployment.save(update_fields=["updated_at"])
                failure = error
                break
            except PermanentAzureError as error:
                operation.error = str(error)
                operation.status = ProvisioningOperation.Status.FAILED
                operation.finished_at = timezone.now()
                operation.save(update_fields=["error", "status", "finished_at"])
                deployment.state = State.FAILED
                deployment.status_message = str(error)
                deployment.run_token = ""
                deployment.save(update_fields=["state", "status_message", "run_token", "updated_at"])
                logger.info("Deployment %s failed at %s: %s", deployment.pk, step, error)
                _announce_finished(deployment)
                return None
            if isinstance(result, Wait):
                operation.status = ProvisioningOperation.Status.WAITING
                operation.save(update_fields=["status", "error"])
                deployment.save(update_fields=["updated_at"])
                return result.seconds
            operation.status = ProvisioningOperation.Status.SUCCEEDED
            operation.error = ""
            operation.finished_at = timezone.now()
            operation.save(update_fields=["status", "error", "finished_at"])
        else:
            deployment.state = State.ACTIVE if running_state == State.PROVISIONING else State.DECOMMISSIONED
            deployment.run_token = ""
            deployment.save(update_fields=["state", "run_token", "account", "updated_at"])
            logger.info("Deployment %s is %s", deployment.pk, deployment.state)
            _announce_finished(deployment)
            return None
    assert failure is not None
    raise failure


def _provisioning_steps(deployment: ModelDeployment) -> list[tuple[str, StepFunction]]:
    was_deployed = deployment.operations.filter(
        run__lt=deployment.run,
        step__in=[Step.ENSURE_DEPLOYMENT, Step.CHANGE_CAPACITY],
        status=ProvisioningOperation.Status.SUCCEEDED,
    ).exists()
    if was_deployed:
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
    return (
        ModelDeployment.objects.filter(account=deployment.account)
        .exclude(pk=deployment.pk)
        .exclude(state__in=[State.DECOMMISSIONED, State.FAILED])
        .exists()
    )
