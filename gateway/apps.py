from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """Applications' calls: API keys, registered service principals, the OpenAI-compatible
    endpoints."""

    name = "gateway"
    verbose_name = "Gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from gateway.callers import keys_changed
        from gateway.models import ApiKey, ServicePrincipal
        from grounding.models import Grounding
        from org.models import Department
        from provisioning.models import AccessGrant, Fallback, ModelDeployment, OpenAIAccount

        # What the gateway remembers about callers and deployments is read again after any of these.
        for model in (
            ApiKey,
            ServicePrincipal,
            Department,
            ModelDeployment,
            OpenAIAccount,
            AccessGrant,
            Fallback,
            Grounding,
        ):
            for signal in (post_save, post_delete):
                signal.connect(keys_changed, sender=model, dispatch_uid=f"gateway-callers-{model.__name__}")
        for through in (ApiKey.deployments.through, ServicePrincipal.deployments.through):
            m2m_changed.connect(
                keys_changed, sender=through, dispatch_uid=f"gateway-callers-{through.__name__}"
            )

        # Service principals' admin lives beside the API keys' (gateway/admin.py), not in it.
        from gateway import admin_principals  # noqa: F401
