"""Django admin for the chat.

Chat content is private to its author. Admins see who chatted with what, when and at what cost,
never the words, unless the department's data policy lets approvers audit its chats; then each
view of a conversation's content is itself audited: an AuditEvent names who read whose
conversation, and the `chat.audit` logger repeats it for log-based alerting.
"""

import logging
from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.services import audit_record
from chat.models import Conversation, Message
from money.models import UsageRecord

audit_logger = logging.getLogger("chat.audit")

HIDDEN = "(hidden: the department does not allow auditing its chats)"


class _Named:
    """Stands in for a conversation in admin page titles: its id, not its title."""

    def __init__(self, pk: str, name: str) -> None:
        self.pk = pk
        self.name = name

    def __str__(self) -> str:
        return self.name


def content_auditable(conversation: Conversation | None) -> bool:
    return conversation is not None and conversation.department.approvers_may_audit_chats


def record_content_viewed(request: HttpRequest, conversation: Conversation) -> None:
    """Every page that shows a conversation's content (its title included) says who read it."""
    audit_logger.warning(
        "AUDIT chat content viewed: actor=%s (id %s) conversation=%s department=%s author=%s",
        getattr(request.user, "email", ""),
        request.user.pk,
        conversation.pk,
        conversation.department,
        conversation.user.email,
    )
    audit_record(
        actor=request.user,  # type: ignore[arg-type]
        verb="chat.content_viewed",
        target=conversation,
        department=conversation.department,
        after={"department": conversation.department.slug, "author": conversation.user.email},
        note="Read under the department's audit policy.",
    )


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    can_delete = False
    fields = ["created_at", "role", "content", "prompt_tokens", "completion_tokens", "finish_reason", "error"]
    readonly_fields = [
        "created_at",
        "role",
        "content",
        "prompt_tokens",
        "completion_tokens",
        "finish_reason",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = [
        "pk",
        "shown_title",
        "user",
        "department",
        "deployment",
        "message_count",
        "updated_at",
        "expires_at",
    ]
    list_filter = ["department", "deployment"]
    list_select_related = ["user", "department", "deployment"]
    # Searching by title would reveal content through the result list; search by person only.
    search_fields = ["user__email"]
    fields = ["user", "department", "deployment", "shown_title", "created_at", "updated_at", "expires_at"]
    readonly_fields = [
        "user",
        "department",
        "deployment",
        "shown_title",
        "created_at",
        "updated_at",
        "expires_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description="Title")
    def shown_title(self, conversation: Conversation) -> str:
        # The title is written from the first message: content too.
        return conversation.title if content_auditable(conversation) else HIDDEN

    @admin.display(description="Messages")
    def message_count(self, conversation: Conversation) -> int:
        return int(getattr(conversation, "message_total", 0))

    def get_inlines(
        self, request: HttpRequest, obj: Conversation | None
    ) -> list[type[admin.options.InlineModelAdmin[Any, Any]]]:
        return [MessageInline] if content_auditable(obj) else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The delete confirmation lists the messages by their text; retention and the author delete.
        return False

    def _redacted(self, object_id: str, extra_context: dict[str, Any] | None) -> dict[str, Any]:
        """The admin shows an object's str() (the title, written from the first message) in the
        page title and breadcrumbs; without auditing it gets a neutral name instead."""
        name = f"Conversation {object_id} (content hidden)"
        return {"title": name, "subtitle": name, "original": _Named(object_id, name), **(extra_context or {})}

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        conversation = self.get_object(request, object_id)
        if not content_auditable(conversation):
            extra_context = self._redacted(object_id, extra_context)
        return super().history_view(request, object_id, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        conversation = self.get_object(request, object_id)
        if content_auditable(conversation) and self.has_view_permission(request, conversation):
            assert conversation is not None
            record_content_viewed(request, conversation)
        else:
            extra_context = self._redacted(object_id, extra_context)
        return super().change_view(request, object_id, form_url, extra_context)


USAGE_FIELDS = (
    "created_at",
    "department",
    "user",
    "deployment",
    "shown_conversation",
    "source",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost",
    "price",
)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin[UsageRecord]):
    """Money records (the money app's), here because they show their conversation only as the
    chat's data policy allows: read-only, written by metering only."""

    list_display = [
        "created_at",
        "department",
        "user",
        "deployment",
        "input_tokens",
        "output_tokens",
        "cost",
        "source",
    ]
    list_filter = ["source", "department", "deployment"]
    list_select_related = ["department", "user", "deployment"]
    date_hierarchy = "created_at"
    search_fields = ["user__email", "department__name"]
    # Not the conversation itself: admin would show it by its title (written from the first
    # message) and link to it; `shown_conversation` shows it only where auditing is allowed.
    fields = USAGE_FIELDS
    readonly_fields = USAGE_FIELDS

    @admin.display(description="Conversation")
    def shown_conversation(self, record: UsageRecord) -> str:
        conversation = record.conversation
        if conversation is None:
            return "-"
        if not content_auditable(conversation):
            return f"{conversation.pk} {HIDDEN}"
        url = reverse("admin:chat_conversation_change", args=[conversation.pk])
        return format_html('<a href="{}">{}</a>', url, conversation.title or conversation.pk)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        record = self.get_object(request, object_id)
        conversation = record.conversation if record is not None else None
        if content_auditable(conversation) and self.has_view_permission(request, record):
            assert conversation is not None
            record_content_viewed(request, conversation)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
