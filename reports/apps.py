from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Cost reports and chargeback: reads chat usage and provisioning's fixed costs."""

    name = "reports"
    label = "reports"
    verbose_name = "Cost reports"
