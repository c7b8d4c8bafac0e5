from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """Applications' calls: API keys, registered service principals, the OpenAI-compatible
    endpoints."""

    name = "gateway"
    verbose_name = "Gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Service principals' admin lives beside the API keys' (gateway/admin.py), not in it.
        from gateway import admin_principals  # noqa: F401
