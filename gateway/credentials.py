"""What a request to the gateway presents, and the caller it stands for: a department API key
(`gateway.callers`) or a Microsoft Entra ID access token (`gateway.entra`)."""

from dataclasses import dataclass
from datetime import datetime

from gateway.callers import Caller, CallerRefused, caller_for_key, caller_remembered
from gateway.entra import caller_for_token
from gateway.secrets import KEY_START


@dataclass(frozen=True)
class Credential:
    """The `api-key` header's or the bearer token's value, and the `Switchyard-Department` header
    (a person in several departments names the one that pays)."""

    secret: str
    department: str | None = None


def caller_for_credential(credential: Credential, *, now: datetime, version: str | None = None) -> Caller:
    """A Switchyard key, or else an Entra ID token; `CallerRefused` says why neither opens the
    gateway."""
    secret = credential.secret
    if secret.startswith(KEY_START):
        return caller_for_key(secret, now=now, version=version)
    if secret.count(".") == 2:  # a JWT: header.payload.signature
        return caller_for_token(secret, now=now, department=credential.department)
    raise CallerRefused(
        "Incorrect API key provided. Switchyard takes a department API key (sy-…) or a Microsoft Entra "
        "ID access token."
    )


def caller_remembered_for_credential(credential: Credential, *, now: datetime, version: str) -> Caller | None:
    """A Switchyard key's caller, without a query or a write (`gateway.callers.caller_remembered`);
    None for anything else, which `caller_for_credential` decides (Entra ID tokens included)."""
    if not credential.secret.startswith(KEY_START):
        return None
    return caller_remembered(credential.secret, now=now, version=version)
