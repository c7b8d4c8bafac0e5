from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project itself: settings, URLs, the ASGI and Celery apps, the pages that bring the
    apps together, and the process's runtime (middleware, cache client)."""

    name = "portal"
    verbose_name = "Switchyard"

    def ready(self) -> None:
        from portal import middleware  # noqa: F401  (registers its deploy check)
