from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """Applications' calls: API keys, registered service principals, the OpenAI-compatible
    endpoints."""

    name = "gateway"
    verbose_name = "Gateway"
    default_auto_field = "django.db.models.BigAutoField"
