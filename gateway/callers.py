"""Who is calling the gateway, once their key or token has been checked: the department that pays,
what they may call and how fast. `caller_for_key` (API keys) and `gateway.entra.caller_for_token`
(Entra ID tokens) make one; `gateway.credentials.caller_for_credential` picks between them.

Every call presents its key, so what a key stands for is remembered in the process (no query per
call) under a version in the shared cache that every change to keys, departments, deployments or
grants replaces (`keys_changed`): a revoked key stops working at its next call in the web process
that revoked it, and within a second in every other (each asks the shared cache for the version
at most once a second, where asking on every call cost a round trip before each). Expiry and
grace periods are checked against the clock at every call."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from base.remembered import Remembered, current_version, version_changed, version_read_lately
from gateway.models import ApiKey, ServicePrincipal
from gateway.secrets import PREFIX_LENGTH, key_hash, looks_like_key
from org.models import Department


class CallerRefused(Exception):
    """The key or token does not open the gateway: `status` (401 or 403), OpenAI's error `code`
    and a message the application's developer can act on."""

    def __init__(self, message: str, *, status: int = 401, code: str = "invalid_api_key") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Caller:
    department: Department
    label: str  # "key Marketing web app (sy-AbCd1234…)", "service principal Billing bot", a person
    api_key_id: int | None = None
    principal_id: int | None = None
    user_id: int | None = None
    # The deployments it may call, by id; None: every one the department may use.
    deployment_ids: frozenset[int] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


# The version that what the gateway remembers about callers and deployments is read under.
CALLERS_VERSION_KEY = "gateway:callers-version"
# At most this long, even when nothing changes.
REMEMBER_SECONDS = 300
# The version is asked of the shared cache at most this often per process: a change made in
# another process (a key revoked there) takes effect here within it.
VERSION_TRUST_SECONDS = 1.0
# A key's "last used" is written at most this often per process.
LAST_USED_EVERY_SECONDS = 60


def callers_version() -> str:
    return current_version(CALLERS_VERSION_KEY, trust_seconds=VERSION_TRUST_SECONDS)


def callers_version_read_lately() -> str | None:
    """`callers_version()` when it needs no round trip to the shared cache, else None."""
    return version_read_lately(CALLERS_VERSION_KEY, trust_seconds=VERSION_TRUST_SECONDS)


def keys_changed(**_signal: Any) -> None:
    """Keys, service principals, or what they may call changed: every web process reads them
    again at its next call. Call it after changing a key (rotate, revoke) and it is connected to
    the saves and deletes that decide who may call what."""
    version_changed(CALLERS_VERSION_KEY)


@dataclass(frozen=True)
class _KeyFacts:
    """What a key stands for, read once and remembered; whether it opens the gateway at a given
    time is decided at each call."""

    caller: Caller | None  # None: no such key
    state: str = ""
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    grace_until: datetime | None = None
    replaced: bool = False


_keys: Remembered[_KeyFacts] = Remembered(seconds=REMEMBER_SECONDS, size=10_000)
_last_used_written: dict[int, datetime] = {}


def limited_caller(
    holder: ApiKey | ServicePrincipal,
    *,
    label: str,
    api_key_id: int | None = None,
    principal_id: int | None = None,
) -> Caller:
    """The caller a key or a registered service principal stands for: its department, and what it
    may call and how fast. It names what it may call; naming nothing, it may call nothing."""
    return Caller(
        department=holder.department,
        label=label,
        api_key_id=api_key_id,
        principal_id=principal_id,
        deployment_ids=frozenset(deployment.pk for deployment in holder.deployments.all()),
        requests_per_minute=holder.requests_per_minute,
        tokens_per_minute=holder.tokens_per_minute,
    )


def caller_for_key(raw_key: str, *, now: datetime, version: str | None = None) -> Caller:
    """The caller an API key stands for, or `CallerRefused` saying why it does not open the
    gateway (unknown, waiting for approval, rejected, revoked, expired, rotated past its grace).
    `version`: the gateway's version (`callers_version`), when the caller has just read it."""
    if not looks_like_key(raw_key):
        raise CallerRefused(
            "The API key is not a Switchyard key (they start with 'sy-' and have 43 characters). "
            "Find your department's keys on its page in Switchyard."
        )
    version = version or callers_version()
    hashed = key_hash(raw_key)
    facts = _keys.get(hashed, version=version)
    if facts is None:
        facts = _read_key(hashed)
        _keys.set(hashed, facts, version=version)
    caller = facts.caller
    if caller is None:
        raise CallerRefused(
            f"Incorrect API key provided: {raw_key[:PREFIX_LENGTH]}…. Check the key, or ask a department "
            "lead for a new one."
        )
    _refuse_unusable(facts, caller, now=now)
    _note_use(caller, now=now)
    return caller


def caller_remembered(raw_key: str, *, now: datetime, version: str) -> Caller | None:
    """The caller the key stands for, without a query or a write: when this process remembers the
    key under `version`, the key opens the gateway now, and its "last used" is not due to be
    written. Else None, and `caller_for_key` reads, writes or refuses."""
    if not looks_like_key(raw_key):
        return None
    facts = _keys.get(key_hash(raw_key), version=version)
    if facts is None or facts.caller is None:
        return None
    try:
        _refuse_unusable(facts, facts.caller, now=now)
    except CallerRefused:
        return None
    if _last_use_due(facts.caller, now=now):
        return None
    return facts.caller


def _read_key(hashed: str) -> _KeyFacts:
    key = (
        ApiKey.objects.select_related("department")
        .prefetch_related("deployments")
        .filter(secret_hash=hashed)
        .first()
    )
    if key is None:
        return _KeyFacts(caller=None)
    caller = limited_caller(key, label=f"key {key.name} ({key.prefix}…)", api_key_id=key.pk)
    return _KeyFacts(
        caller=caller,
        state=key.state,
        revoked_at=key.revoked_at,
        expires_at=key.expires_at,
        grace_until=key.grace_until,
        replaced=key.grace_until is not None,
    )


def _refuse_unusable(facts: _KeyFacts, caller: Caller, *, now: datetime) -> None:
    name = caller.label.removeprefix("key ")
    if facts.state == ApiKey.State.PENDING:
        raise CallerRefused(
            f"The API key {name} is waiting for approval: it works once a platform admin approves it."
        )
    if facts.state != ApiKey.State.ACTIVE:
        raise CallerRefused(f"The API key {name} was not approved. Ask a department lead for another key.")
    if facts.revoked_at is not None:
        raise CallerRefused(
            f"The API key {name} was revoked on {facts.revoked_at:%Y-%m-%d}. Ask a department lead for "
            "a new key."
        )
    if facts.grace_until is not None and facts.grace_until <= now:
        raise CallerRefused(
            f"The API key {name} was replaced when it was rotated, and its grace period ended on "
            f"{facts.grace_until:%Y-%m-%d %H:%M} UTC. Use the new key."
        )
    if facts.expires_at is not None and facts.expires_at <= now:
        raise CallerRefused(
            f"The API key {name} expired on {facts.expires_at:%Y-%m-%d}. A department lead can rotate "
            "it or create a new one."
        )


def _last_use_due(caller: Caller, *, now: datetime) -> bool:
    if caller.api_key_id is None:
        return False
    written = _last_used_written.get(caller.api_key_id)
    return written is None or (now - written).total_seconds() >= LAST_USED_EVERY_SECONDS


def _note_use(caller: Caller, *, now: datetime) -> None:
    """Keep the key's "last used" current to the minute, without a write per call."""
    key_id = caller.api_key_id
    if key_id is None or not _last_use_due(caller, now=now):
        return
    _last_used_written[key_id] = now
    # An update, not a save: no signal, so the remembered callers stay valid.
    ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
