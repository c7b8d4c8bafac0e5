"""Thin tasks over grounding.ingest's idempotent services: they own the retries and the waits
(a task re-schedules itself rather than sleeping in the worker)."""

import logging
from typing import Any

from celery import Task, shared_task

from grounding import ingest, retention, storage
from provisioning.tasks import backoff_seconds

logger = logging.getLogger(__name__)

# Tries of a step Azure did not answer before the document is failed with the reason.
MAX_TRIES = 5


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def document_ingest_task(self: "Task[Any, Any]", document_id: int, run_token: str) -> None:
    try:
        wait = ingest.document_ingest(document_id, run_token)
    except ingest.IngestionInterrupted as error:
        if self.request.retries >= MAX_TRIES:
            ingest.document_ingest_give_up(
                document_id=document_id, run_token=run_token, message=error.gave_up
            )
            return
        ingest.document_ingest_note(document_id=document_id, run_token=run_token, message=str(error))
        countdown = backoff_seconds(self.request.retries, None)
        logger.info("Document %s: %s (retry in %.1f s)", document_id, error, countdown)
        raise self.retry(countdown=countdown, max_retries=MAX_TRIES) from error
    if wait is not None:
        self.apply_async((document_id, run_token), countdown=wait)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def document_remove_task(self: "Task[Any, Any]", document_id: int, run_token: str) -> None:
    try:
        ingest.document_remove(document_id, run_token)
    except ingest.IngestionInterrupted as error:
        if self.request.retries >= MAX_TRIES:
            message = (
                "The search service did not answer, so the document's passages could not be removed. "
                "Delete it again later."
            )
            ingest.document_remove_give_up(document_id=document_id, run_token=run_token, message=message)
            return
        raise self.retry(
            countdown=backoff_seconds(self.request.retries, None), max_retries=MAX_TRIES
        ) from error


@shared_task(acks_late=True)
def purge_expired_documents_task() -> int:
    """Hourly (beat): documents past their department's retention are removed."""
    return retention.documents_purge_expired()


@shared_task(acks_late=True)
def search_storage_record_task() -> None:
    """Hourly (beat): today's record of what each data set stores, so every day has one even when
    nothing was ingested (the search service's hours are split by it)."""
    storage.search_storage_record_all()
