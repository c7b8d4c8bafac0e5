"""The audit trail: append-only, never edited, never deleted by the application, and chained: each
event carries the hash of the one before it (`audit.chain`), so an edit made in the database
behind the application's back is found by `audit_verify`."""

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are never edited.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are never deleted.")


class AuditEvent(models.Model):
    """Who did what to which object, for which department, and what it looked like before and
    after; from where (request id, source IP) and when."""

    class ActorKind(models.TextChoices):
        PERSON = "person", "Person"
        SERVICE_PRINCIPAL = "service_principal", "Service principal"
        SYSTEM = "system", "Switchyard"

    # The event's place in the chain: 1, 2, 3... in the order the events were written.
    sequence = models.BigIntegerField(unique=True, null=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when Switchyard acted on its own (policy, provisioning, a beat task).",
    )
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    # The actor as named when the event was written (an email, a service principal's name).
    actor_label = models.CharField(max_length=200, blank=True)
    verb = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    # The department the change concerns, when it concerns one.
    department = models.ForeignKey(
        "org.Department", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "created_at"]),
            models.Index(fields=["department", "created_at", "id"], name="audit_department_time"),
            models.Index(fields=["actor", "created_at", "id"], name="audit_actor_time"),
            models.Index(fields=["verb", "created_at", "id"], name="audit_verb_time"),
            models.Index(fields=["created_at", "id"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label or self.actor or 'Switchyard'} {self.verb} {self.object_repr}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are never edited.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are never deleted.")


class AuditChainHead(models.Model):
    """The last event of the chain (one row): a new event locks it, takes the next sequence and
    the hash to chain to, and moves it on, so concurrent writers chain one after the other."""

    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"audit chain at {self.sequence}"


class AuditArchive(models.Model):
    """One run of the retention rule: the events up to `last_sequence` were written to `path`
    (JSON Lines) and left the database; the chain continues from `last_hash`."""

    created_at = models.DateTimeField(default=timezone.now)
    first_sequence = models.BigIntegerField()
    last_sequence = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)
    events = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    older_than = models.DateTimeField()

    class Meta:
        ordering = ["last_sequence"]

    def __str__(self) -> str:
        return f"archive of events {self.first_sequence} to {self.last_sequence}"
