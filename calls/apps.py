from django.apps import AppConfig


class CallsConfig(AppConfig):
    """Calls to Azure OpenAI's data plane, and what each minute of them looked like (the
    operations page's figures)."""

    name = "calls"
    verbose_name = "Calls"
    default_auto_field = "django.db.models.BigAutoField"
