"""Consumption: conversations and messages (content, deleted by the retention policy) and usage
records (money, kept after the content is gone)."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from org.models import Department
from provisioning.models import ModelDeployment, Price

ZERO = Decimal(0)


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:40]}"


class UsageRecord(models.Model):
    """One model call: who paid, who asked, on what, how many tokens and what it cost."""

    class Source(models.TextChoices):
        CHAT = "chat", "Chat"
        API = "api", "API"

    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="usage_records")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="usage_records")
    # Money outlives content: the conversation may be purged, the record stays.
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    input_tokens = models.PositiveIntegerField()
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField()
    cost = models.DecimalField(max_digits=16, decimal_places=10, help_text="USD, unrounded.")
    price = models.ForeignKey(Price, null=True, on_delete=models.PROTECT, related_name="usage_records")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CHAT)
    created_at = models.DateTimeField(db_index=True)
    # The admission that let the call through (money.Reservation): settling twice finds it.
    reservation_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    estimated = models.BooleanField(
        default=False, help_text="Azure's count never arrived (the call broke off): tokens are an estimate."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["department", "created_at"], name="usage_by_department_time")]

    def __str__(self) -> str:
        return f"{self.department} {self.input_tokens}+{self.output_tokens} tokens ${self.cost:.6f}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageCounters(models.Model):
    """What every rollup adds up: calls, tokens and their cost (the counters the upsert in
    `chat.metering.usage_rollup_add` increments)."""

    requests = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=ZERO, help_text="USD, unrounded.")

    class Meta:
        abstract = True


class UsageRollup(UsageCounters):
    """Usage per day x department x deployment x user: what reports and the budget check read,
    so neither scans raw usage. Kept up to date as usage is metered; `rebuild_usage_rollups`
    recomputes any range from the records."""

    day = models.DateField()
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")
    # A plain id, 0 for usage without a person: a nullable key would defeat the upsert's
    # uniqueness (NULLs never conflict), and the rollup must outlive a deleted user anyway.
    user_key = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "department", "deployment", "user_key"], name="one_usage_rollup_per_key"
            )
        ]
        indexes = [
            models.Index(fields=["department", "day"], name="rollup_by_department_day"),
            models.Index(fields=["deployment", "day"], name="rollup_by_deployment_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.department_id}/{self.deployment_id}/{self.user_key}: ${self.cost}"


class DepartmentUsageRollup(UsageCounters):
    """The same per day x department x deployment, without people: a month of the whole company
    is a few thousand rows, small enough for the budget check on every chat message."""

    day = models.DateField()
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "department", "deployment"], name="one_department_rollup_per_key"
            )
        ]
        indexes = [
            models.Index(fields=["deployment", "day"], name="dept_rollup_by_deployment_day"),
            models.Index(fields=["department", "day"], name="dept_rollup_by_department_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.department_id}/{self.deployment_id}: ${self.cost}"


class DailyDeploymentRollup(UsageCounters):
    """Per day x deployment, everyone together: the company's daily spend and a deployment's
    usage over time, without reading a row per department."""

    day = models.DateField()
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "deployment"], name="one_daily_deployment_rollup_per_key")
        ]
        indexes = [models.Index(fields=["deployment", "day"], name="daily_rollup_by_deployment")]

    def __str__(self) -> str:
        return f"{self.day} {self.deployment_id}: ${self.cost}"


class MonthlyUsageRollup(UsageCounters):
    """Per calendar month x department x deployment: what a month's cost allocation reads (a few
    thousand rows for the whole company, however much usage there was)."""

    month = models.DateField(help_text="The first day of the month.")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "department", "deployment"], name="one_monthly_rollup_per_key"
            )
        ]
        indexes = [
            models.Index(fields=["department", "month"], name="monthly_rollup_by_department"),
            models.Index(fields=["deployment", "month"], name="monthly_rollup_by_deployment"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.department_id}/{self.deployment_id}: ${self.cost}"


class MonthlyPersonRollup(UsageCounters):
    """Per calendar month x department x person: the people tables of a month."""

    month = models.DateField(help_text="The first day of the month.")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    user_key = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "department", "user_key"], name="one_monthly_person_rollup_per_key"
            )
        ]
        indexes = [models.Index(fields=["department", "month"], name="person_rollup_by_department")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.department_id}/{self.user_key}: ${self.cost}"
