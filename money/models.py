"""Money: what each model call cost (usage records) and its per-day and per-month sums (rollups);
and admission by reservation: what each limit has taken (money per month, tokens and requests per
minute) and the reservations of the calls under way. Ledger amounts are whole units
(`UNITS_PER_USD` to the dollar) so that both databases add and compare them exactly."""

import uuid

from django.conf import settings
from django.db import models

from money.amounts import ZERO
from org.models import Department
from provisioning.models import ModelDeployment, Price


class SpendLedger(models.Model):
    """One money limit for one month (a department's budget, a grant's allowance): `spent` is what
    the cost model counts for the month, `held` what the calls under way may still cost."""

    key = models.CharField(primary_key=True, max_length=100)
    spent_units = models.BigIntegerField(default=0)
    held_units = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(help_text="When `spent` was last read from the cost model.")

    def __str__(self) -> str:
        return self.key


class AdmissionWindow(models.Model):
    """Tokens or requests one limit took in one minute (the embedded default; Redis otherwise)."""

    key = models.CharField(primary_key=True, max_length=100)
    used = models.BigIntegerField(default=0)
    cap = models.BigIntegerField(help_text="The limit the last call was taken against.")
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


class Reservation(models.Model):
    """A call admitted and not yet settled. Settling replaces it with a usage record; one whose
    process died expires and is settled on an estimate (`reservations_reconcile`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10)
    prompt_tokens = models.PositiveIntegerField(help_text="At most what Azure will count for the prompt.")
    max_output_tokens = models.PositiveIntegerField()
    amount_units = models.BigIntegerField(help_text="The most the call can cost.")
    # [[ledger key, units held]] and [[window key, tokens taken]], to give back what was not used.
    ledgers = models.JSONField(default=list)
    token_windows = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    # The gateway's caller, when it is a key or a registered service principal.
    api_key = models.ForeignKey("gateway.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    principal = models.ForeignKey(
        "gateway.ServicePrincipal", null=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.source} call on {self.deployment_id} for {self.department_id}"


class UsageRecord(models.Model):
    """One model call: who paid, who asked, on what, how many tokens and what it cost."""

    class Source(models.TextChoices):
        CHAT = "chat", "Chat"
        API = "api", "API"
        # Embedding a data set's documents (grounding): paid by the data set's department.
        INGESTION = "ingestion", "Document ingestion"

    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="usage_records")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="usage_records")
    # Money outlives content: the conversation may be purged, the record stays. Named, not
    # imported: money is below chat, and a call from elsewhere (the gateway) has no conversation.
    conversation = models.ForeignKey(
        "chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
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
    # A gateway call's caller (named, not imported: money is below the gateway).
    api_key = models.ForeignKey(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records"
    )
    principal = models.ForeignKey(
        "gateway.ServicePrincipal",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_records",
    )
    # The deployments tried before the one that served (`deployment`), each with Azure's answer:
    # [{"deployment": id, "status": 429, "ms": 12}].
    attempts = models.JSONField(default=list, blank=True)

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
    `money.usage.usage_rollup_add` increments)."""

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


class MonthlyCallerRollup(UsageCounters):
    """Per calendar month x department x deployment x gateway caller (an API key or a service
    principal; 0 for neither): the API usage by key on the department and cost pages."""

    month = models.DateField(help_text="The first day of the month.")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10)
    # Plain ids, 0 for none, as `user_key` above: the upsert needs non-null keys.
    api_key_key = models.PositiveBigIntegerField(default=0)
    principal_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "department", "deployment", "source", "api_key_key", "principal_key"],
                name="one_monthly_caller_rollup_per_key",
            )
        ]
        indexes = [models.Index(fields=["department", "month"], name="caller_rollup_by_department")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.department_id}/{self.source}/{self.api_key_key}: ${self.cost}"
