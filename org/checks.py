"""Deploy checks for sign-in settings that are for development only."""

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_password_sign_in_beside_entra(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """With Entra sign-in on, a password must open only break-glass accounts: a leaver's local
    password would outlive their directory account. The setting is ignored without DEBUG, but a
    production environment that sets it was copied from a development one."""
    if not settings.PASSWORD_SIGN_IN_WITH_ENTRA:
        return []
    return [
        checks.Warning(
            "PASSWORD_SIGN_IN_WITH_ENTRA is set: it lets every local account sign in with a password "
            "beside Microsoft Entra ID (the development demo).",
            hint="Unset PASSWORD_SIGN_IN_WITH_ENTRA in production; mark emergency accounts as break-glass "
            "instead. Without DEBUG it is ignored.",
            id="org.W001",
        )
    ]
