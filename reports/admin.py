from django.contrib import admin

from reports.models import BudgetAlert


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin[BudgetAlert]):
    """Sent alerts: a record, written by the alert task only."""

    list_display = ["department", "month", "threshold", "spent", "budget", "sent_at"]
    list_filter = ["threshold", "month"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
