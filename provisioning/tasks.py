"""Celery tasks: thin wrappers that take ids, call one service and own the retries."""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task

from provisioning import direct_access, drift, leftovers, search, services
from provisioning.azure_errors import TransientAzureError
from provisioning.catalog import catalog_sync_all

logger = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 120.0
# A run whose next step is this late lost its message with a worker; beat's check (every few
# seconds, CELERY_BEAT_SCHEDULE) sends the step again. A step that runs is not late: a worker
# holds its claim (provisioning.claims), and a worker takes a due message within a moment.
OVERDUE_AFTER_SECONDS = 10.0


def backoff_seconds(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than Azure's retry-after."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not security)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class Run:
    """The services that move one kind of run (a deployment's, a leftover's removal), each
    called with the object's id and the token of the message that carries the step."""

    advance: Callable[[int, str | None], float | None]
    schedule_next_step: Callable[[int, str | None, float], str | None]
    fail: Callable[[int, str | None, str], None]


def _deployment_run(advance: Callable[..., float | None]) -> Run:
    return Run(
        advance=lambda pk, token: advance(deployment_id=pk, token=token),
        schedule_next_step=lambda pk, token, seconds: services.deployment_schedule_next_step(
            deployment_id=pk, token=token, seconds=seconds
        ),
        fail=lambda pk, token, message: services.deployment_fail(
            deployment_id=pk, token=token, message=message
        ),
    )


PROVISIONING = _deployment_run(services.deployment_provision)
DECOMMISSIONING = _deployment_run(services.deployment_decommission)
CLEAN_UP = _deployment_run(services.deployment_clean_up)
LEFTOVER_REMOVAL = Run(
    advance=lambda pk, token: leftovers.leftover_advance_removal(leftover_id=pk, token=token),
    schedule_next_step=lambda pk, token, seconds: leftovers.leftover_schedule_next_step(
        leftover_id=pk, token=token, seconds=seconds
    ),
    fail=lambda pk, token, message: leftovers.leftover_fail(leftover_id=pk, token=token, message=message),
)


def _advance(task: "Task[Any, Any]", run: Run, object_id: int, token: str | None) -> None:
    try:
        wait = run.advance(object_id, token)
    except TransientAzureError as error:
        if task.request.retries >= MAX_TRANSIENT_RETRIES:
            message = (
                f"Azure kept failing after {MAX_TRANSIENT_RETRIES} retries: {error}. An admin can retry it."
            )
            run.fail(object_id, token, message)
            return
        countdown = backoff_seconds(task.request.retries, error.retry_after)
        next_token = run.schedule_next_step(object_id, token, countdown)
        if next_token is None:
            return  # another message, or a newer run, owns the run now
        logger.info("%s %s: %s (retry in %.1f s)", task.name, object_id, error, countdown)
        raise task.retry(
            args=(object_id, next_token), countdown=countdown, max_retries=MAX_TRANSIENT_RETRIES
        ) from error
    if wait is not None:
        # A long-running operation is under way: look again later rather than sleep here.
        next_token = run.schedule_next_step(object_id, token, wait)
        if next_token is not None:
            task.apply_async((object_id, next_token), countdown=wait)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def provision_deployment_task(self: "Task[Any, Any]", deployment_id: int, token: str | None = None) -> None:
    _advance(self, PROVISIONING, deployment_id, token)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def decommission_deployment_task(
    self: "Task[Any, Any]", deployment_id: int, token: str | None = None
) -> None:
    _advance(self, DECOMMISSIONING, deployment_id, token)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def clean_up_failed_run_task(self: "Task[Any, Any]", deployment_id: int, token: str | None = None) -> None:
    _advance(self, CLEAN_UP, deployment_id, token)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def remove_leftover_task(self: "Task[Any, Any]", leftover_id: int, token: str | None = None) -> None:
    _advance(self, LEFTOVER_REMOVAL, leftover_id, token)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def provision_search_service_task(self: "Task[Any, Any]", service_id: int) -> None:
    """A landing zone's search service (provisioning.search): one look at Azure, then another
    after the wait it asks for, rather than a worker sleeping through Azure's creation."""
    try:
        wait = search.search_service_provision(service_id=service_id)
    except TransientAzureError as error:
        if self.request.retries >= MAX_TRANSIENT_RETRIES:
            message = (
                f"Azure kept failing after {MAX_TRANSIENT_RETRIES} retries: {error}. An admin can retry it."
            )
            search.search_service_fail(service_id=service_id, message=message)
            return
        countdown = backoff_seconds(self.request.retries, error.retry_after)
        raise self.retry(countdown=countdown, max_retries=MAX_TRANSIENT_RETRIES) from error
    if wait is not None:
        self.apply_async((service_id,), countdown=wait)


@shared_task(acks_late=True)
def resume_stalled_runs_task() -> list[int]:
    leftovers.leftovers_resume_stalled(overdue_seconds=OVERDUE_AFTER_SECONDS)
    return services.deployments_resume_stalled(overdue_seconds=OVERDUE_AFTER_SECONDS)


@shared_task(bind=True, acks_late=True, max_retries=MAX_TRANSIENT_RETRIES)
def sync_data_access_task(self: "Task[Any, Any]", account_id: int) -> dict[str, list[str]]:
    """Azure's role assignments on the account follow its deployments' access mode."""
    try:
        changes = direct_access.account_data_access_sync(account_id=account_id)
    except TransientAzureError as error:
        raise self.retry(
            countdown=backoff_seconds(self.request.retries, error.retry_after), exc=error
        ) from error
    return {"granted": changes.granted, "revoked": changes.revoked}


@shared_task(acks_late=True)
def check_drift_task() -> int:
    return drift.deployments_check_drift()


# The regions that answered are saved; the others are tried again soon rather than next hour.
CATALOG_SYNC_RETRY_SECONDS = 300


@shared_task(bind=True, acks_late=True, max_retries=3)
def catalog_sync_task(self: "Task[Any, Any]") -> str:
    result = catalog_sync_all()
    if result.failures:
        raise self.retry(countdown=CATALOG_SYNC_RETRY_SECONDS, exc=RuntimeError(result.summary()))
    return result.summary()
