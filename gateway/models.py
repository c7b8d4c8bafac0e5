"""Who may call the gateway: a department's API keys, and the Entra ID service principals an admin
registered for a department (people call with their own Entra ID token and are found by their
object id)."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from org.models import Department
from provisioning.models import ModelDeployment


class CallerLimits(models.Model):
    """What a caller may call and how fast, beside the department's budget and the grants' caps."""

    deployments = models.ManyToManyField(
        ModelDeployment, related_name="+", help_text="Among those the department may use."
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")

    class Meta:
        abstract = True


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self, now: datetime | None = None) -> "ApiKeyQuerySet":
        """Keys that open the gateway now: approved, not revoked, not expired, and (a rotated
        key) inside its grace period."""
        now = now or timezone.now()
        return self.filter(state=ApiKey.State.ACTIVE, revoked_at__isnull=True, expires_at__gt=now).filter(
            Q(grace_until__isnull=True) | Q(grace_until__gt=now)
        )

    def with_status(self, status: str, now: datetime | None = None) -> "ApiKeyQuerySet":
        """Keys whose `ApiKey.status` is `status` at `now`, as a query (a list filters on it)."""
        now = now or timezone.now()
        revoked = Q(revoked_at__isnull=False)
        rejected = ~revoked & Q(state=ApiKey.State.REJECTED)
        expired = ~revoked & ~Q(state=ApiKey.State.REJECTED) & Q(expires_at__lte=now)
        running = ~revoked & Q(expires_at__gt=now)
        conditions = {
            "revoked": revoked,
            "rejected": rejected,
            "expired": expired,
            "pending": running & Q(state=ApiKey.State.PENDING),
            "rotated": running & Q(state=ApiKey.State.ACTIVE, grace_until__gt=now),
            "replaced": running & Q(state=ApiKey.State.ACTIVE, grace_until__lte=now),
            "active": running & Q(state=ApiKey.State.ACTIVE, grace_until__isnull=True),
        }
        return self.filter(conditions[status])


class ApiKey(CallerLimits):
    """A department's key for its applications. Only a hash and a visible prefix are kept: the
    key itself is shown once, when it is made."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected"

    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(
        max_length=20, unique=True, help_text="The key's first characters, shown to tell keys apart."
    )
    secret_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the whole key.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Rotation: the new key names the one it replaces; the old one keeps working until grace_until.
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced_by"
    )
    grace_until = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["department", "name", "-created_at"]
        indexes = [models.Index(fields=["department", "created_at"], name="api_key_by_department")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status(self, now: datetime | None = None) -> str:
        """Where the key stands for a person reading the list: one of `STATUS_LABELS`. A key
        rotated away works until its grace period ends ("rotated"), then it is "replaced"."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.state == self.State.REJECTED:
            return "rejected"
        if self.expires_at <= now:
            return "expired"
        if self.state == self.State.PENDING:
            return "pending"
        if self.grace_until is not None:
            return "rotated" if self.grace_until > now else "replaced"
        return "active"

    def snapshot(self) -> dict[str, Any]:
        """The key as the audit trail records it: never the key itself, nor its hash."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "department": self.department_id,
            "state": self.state,
            "deployments": sorted(d.gateway_name for d in self.deployments.all()),
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "expires_at": self.expires_at.isoformat(),
            "grace_until": self.grace_until.isoformat() if self.grace_until else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "replaces": self.replaces.prefix if self.replaces_id and self.replaces else None,
        }


# How each `ApiKey.status` reads on a page.
STATUS_LABELS = {
    "active": "Active",
    "pending": "Waiting for approval",
    "rotated": "Rotated",
    "replaced": "Replaced",
    "revoked": "Revoked",
    "rejected": "Rejected",
    "expired": "Expired",
}
# The statuses in which a key opens the gateway, or will once approved.
LIVE_STATUSES = frozenset({"active", "pending", "rotated"})


class ServicePrincipal(CallerLimits):
    """A workload identity (an app registration's or a managed identity's service principal) that
    an admin registered for a department: its Entra ID tokens call the gateway as the department."""

    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="service_principals")
    name = models.CharField(max_length=120)
    object_id = models.UUIDField(
        unique=True, help_text="The service principal's object id (`oid` in its tokens)."
    )
    application_id = models.UUIDField(null=True, blank=True, help_text="Its app (client) id, for reference.")
    enabled = models.BooleanField(default=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["department", "name"]

    def __str__(self) -> str:
        return self.name
