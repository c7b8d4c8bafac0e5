import logging
from typing import Any

from allauth.account.signals import user_logged_in
from allauth.socialaccount.models import SocialLogin
from django.dispatch import receiver

from audit.services import audit_record
from org.entra import GraphUnavailable, group_ids_from_claims
from org.models import User
from org.passwords import ENTRA_PROVIDER_ID, entra_sign_in_on
from org.services import memberships_sync_from_entra, platform_roles_revoke_unconfirmed

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
