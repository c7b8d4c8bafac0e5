from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def _ensure_platform_groups(**kwargs: Any) -> None:
    from org.roles import ensure_platform_groups

    ensure_platform_groups()


class OrgConfig(AppConfig):
    name = "org"
    label = "org"
    verbose_name = "Organisation"

    def ready(self) -> None:
        from org import checks, receivers  # noqa: F401  (registers the deploy checks, connects the receivers)
        from org.auth import person_changed
        from org.models import User

        post_migrate.connect(_ensure_platform_groups, dispatch_uid="org.ensure_platform_groups")
        for signal in (post_save, post_delete):
            signal.connect(person_changed, sender=User, dispatch_uid="org.person-changed")
