from collections.abc import Mapping
from typing import Any

from django.db import models

from calls.latency import added, empty_buckets
from org.models import Department
from provisioning.models import ModelDeployment

# The rollups' sums by kind: counters and tokens add up, histograms add up bucket by bucket.
COUNTERS = ("calls", "answered", "upstream_errors", "throttled", "failovers", "refused")
TOKENS = ("input_tokens", "output_tokens")
HISTOGRAMS = ("first_token_ms", "answer_ms")


class CallCounters(models.Model):
    """What a span of calls to one deployment for one department from one source (the chat or
    the gateway) adds up to; latencies as counts per `calls.latency.BUCKETS_MS` bucket."""

    class Source(models.TextChoices):
        CHAT = "chat", "Chat"
        API = "api", "Gateway"

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.CASCADE, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    calls = models.PositiveIntegerField(default=0, help_text="Calls sent to Azure (each ends once).")
    answered = models.PositiveIntegerField(default=0, help_text="Calls that ended with an answer.")
    upstream_errors = models.PositiveIntegerField(
        default=0, help_text="Calls that ended in Azure's error, a timeout or a broken stream."
    )
    throttled = models.PositiveIntegerField(default=0, help_text="429 answers from Azure, each attempt.")
    failovers = models.PositiveIntegerField(default=0, help_text="Calls served by a fallback deployment.")
    refused = models.PositiveIntegerField(
        default=0, help_text="Calls refused at admission (budget, caps, limits) before reaching Azure."
    )
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    first_token_ms = models.JSONField(default=empty_buckets, help_text="Time to the first token, per bucket.")
    answer_ms = models.JSONField(default=empty_buckets, help_text="Time to the full answer, per bucket.")

    class Meta:
        abstract = True

    def counts_add(self, counts: Mapping[str, Any]) -> None:
        """Add another span's counts (by field name): counters and tokens by +, histograms bucket
        by bucket (an empty or missing histogram adds nothing)."""
        for name in (*COUNTERS, *TOKENS):
            setattr(self, name, getattr(self, name) + counts[name])
        for name in HISTOGRAMS:
            if counts[name]:
                setattr(self, name, added(getattr(self, name), counts[name]))


class CallMinute(CallCounters):
    """One minute of calls: the operations page's figures for the last hours, and each minute of
    a provisioned deployment's load. Written off the request path, with the settlement, one upsert
    per key and batch (`calls.observe`); kept `MINUTES_KEPT_DAYS` (`calls.hours`)."""

    minute = models.DateTimeField(help_text="The minute's start (UTC).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "deployment", "department", "source"], name="one_call_minute_per_key"
            )
        ]
        indexes = [
            models.Index(fields=["deployment", "minute"], name="call_minute_by_deployment"),
            models.Index(fields=["minute"], name="call_minute_by_time"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.source} {self.minute:%Y-%m-%d %H:%M}: {self.calls} calls"


class CallHour(CallCounters):
    """One hour of calls, folded from its minutes once the hour is over (`calls.hours`): a day or a
    week on the operations page reads a sixtieth of the rows."""

    hour = models.DateTimeField(help_text="The hour's start (UTC).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "deployment", "department", "source"], name="one_call_hour_per_key"
            )
        ]
        indexes = [models.Index(fields=["hour"], name="call_hour_by_time")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.source} {self.hour:%Y-%m-%d %H}h: {self.calls} calls"
