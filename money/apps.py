from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class MoneyConfig(AppConfig):
    """The cost model: usage records and rollups, prices in force, allocation, budgets, admission."""

    name = "money"
    verbose_name = "Money"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from money.prices import prices_changed
        from provisioning.models import Price

        for signal in (post_save, post_delete):
            signal.connect(prices_changed, sender=Price, dispatch_uid="money-prices")
