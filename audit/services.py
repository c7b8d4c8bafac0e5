"""The one way to write the audit trail."""

from typing import TYPE_CHECKING, Any

from django.db import models

from audit.models import AuditEvent

if TYPE_CHECKING:  # a person, whatever the user model: the audit trail sits below the organisation
    from org.models import User


def audit_record(
    *,
    actor: "User | None",
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
