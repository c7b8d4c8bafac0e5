"""The department's retention rule applied to its uploaded documents.

The rule mirrors the chat's (chat.services.conversations_purge_expired): a department that keeps
chat history for N days keeps an uploaded document version N days after its upload; then the
document is removed (its passages from the index, its files, its row) as a lead's deletion would.
A department with chat history off (0 days) keeps no conversations beyond the browser session,
but a data set is not a conversation: removing every upload at once would make grounding
impossible, so documents of such a department are kept until a lead deletes them. Uploading a
new version starts the count again."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from grounding.ingest import removal_start
from grounding.models import Document
from org.models import Department


def documents_purge_expired(*, now: datetime | None = None) -> int:
    """Start the removal of documents past their department's retention. Returns how many. Safe
    to run twice: a document being removed already is left alone."""
    now = now or timezone.now()
    started = 0
    for department in Department.objects.filter(chat_retention_days__gt=0).only("pk", "chat_retention_days"):
        cutoff = now - timedelta(days=department.chat_retention_days)
        expired = (
            Document.objects.filter(data_set__department=department, uploaded_at__lt=cutoff)
            .exclude(state=Document.State.DELETING)
            .values_list("pk", flat=True)
        )
        for document_id in list(expired):
            started += _expire(document_id, cutoff, department)
    return started


def _expire(document_id: int, cutoff: datetime, department: Department) -> int:
    with transaction.atomic():
        document = (
            Document.objects.select_for_update()
            .filter(pk=document_id, uploaded_at__lt=cutoff)
            .exclude(state=Document.State.DELETING)
            .first()
        )
        if document is None:
            return 0  # a new version was uploaded meanwhile, or it is being removed already
        audit_record(
            actor=None,
            verb="document.expired",
            target=document,
            department=department,
            before={
                "name": document.name,
                "version": document.version,
                "uploaded_at": document.uploaded_at.isoformat(),
            },
            note=f"Kept {department.chat_retention_days} days after upload, as the department keeps chats.",
        )
        removal_start(document)
    return 1
