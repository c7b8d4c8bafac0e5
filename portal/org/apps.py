from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_platform_groups(**kwargs: Any) -> None:
    from portal.org.roles import ensure_platform_groups

    ensure_platform_groups()


class OrgConfig(AppConfig):
    name = "portal.org"
    label = "org"
    verbose_name = "Organisation"

    def ready(self) -> None:
        from portal import middleware  # noqa: F401  (registers its deploy check)
        from portal.org import receivers  # noqa: F401  (connects the sign-in receiver)

        post_migrate.connect(_ensure_platform_groups, dispatch_uid="org.ensure_platform_groups")
