"""A person's access tokens for the automation API: they act with that person's roles, as the
pages do. Only a hash and a visible prefix are kept; the token itself is shown once."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class AccessTokenQuerySet(models.QuerySet["AccessToken"]):
    def usable(self, now: datetime | None = None) -> "AccessTokenQuerySet":
        """Tokens that open the API now: not revoked, not expired, their owner not deactivated."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now, user__is_active=True)


class AccessToken(models.Model):
    """A personal access token: `Authorization: Bearer sy-pat-…` acts as `user`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=80, help_text="What the token is for: the script or tool using it.")
    prefix = models.CharField(
        max_length=20, unique=True, help_text="The token's first characters, shown to tell tokens apart."
    )
    secret_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the whole token.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["user", "-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="access_token_by_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status(self, now: datetime | None = None) -> str:
        """ "active", "expired" or "revoked", as the profile page shows it."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def snapshot(self) -> dict[str, Any]:
        """The token as the audit trail records it: never the token itself, nor its hash."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "user": self.user_id,
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class IdempotentRequest(models.Model):
    """A POST sent with an `Idempotency-Key`, and the answer it got: the same key and body from the
    same caller within `API_IDEMPOTENCY_HOURS` gets that answer again instead of a second action.
    `status` is empty while the first is still being answered."""

    caller = models.CharField(max_length=40, help_text='"token:<id>" or "person:<id>".')
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, address and body.")
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(default=b"", blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "key"], name="idempotency_key_per_caller")]

    def __str__(self) -> str:
        return f"{self.caller} {self.key}"
