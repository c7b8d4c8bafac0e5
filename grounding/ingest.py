"""Ingestion: a document version read, cut into passages, embedded and indexed.

Thin Celery tasks (grounding/tasks.py) call the services here; each is idempotent and guarded by
the document's run token, so a duplicate or superseded message does nothing and re-running is
safe. A document that fails is marked failed with its reason; the others go on."""

import uuid

from django.db import transaction
from django.utils import timezone

from grounding.models import Document


def ingestion_start(document: Document) -> None:
    """Queues the document's current version for ingestion (after the caller's transaction
    commits): a new run token, so any earlier run of an older version stops at its next step."""
    from grounding.tasks import document_ingest_task

    document.run_token = uuid.uuid4().hex
    document.state = Document.State.QUEUED
    document.state_reason = ""
    document.state_changed_at = timezone.now()
    document.save(update_fields=["run_token", "state", "state_reason", "state_changed_at"])
    token = document.run_token
    transaction.on_commit(lambda: document_ingest_task.delay(document.pk, token))


def document_ingest(document_id: int, run_token: str) -> None:
    """Extract, chunk, embed, index; the document's state follows each step."""
    raise NotImplementedError  # CONTRACT: the ingestion helper writes this


def removal_start(document: Document) -> None:
    """Marks the document as being deleted and queues the removal of its passages and file."""
    from grounding.tasks import document_remove_task

    document.run_token = uuid.uuid4().hex
    document.state = Document.State.DELETING
    document.state_changed_at = timezone.now()
    document.save(update_fields=["run_token", "state", "state_changed_at"])
    token = document.run_token
    transaction.on_commit(lambda: document_remove_task.delay(document.pk, token))


def document_remove(document_id: int, run_token: str) -> None:
    """Deletes the document's passages from the index, its files from storage, then its row."""
    raise NotImplementedError  # CONTRACT: the ingestion helper writes this
