import logging
from typing import Any

from allauth.account.signals import user_logged_in
from allauth.socialaccount.models import SocialLogin
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver
from django.http import HttpRequest

from audit.services import audit_record
from org.entra import GraphUnavailable, group_ids_from_claims
from org.models import User
from org.passwords import ENTRA_PROVIDER_ID, entra_sign_in_on
from org.services import (
    memberships_sync_from_entra,
    platform_roles_revoke_unconfirmed,
    sign_in_failed_record,
)

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def sync_memberships_on_entra_sign_in(
    sender: type[User], user: User, sociallogin: SocialLogin | None = None, **kwargs: Any
) -> None:
    """Every Entra ID sign-in brings the user's departments up to date with their groups."""
    if sociallogin is None or sociallogin.account.provider != ENTRA_PROVIDER_ID:
        return
    claims = sociallogin.account.extra_data.get("id_token", {})
    access_token = sociallogin.token.token if sociallogin.token else None
    try:
        group_ids = group_ids_from_claims(claims, access_token=access_token)
    except GraphUnavailable as error:
        # Sign-in must not depend on Graph. Departments may stay as last known, but a platform
        # role reaches every department: without Graph's word it goes until the next sign-in.
        revoked = platform_roles_revoke_unconfirmed(user=user).removed
        logger.warning(
            "Could not read the Entra groups of %s from Microsoft Graph (%s); "
            "keeping their last known departments, removing their platform roles (%s) "
            "until a sign-in can read their groups.",
            user.email,
            error,
            ", ".join(revoked) or "none held",
        )
        return
    memberships_sync_from_entra(user=user, group_ids=group_ids)


@receiver(user_logged_in)
def record_break_glass_sign_in(
    sender: type[User], user: User, sociallogin: SocialLogin | None = None, **kwargs: Any
) -> None:
    """A password sign-in while Entra sign-in is on is a break-glass account's: an emergency
    that those who watch the audit trail and the logs should see."""
    if sociallogin is not None or not entra_sign_in_on() or not user.is_break_glass:
        return
    logger.warning("Break-glass sign-in with a password by %s (id %s).", user.email, user.pk)
    audit_record(
        actor=user,
        verb="user.break_glass_sign_in",
        target=user,
        note="Signed in with a password while Microsoft Entra ID sign-in is on.",
    )


# Signing in and out, whichever way (a password, Entra ID, Django admin): Django's own signals ----


@receiver(auth_signals.user_logged_in)
def record_sign_in(sender: type[User], request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    audit_record(actor=user, verb="auth.signed_in", target=user)


@receiver(auth_signals.user_logged_out)
def record_sign_out(
    sender: type[User], request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    if user is not None:  # nobody was signed in
        audit_record(actor=user, verb="auth.signed_out", target=user)


@receiver(auth_signals.user_login_failed)
def record_failed_password_sign_in(
    sender: str, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """A wrong password (or an account that may not use one). The attempted address is kept, to
    see someone trying many; the password never is, not even masked."""
    email = str(credentials.get("email") or credentials.get("username") or "")
    sign_in_failed_record(email=email, note="Password sign-in refused.")
