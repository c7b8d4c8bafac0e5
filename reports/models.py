"""What the cost reports keep besides the usage rollups (which belong to money): the budget
alerts already sent, and Azure's billed cost per account next to the metered one."""

from decimal import Decimal

from django.conf import settings
from django.db import models

from money.amounts import ZERO
from org.models import Department
from provisioning.models import OpenAIAccount


class BudgetAlert(models.Model):
    """A department crossed a share of its monthly budget; one alert per threshold and month."""

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="budget_alerts")
    month = models.DateField(help_text="The first day of the month.")
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the monthly budget.")
    spent = models.DecimalField(max_digits=16, decimal_places=2)
    budget = models.DecimalField(max_digits=12, decimal_places=2)
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["department", "month", "threshold"], name="one_budget_alert_per_threshold_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.department} {self.threshold}% of {self.month:%B %Y}"


class ReconciliationLine(models.Model):
    """One Azure OpenAI account in one month: what Switchyard metered and what Azure billed."""

    month = models.DateField(help_text="The first day of the month.")
    account = models.ForeignKey(OpenAIAccount, on_delete=models.CASCADE, related_name="reconciliations")
    metered = models.DecimalField(max_digits=20, decimal_places=10)
    billed = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why Azure's figure is missing, when it is.")
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["month", "account__name"]
        constraints = [
            models.UniqueConstraint(fields=["month", "account"], name="one_reconciliation_per_account_month")
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.month:%B %Y}"

    @property
    def difference(self) -> Decimal | None:
        return None if self.billed is None else self.billed - self.metered

    @property
    def flagged(self) -> bool:
        """Off by more than the tolerance: a share of the billed cost, and at least an amount."""
        difference = self.difference
        if difference is None:
            return True
        share: Decimal = settings.COST_RECONCILIATION_TOLERANCE_SHARE
        minimum: Decimal = settings.COST_RECONCILIATION_TOLERANCE_MINIMUM
        allowed = max(share * abs(self.billed or ZERO), minimum)
        return abs(difference) > allowed


class AuditChainAlert(models.Model):
    """A break in the audit trail's hash chain that admins were emailed about: one email per
    break, however often the scheduled check finds it again."""

    sequence = models.BigIntegerField(
        help_text="The event the break was found at (0: one outside the chain)."
    )
    kind = models.CharField(max_length=20)
    explanation = models.TextField()
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "kind"], name="one_audit_chain_alert_per_break")
        ]

    def __str__(self) -> str:
        return f"audit trail broken at event {self.sequence} ({self.kind})"
