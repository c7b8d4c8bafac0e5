"""Who may sign in with, or be given, a local password.

When Microsoft Entra ID sign-in is configured it is the way in: only break-glass accounts (an
admin marks them) sign in with a password, for when Entra ID itself is unavailable. An account
that signs in with Entra ID has no password here at all, whether Entra sign-in is on or not: a
password would keep it open after the directory closed it.

Every way in with a password asks `password_refusal`: the sign-in backends, the sign-in form,
password reset, set and change (org.adapters and org.forms) and Django admin.
"""

from allauth.socialaccount.models import SocialAccount
from django.conf import settings

from org.models import User

ENTRA_PROVIDER_ID = "entra"

SIGNS_IN_WITH_MICROSOFT = (
    "This account signs in with Microsoft: use “Sign in with Microsoft”. It has no password here."
)
LOCAL_SIGN_IN_OFF = (
    "Password sign-in is off: use “Sign in with Microsoft”. Only break-glass accounts that an "
    "administrator has marked sign in with a password."
)


def entra_sign_in_on() -> bool:
    return bool(settings.ENTRA_TENANT_ID and settings.ENTRA_CLIENT_ID)


def passwords_beside_entra() -> bool:
    """Development's demo: local accounts keep their passwords while Entra sign-in is on. Never in
    production, whatever the setting says."""
    return bool(settings.DEBUG and settings.PASSWORD_SIGN_IN_WITH_ENTRA)


def signs_in_with_entra(user: User) -> bool:
    if user.pk is None:
        return False
    return bool(SocialAccount.objects.filter(user=user, provider=ENTRA_PROVIDER_ID).exists())


def password_refusal(user: User) -> str | None:
    """Why this person may not sign in with, or get, a local password; None when they may."""
    if signs_in_with_entra(user):
        return SIGNS_IN_WITH_MICROSOFT
    if entra_sign_in_on() and not user.is_break_glass and not passwords_beside_entra():
        return LOCAL_SIGN_IN_OFF
    return None


def refusal_behind_right_password(*, email: str, password: str) -> str | None:
    """The refusal to show when these are an active person's right email and password.

    Only someone who knows the password learns why it does not work; a wrong password stays
    just wrong, so the page tells nobody which accounts exist or which are break-glass.
    """
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None:
        # As long as checking a password: the time taken must not tell who has an account.
        User().set_password(password)
        return None
    if not user.check_password(password):
        return None
    return password_refusal(user)
