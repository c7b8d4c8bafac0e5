"""Django admin for API keys: read-only, because a key changes only through its services (each
change audited, the relay told). Admins look keys up by name or prefix and revoke them; the hash
is never shown, and the key itself is not kept anywhere to show."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from gateway.keys import ApiKeyRefused, api_key_revoke
from gateway.models import STATUS_LABELS, ApiKey
from org.models import User


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = [
        "name",
        "prefix",
        "department",
        "status_label",
        "created_at",
        "expires_at",
        "last_used_at",
    ]
    list_filter = ["state", "department"]
    search_fields = ["name", "prefix"]
    list_select_related = ["department"]
    ordering = ["-created_at"]
    fields = readonly_fields = (
        "name",
        "prefix",
        "department",
        "status_label",
        "called_deployments",
        "requests_per_minute",
        "tokens_per_minute",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "replaces",
        "grace_until",
        "revoked_at",
        "revoked_by",
    )
    actions = ["revoke"]

    @admin.display(description="State")
    def status_label(self, key: ApiKey) -> str:
        return STATUS_LABELS[key.status()]

    @admin.display(description="May call")
    def called_deployments(self, key: ApiKey) -> str:
        return ", ".join(deployment.gateway_name for deployment in key.deployments.all())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made on the department page or with `manage.py create_api_key`

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # usage records name their key: revoke it instead

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        user: User = request.user  # type: ignore[assignment]
        return user.is_platform_admin

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor: User = request.user  # type: ignore[assignment]
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            try:
                api_key_revoke(key=key, actor=actor)
            except ApiKeyRefused as refusal:
                self.message_user(request, f"{key}: {refusal}", messages.ERROR)
            else:
                revoked += 1
        self.message_user(request, f"{revoked} key{'s' if revoked != 1 else ''} revoked.", messages.SUCCESS)
