"""Django admin for personal access tokens: read-only, because a token changes only through its
services (each change audited). Admins look tokens up by owner, name or prefix and revoke them
(someone who left, a token that leaked); the hash is never shown, and the token itself is not
kept anywhere to show."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.models import AccessToken
from api.tokens import AccessTokenRefused, access_token_revoke
from org.models import User


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin[AccessToken]):
    list_display = ["name", "prefix", "user", "state", "created_at", "expires_at", "last_used_at"]
    search_fields = ["name", "prefix", "user__email"]
    list_select_related = ["user"]
    ordering = ["-created_at"]
    fields = readonly_fields = (
        "name",
        "prefix",
        "user",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, token: AccessToken) -> str:
        return token.status().capitalize()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # people make their own, on their profile page or with create_access_token

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke it instead: the audit trail names it

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        user: User = request.user  # type: ignore[assignment]
        return user.is_platform_admin

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        actor: User = request.user  # type: ignore[assignment]
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            try:
                access_token_revoke(token=token, actor=actor)
            except AccessTokenRefused as refusal:
                self.message_user(request, f"{token}: {refusal}", messages.ERROR)
            else:
                revoked += 1
        self.message_user(request, f"{revoked} token{'s' if revoked != 1 else ''} revoked.", messages.SUCCESS)
