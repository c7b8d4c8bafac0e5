"""Personal access tokens as their owner handles them: create one (shown once), revoke it; and
the person a token presented to the API stands for.

A token acts with its owner's roles at the moment it is used (no copy of them is kept), so a
person who loses a role, or is deactivated, takes their tokens' reach with them. Each change
locks the token and writes an audit event (never with the token or its hash) in the same
transaction."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from api.models import AccessToken
from audit.services import audit_record
from base.text import validate_single_line
from gateway.secrets import key_hash, looks_like_key, new_key
from org.models import User

TOKEN_START = "sy-pat-"  # noqa: S105  (the start every token shares, not a secret)
DEFAULT_DAYS = 90
MAX_DAYS = 365
NAME_LENGTH = 80
# Writing `last_used_at` on every call would make each call a write; once a minute tells enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)

FieldErrors = dict[str, list[str]]


class AccessTokenRefused(Exception):
    """The actor may not do this to the token; the message says why."""


class AccessTokenInvalid(AccessTokenRefused):
    """What was asked for breaks the rules; `errors` holds the messages by field."""

    def __init__(self, errors: FieldErrors) -> None:
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


class TokenNotAccepted(Exception):
    """The bearer token opens nothing; the message tells its holder what to do."""


def looks_like_access_token(value: str) -> bool:
    return looks_like_key(value, TOKEN_START)


def access_token_errors(*, user: User, name: str, expires_in_days: int, now: datetime) -> FieldErrors:
    errors: FieldErrors = {}
    if not name:
        errors["name"] = ["Name the token after the script or tool that uses it."]
    elif len(name) > NAME_LENGTH:
        errors["name"] = [f"Use at most {NAME_LENGTH} characters (it has {len(name)})."]
    else:
        try:
            validate_single_line(name)
        except ValidationError as error:
            errors["name"] = list(error.messages)
        else:
            if user.access_tokens.usable(now).filter(name__iexact=name).exists():
                errors["name"] = [f"You already have a token named “{name}”: choose another name."]
    if not 1 <= expires_in_days <= MAX_DAYS:
        errors["expires_in_days"] = [f"A token lasts from 1 to {MAX_DAYS} days."]
    return errors


def access_token_create(
    *, user: User, name: str, expires_in_days: int = DEFAULT_DAYS, actor: User | None
) -> tuple[AccessToken, str]:
    """A new token for `user` and its secret, which nobody can see again. Only the person
    themselves makes their tokens (`actor` None: Switchyard's command line)."""
    if actor is not None and actor.pk != user.pk:
        raise AccessTokenRefused("People make their own access tokens, on their profile page.")
    if not user.is_active:
        raise AccessTokenRefused(f"{user.email} is deactivated: their tokens would not work.")
    name = name.strip()
    now = timezone.now()
    with transaction.atomic():
        errors = access_token_errors(user=user, name=name, expires_in_days=expires_in_days, now=now)
        if errors:
            raise AccessTokenInvalid(errors)
        raw, prefix, secret_hash = new_key(TOKEN_START)
        token = AccessToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days),
        )
        audit_record(actor=actor, verb="access_token.created", target=token, after=token.snapshot())
    return token, raw


def access_token_revoke(*, token: AccessToken, actor: User | None) -> AccessToken:
    """The token stops working at once. Its owner or a platform admin revokes it."""
    if actor is not None and actor.pk != token.user_id and not actor.is_platform_admin:
        raise AccessTokenRefused("Only the token's owner and platform admins revoke it.")
    with transaction.atomic():
        locked = AccessToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            return locked  # nothing to do
        before = locked.snapshot()
        locked.revoked_at = timezone.now()
        locked.revoked_by = actor
        locked.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            actor=actor, verb="access_token.revoked", target=locked, before=before, after=locked.snapshot()
        )
    return locked


@dataclass(frozen=True)
class TokenHolder:
    user: User
    token: AccessToken


def holder_of(raw: str, *, now: datetime) -> TokenHolder:
    """The person a presented token acts for, once it checks out; its "last used" kept current to
    the minute. Raises TokenNotAccepted."""
    if not looks_like_access_token(raw):
        raise TokenNotAccepted(
            "That is not a personal access token (sy-pat-…) nor an Entra ID access token. Make a token on "
            "your profile page."
        )
    token = AccessToken.objects.select_related("user").filter(secret_hash=key_hash(raw)).first()
    if token is None:
        raise TokenNotAccepted(
            f"Unknown access token {raw[: len(TOKEN_START) + 8]}…: check it, or make a new one."
        )
    if token.revoked_at is not None:
        raise TokenNotAccepted(f"The access token “{token.name}” ({token.prefix}…) was revoked.")
    if token.expires_at <= now:
        raise TokenNotAccepted(
            f"The access token “{token.name}” ({token.prefix}…) expired on "
            f"{token.expires_at:%Y-%m-%d %H:%M} UTC: make a new one."
        )
    if not token.user.is_active:
        raise TokenNotAccepted(f"The access token's owner, {token.user.email}, is deactivated.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # An update, not a save: two calls at once both write, and neither waits for a lock.
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return TokenHolder(user=token.user, token=token)
