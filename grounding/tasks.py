"""Thin tasks over grounding.ingest's idempotent services."""

from celery import shared_task

from grounding import ingest


@shared_task(acks_late=True)
def document_ingest_task(document_id: int, run_token: str) -> None:
    ingest.document_ingest(document_id, run_token)


@shared_task(acks_late=True)
def document_remove_task(document_id: int, run_token: str) -> None:
    ingest.document_remove(document_id, run_token)
