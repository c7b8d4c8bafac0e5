"""Department API keys as a lead handles them: create one (its secret shown once), rotate it with a
grace period for the old key, revoke it. Keys for deployments holding restricted data wait for an
approval that the requests app runs (`gateway.signals`); it calls `api_key_approve` or
`api_key_reject` when the approvers have decided.

Each change locks the key, writes an audit event (never with the key or its hash) and tells the
relay's key lookup after commit (`gateway.callers.keys_changed`)."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_record
from base.text import validate_single_line
from gateway.access import may_manage_keys
from gateway.callers import keys_changed
from gateway.models import ApiKey
from gateway.secrets import new_key
from gateway.signals import api_key_needs_approval, api_key_withdrawn
from org.models import Department, User
from provisioning.models import DataClassification, ModelDeployment

DEFAULT_DAYS = 90
MAX_DAYS = 365
DEFAULT_GRACE_HOURS = 24
MAX_GRACE_HOURS = 7 * 24
# Bounds that keep a limit inside its column and far beyond what any deployment serves.
MAX_REQUESTS_PER_MINUTE = 1_000_000
MAX_TOKENS_PER_MINUTE = 1_000_000_000
NAME_LENGTH = 80
PURPOSE_LENGTH = 4000

FieldErrors = dict[str, list[str]]


class ApiKeyRefused(Exception):
    """The key's state or the actor's role does not allow this; the message says why."""


class ApiKeyInvalid(ApiKeyRefused):
    """What was asked for breaks the rules; `errors` holds the messages by field ("__all__" for
    the key as a whole)."""

    def __init__(self, errors: FieldErrors) -> None:
        self.errors = errors
        super().__init__(" ".join(message for messages in errors.values() for message in messages))


# A key may name a deployment still being provisioned, so the application can be set up meanwhile;
# the gateway serves it once it is active.
KEYABLE_STATES = [
    ModelDeployment.State.REQUESTED,
    ModelDeployment.State.PROVISIONING,
    ModelDeployment.State.ACTIVE,
]


def deployments_for_keys(department: Department) -> QuerySet[ModelDeployment]:
    """What a key of `department` may call: its own deployments and the shared services granted
    to it, active or on their way."""
    return (
        ModelDeployment.objects.filter(state__in=KEYABLE_STATES)
        .of_departments([department.pk])
        .order_by("display_name")
    )


def needs_approval(deployments: Iterable[ModelDeployment]) -> bool:
    return any(d.data_classification == DataClassification.RESTRICTED for d in deployments)


# The rules ---------------------------------------------------------------------------------------


def _add(errors: FieldErrors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def api_key_errors(
    *,
    department: Department,
    name: str,
    deployments: list[ModelDeployment],
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    expires_in_days: int,
    purpose: str,
    now: datetime,
) -> FieldErrors:
    """Every rule a new key breaks, by field, with a message the lead can act on."""
    errors: FieldErrors = {}
    _check_name(errors, department, name, now)
    if not deployments:
        _add(errors, "deployments", "Choose at least one deployment the key may call.")
    allowed = set(deployments_for_keys(department).values_list("pk", flat=True))
    for deployment in deployments:
        if deployment.pk not in allowed:
            _add(
                errors,
                "deployments",
                f"{deployment.display_name} is not a deployment {department.name} may use: only its "
                "own deployments and the shared services granted to it, active or being provisioned.",
            )
    for field, value, highest in (
        ("requests_per_minute", requests_per_minute, MAX_REQUESTS_PER_MINUTE),
        ("tokens_per_minute", tokens_per_minute, MAX_TOKENS_PER_MINUTE),
    ):
        if value is not None and not 1 <= value <= highest:
            _add(errors, field, f"Leave it empty for no limit, or give a number from 1 to {highest:,}.")
    if not 1 <= expires_in_days <= MAX_DAYS:
        _add(errors, "expires_in_days", f"A key lasts from 1 to {MAX_DAYS} days.")
    if len(purpose) > PURPOSE_LENGTH or "\x00" in purpose:
        _add(errors, "purpose", f"Say it in at most {PURPOSE_LENGTH:,} characters of plain text.")
    elif needs_approval(deployments) and not purpose.strip():
        _add(
            errors,
            "purpose",
            "A key for restricted data needs an approval: say what the application does with the "
            "data, for the approvers.",
        )
    return errors


def _check_name(errors: FieldErrors, department: Department, name: str, now: datetime) -> None:
    if not name:
        _add(errors, "name", "Name the key after the application that uses it.")
        return
    if len(name) > NAME_LENGTH:
        _add(errors, "name", f"Use at most {NAME_LENGTH} characters (it has {len(name)}).")
        return
    try:
        validate_single_line(name)  # null characters and line breaks included
    except ValidationError as error:
        _add(errors, "name", " ".join(error.messages))
        return
    live = (
        department.api_keys.filter(name__iexact=name, revoked_at__isnull=True, grace_until__isnull=True)
        .exclude(state=ApiKey.State.REJECTED)
        .filter(expires_at__gt=now)
    )
    if live.exists():
        _add(errors, "name", f"{department.name} already has a key named “{name}”: choose another name.")


def _refuse_unless_manager(actor: User | None, department: Department) -> None:
    """`None` is Switchyard itself (the command line, the demo): trusted callers only."""
    if actor is not None and not may_manage_keys(actor, department):
        raise ApiKeyRefused(f"Only {department.name}'s leads and platform admins manage its API keys.")


def _lock(key: ApiKey) -> ApiKey:
    return ApiKey.objects.select_for_update(of=("self",)).select_related("department").get(pk=key.pk)


# Creating, rotating, revoking ---------------------------------------------------------------------


def api_key_create(
    *,
    department: Department,
    name: str,
    deployments: Iterable[ModelDeployment],
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    expires_in_days: int = DEFAULT_DAYS,
    actor: User | None,
    purpose: str = "",
) -> tuple[ApiKey, str]:
    """A new key and its secret, which nobody can see again. A key for restricted data is
    created waiting (`pending`) and an approval is opened for it in the same transaction."""
    _refuse_unless_manager(actor, department)
    name, deployments = name.strip(), list(deployments)
    now = timezone.now()
    with transaction.atomic():
        errors = api_key_errors(
            department=department,
            name=name,
            deployments=deployments,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            expires_in_days=expires_in_days,
            purpose=purpose,
            now=now,
        )
        if errors:
            raise ApiKeyInvalid(errors)
        restricted = needs_approval(deployments)
        key, raw = _key_insert(
            ApiKey(
                department=department,
                name=name,
                state=ApiKey.State.PENDING if restricted else ApiKey.State.ACTIVE,
                created_by=actor,
                created_at=now,
                expires_at=now + timedelta(days=expires_in_days),
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
            ),
            deployments,
        )
        audit_record(
            actor=actor,
            verb="api_key.created",
            target=key,
            department=key.department,
            after=key.snapshot(),
            note="Waits for approval: it calls restricted data." if restricted else "",
        )
        if restricted:
            answers = api_key_needs_approval.send(
                sender=ApiKey, key=key, actor=actor, purpose=purpose.strip()
            )
            if not answers:
                # Nobody would ever decide it: a key that can never work is not made at all.
                raise ApiKeyRefused("Keys for restricted data need an approval, and no approvals run here.")
    return key, raw


def api_key_rotate(
    *, key: ApiKey, grace_hours: int = DEFAULT_GRACE_HOURS, actor: User | None
) -> tuple[ApiKey, str]:
    """A successor with a new secret and the same name, deployments and limits, lasting as long
    as the old key was meant to; the old key keeps working for `grace_hours` (0: it stops now),
    so applications can switch over. Rotation changes the secret only: a key for restricted data
    that was approved once stays approved."""
    if not 0 <= grace_hours <= MAX_GRACE_HOURS:
        raise ApiKeyInvalid({"grace_hours": [f"The old key may keep working 0 to {MAX_GRACE_HOURS} hours."]})
    with transaction.atomic():
        old = _lock(key)
        _refuse_unless_manager(actor, old.department)
        now = timezone.now()
        status = old.status(now)
        if status != "active":
            raise ApiKeyRefused(_not_rotatable(old, status))
        allowed = deployments_for_keys(old.department)
        deployments = list(allowed.filter(pk__in=old.deployments.values("pk")))
        if not deployments:
            raise ApiKeyRefused(
                f"None of the deployments “{old.name}” may call is available to {old.department.name} "
                "any more: create a new key instead."
            )
        before = old.snapshot()
        successor, raw = _key_insert(
            ApiKey(
                department=old.department,
                name=old.name,
                state=ApiKey.State.ACTIVE,
                created_by=actor,
                created_at=now,
                expires_at=now + (old.expires_at - old.created_at),
                requests_per_minute=old.requests_per_minute,
                tokens_per_minute=old.tokens_per_minute,
                replaces=old,
            ),
            deployments,
        )
        old.grace_until = min(now + timedelta(hours=grace_hours), old.expires_at)
        old.save(update_fields=["grace_until"])
        audit_record(
            actor=actor,
            verb="api_key.rotated",
            target=old,
            department=old.department,
            before=before,
            after={**old.snapshot(), "successor": successor.prefix},
            note=f"Works until {old.grace_until.isoformat()}" if grace_hours else "Stopped at once",
        )
        audit_record(
            actor=actor,
            verb="api_key.created",
            target=successor,
            department=successor.department,
            after=successor.snapshot(),
            note=f"Rotated from {old.prefix}…",
        )
        transaction.on_commit(keys_changed)
    return successor, raw


def _key_insert(key: ApiKey, deployments: list[ModelDeployment]) -> tuple[ApiKey, str]:
    """Save `key` with a fresh secret; returns it and the secret, which is kept nowhere."""
    raw, key.prefix, key.secret_hash = new_key()
    key.save()
    key.deployments.set(deployments)
    return key, raw


def _not_rotatable(key: ApiKey, status: str) -> str:
    if status == "pending":
        return f"“{key.name}” waits for approval: it can be rotated once it works."
    if status in {"rotated", "replaced"}:
        successor = ApiKey.objects.filter(replaces=key).first()
        where = f" ({successor.prefix}…)" if successor else ""
        return f"“{key.name}” was rotated already: rotate its successor{where} instead."
    return f"“{key.name}” is {status}: only a working key can be rotated."


def api_key_revoke(*, key: ApiKey, actor: User | None) -> ApiKey:
    """The key stops working at once, a rotated key's grace period included. A key still waiting
    for approval withdraws its approval request."""
    with transaction.atomic():
        locked = _lock(key)
        _refuse_unless_manager(actor, locked.department)
        if locked.revoked_at is not None:
            return locked  # nothing to do
        before = locked.snapshot()
        locked.revoked_at = timezone.now()
        locked.revoked_by = actor
        locked.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            actor=actor,
            verb="api_key.revoked",
            target=locked,
            department=locked.department,
            before=before,
            after=locked.snapshot(),
        )
        if locked.state == ApiKey.State.PENDING:
            api_key_withdrawn.send(sender=ApiKey, key=locked, actor=actor)
        transaction.on_commit(keys_changed)
    return locked


# Deciding a key for restricted data (the requests app calls these) -----------------------------


def api_key_approve(*, key: ApiKey, actor: User | None, note: str = "") -> ApiKey:
    """Pending -> active, once the approvers agreed. Refused when the key was revoked or ran out
    meanwhile: the approval then changes nothing."""
    with transaction.atomic():
        locked = _lock(key)
        status = locked.status()
        if status != "pending":
            raise ApiKeyRefused(
                f"The key “{locked.name}” ({locked.prefix}…) is {status} now: approving it changes nothing."
            )
        before = locked.snapshot()
        locked.state = ApiKey.State.ACTIVE
        locked.save(update_fields=["state"])
        audit_record(
            actor=actor,
            verb="api_key.approved",
            target=locked,
            department=locked.department,
            before=before,
            after=locked.snapshot(),
            note=note,
        )
        transaction.on_commit(keys_changed)
    return locked


def api_key_reject(*, key: ApiKey, actor: User | None, reason: str) -> ApiKey:
    """Pending -> rejected: the key never works."""
    with transaction.atomic():
        locked = _lock(key)
        if locked.state != ApiKey.State.PENDING:
            return locked  # nothing to do
        before = locked.snapshot()
        locked.state = ApiKey.State.REJECTED
        locked.save(update_fields=["state"])
        audit_record(
            actor=actor,
            verb="api_key.rejected",
            target=locked,
            department=locked.department,
            before=before,
            after=locked.snapshot(),
            note=reason,
        )
    return locked
