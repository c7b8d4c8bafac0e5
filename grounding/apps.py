from django.apps import AppConfig


class GroundingConfig(AppConfig):
    """A department's own documents behind an assistant: files read into cited passages."""

    name = "grounding"
    verbose_name = "Grounding"
    default_auto_field = "django.db.models.BigAutoField"
