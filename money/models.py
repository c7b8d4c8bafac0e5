"""Admission by reservation: what each limit has taken (money per month, tokens and requests
per minute) and the reservations of the calls under way. Amounts are whole units (`UNITS_PER_USD`
to the dollar for money) so that both databases add and compare them exactly."""

import uuid

from django.conf import settings
from django.db import models

from org.models import Department
from provisioning.models import ModelDeployment


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

    def __str__(self) -> str:
        return f"{self.source} call on {self.deployment_id} for {self.department_id}"
