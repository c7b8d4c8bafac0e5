from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project itself: settings, URLs, the ASGI and Celery apps, the pages that bring the
    apps together, and the web process's runtime (portal/runtime: ASGI, middleware, cache client)."""

    name = "portal"
    verbose_name = "Switchyard"

    def ready(self) -> None:
        from portal.runtime import middleware  # noqa: F401  (registers its deploy check)
