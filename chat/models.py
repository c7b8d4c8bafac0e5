"""Consumption: conversations and messages (content, deleted by the retention policy). What each
call cost is a usage record in `money`, kept after the content is gone."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from org.models import Department
from provisioning.models import ModelDeployment


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def matching(self, query: str) -> "ConversationQuerySet":
        """Conversations whose title or any message contains `query`."""
        if not query:
            return self
        in_messages = Message.objects.filter(content__icontains=query).values("conversation_id")
        return self.filter(Q(title__icontains=query) | Q(pk__in=in_messages))


class Conversation(models.Model):
    """One person's chat with one deployment, paid for by one of their departments."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="conversations")
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        related_name="conversations",
        help_text="The department that pays.",
    )
    title = models.CharField(max_length=200, blank=True)
    # Decided when the conversation starts, from the department's policy then: a conversation
    # kept only for the browser session stays so even if the policy changes later.
    history_off = models.BooleanField(default=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the retention policy deletes it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or "New conversation"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "You"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    # The content's tokens as the model counts them (at least as many): the prompt's size is
    # known without reading the text again.
    tokens = models.PositiveIntegerField(null=True, blank=True)
    # A question that was not sent (a limit refused it): it stays for the person to see and is
    # never part of a later prompt.
    refused = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    content_filter = models.JSONField(null=True, blank=True, help_text="Azure's verdict, when it filtered.")
    error = models.TextField(blank=True, help_text="What went wrong, in words the user saw.")
    # A grounded answer's sources it cites: number, document (id, name), data set, department,
    # page, heading and a short quote (grounding.quoting.citation). Kept with the answer, so a
    # document deleted later still shows what the answer stood on.
    citations = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:40]}"

    @property
    def answered_by(self) -> list[str]:
        """The departments whose documents the answer cites, in the order first cited."""
        departments: list[str] = []
        for cited in self.citations or []:
            name = str(cited.get("department") or "") if isinstance(cited, dict) else ""
            if name and name not in departments:
                departments.append(name)
        return departments
