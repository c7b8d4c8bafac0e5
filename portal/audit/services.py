"""The one way to write the audit trail."""

from typing import Any

from django.db import models

from portal.audit.models import AuditEvent
from portal.org.models import User


def audit_record(
    *,
    actor: User | None,
    verb: str,
    target: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """Append one event; call it inside the transaction of the change it records, so the change
    and its trace commit (or roll back) together."""
    return AuditEvent.objects.create(
        actor=actor,
        verb=verb,
        object_type=target._meta.label_lower,
        object_id=str(target.pk),
        object_repr=str(target)[:200],
        before=before,
        after=after,
        note=note,
    )


def audit_trail(target: models.Model) -> models.QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        object_type=target._meta.label_lower, object_id=str(target.pk)
    ).select_related("actor")
