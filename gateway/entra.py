"""Callers with Microsoft Entra ID access tokens: a workload identity (an application's or a
managed identity's service principal) or a person, calling Switchyard's API.

A token is accepted only when it is signed with RS256 by a key the tenant publishes (never an
unsigned or HMAC token, in any mode), was issued by the tenant (`iss`, `tid`), is meant for
Switchyard (`aud`: its app id URI in v1.0 tokens, its application id in v2.0 ones) and is valid
now (`exp`, `nbf`, with a minute's leeway for clocks that drift). Then its `oid` says who calls:

- an application's token (no `scp`: it acts as itself) must name a service principal an admin
  registered for a department, and enabled; it pays with that department;
- a person's token (`scp`: an application acts for them) must name someone who signed in to
  Switchyard with Entra ID (allauth keeps their object id), and they pay with their department.
  Someone in several departments says which one with the `Switchyard-Department: <slug>` header,
  as the chat asks them to choose; with one department the header may be left out.

Every refusal says what to fix: 401 for a token Switchyard cannot trust, 403 for a good token
whose caller may not use the gateway, 400 for a person who must name a department, and 503 when
the tenant's keys cannot be read.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from allauth.socialaccount.models import SocialAccount
from django.conf import settings

from base.remembered import Remembered
from gateway.callers import REMEMBER_SECONDS, Caller, CallerRefused, callers_version, limited_caller
from gateway.jwks import KeySetUnavailable, signing_keys
from gateway.models import ServicePrincipal
from org.models import Membership, User
from org.passwords import ENTRA_PROVIDER_ID

LEEWAY = timedelta(seconds=60)
# Writing `last_used_at` on every call would make each call a write; once a minute tells enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)
DEPARTMENT_HEADER = "Switchyard-Department"
REQUIRED_CLAIMS = ["iss", "aud", "exp", "nbf", "tid", "oid"]


def _refused(message: str) -> CallerRefused:
    # The code OpenAI gives every 401, so clients that look at it treat a bad token as a bad key.
    return CallerRefused(message, status=401, code="invalid_api_key")


def _forbidden(message: str) -> CallerRefused:
    return CallerRefused(message, status=403, code="permission_denied")


def caller_for_token(token: str, *, now: datetime, department: str | None = None) -> Caller:
    """Who calls with this Entra ID access token; `department` is the `Switchyard-Department`
    header's value, if the request has one. Raises CallerRefused."""
    claims = verified_claims(token, now=now)
    if acts_for_a_person(claims):
        return _person(claims, department)
    return _service_principal(claims, department, now=now)


def issuers(tenant: str) -> list[str]:
    """The issuers of the tenant's v2.0 and v1.0 tokens: Entra's, or the emulator's own."""
    if settings.AZURE_MODE == "emulator":
        base = settings.AZURE_EMULATOR_URL.rstrip("/")
        return [f"{base}/{tenant}/v2.0", f"{base}/{tenant}/"]
    authority = settings.ENTRA_AUTHORITY.rstrip("/")
    return [f"{authority}/{tenant}/v2.0", f"https://sts.windows.net/{tenant}/"]


def key_set_url(tenant: str) -> str:
    base = settings.AZURE_EMULATOR_URL if settings.AZURE_MODE == "emulator" else settings.ENTRA_AUTHORITY
    return f"{base.rstrip('/')}/{tenant}/discovery/v2.0/keys"


def audiences() -> list[str]:
    return [value for value in (settings.GATEWAY_TOKEN_AUDIENCE, settings.GATEWAY_TOKEN_CLIENT_ID) if value]


def verified_claims(token: str, *, now: datetime) -> dict[str, Any]:
    """The token's claims once its signature, issuer, tenant, audience and lifetime check out."""
    tenant = settings.GATEWAY_TOKEN_TENANT_ID.lower()
    key = _signing_key(token, tenant)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            # Checked below against `now`, with messages that say what to fix.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "require": REQUIRED_CLAIMS,
            },
        )
    except jwt.InvalidSignatureError:
        raise _refused(
            "Bad token signature: the token was changed after it was issued, or signed by another key "
            "than the tenant's."
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise _refused(
            f"The token has no `{error.claim}` claim; it is not an Entra ID access token."
        ) from None
    except jwt.InvalidTokenError as error:
        raise _refused(f"The token cannot be read: {error}.") from None
    _check_lifetime(claims, now)
    _check_issuer(claims, tenant)
    _check_audience(claims)
    return claims


def _signing_key(token: str, tenant: str) -> jwt.PyJWK:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _refused(
            "The bearer token is neither a Switchyard key (sy-…) nor a JSON Web Token; send an API key "
            f"or an Entra ID access token for {settings.GATEWAY_TOKEN_AUDIENCE}."
        ) from None
    algorithm = header.get("alg")
    if not algorithm or str(algorithm).lower() == "none" or token.endswith("."):
        raise _refused(
            "Token not signed: Switchyard accepts only access tokens signed by Microsoft Entra ID (RS256)."
        )
    if algorithm != "RS256":
        raise _refused(f"Token signed with {algorithm}: Entra ID signs access tokens with RS256 only.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _refused("The token names no signing key (`kid` header); it is not an Entra ID access token.")
    url = key_set_url(tenant)
    try:
        key = signing_keys.key(kid, url=url)
    except KeySetUnavailable:
        raise CallerRefused(
            "Cannot read the tenant's signing keys to check the token; try again shortly.",
            status=503,
            code="issuer_unavailable",
        ) from None
    if key is None:
        raise _refused(
            f"Unknown signing key {kid}: the tenant does not publish it, so the token was not issued by "
            "the tenant Switchyard trusts."
        )
    return key


def _moment(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(float(timestamp), tz=UTC)


def _check_lifetime(claims: dict[str, Any], now: datetime) -> None:
    try:
        expires, not_before = _moment(claims["exp"]), _moment(claims["nbf"])
    except (TypeError, ValueError, OverflowError):
        raise _refused("The token's `exp` or `nbf` is not a time.") from None
    if now > expires + LEEWAY:
        raise _refused(f"Token expired at {expires:%Y-%m-%d %H:%M:%S} UTC; get a new one.")
    if now < not_before - LEEWAY:
        raise _refused(
            f"Token not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC; check the clock of the machine "
            "that asked for it."
        )


def _check_issuer(claims: dict[str, Any], tenant: str) -> None:
    expected = issuers(tenant)
    if claims["iss"] not in expected:
        raise _refused(
            f"Wrong issuer: expected {expected[0]} (or {expected[1]} for v1.0 tokens), got {claims['iss']}."
        )
    if str(claims["tid"]).lower() != tenant:
        raise _refused(f"Wrong tenant: the token is from {claims['tid']}, Switchyard trusts {tenant}.")


def _check_audience(claims: dict[str, Any]) -> None:
    audience = claims["aud"]
    accepted = audiences()
    if audience not in accepted:
        raise _refused(
            f"Wrong audience: expected {' or '.join(accepted)}, got {audience}. Ask for the token with "
            f"scope {settings.GATEWAY_TOKEN_AUDIENCE}/.default."
        )


def acts_for_a_person(claims: dict[str, Any]) -> bool:
    """An application acting for a person gets delegated scopes (`scp`); acting as itself, none.
    The optional `idtyp` claim says so outright when the API asked for it."""
    if claims.get("idtyp") in ("app", "user"):
        return bool(claims["idtyp"] == "user")
    return "scp" in claims


def _object_id(claims: dict[str, Any]) -> UUID:
    try:
        return UUID(str(claims["oid"]))
    except ValueError:
        raise _refused(f"The token's `oid` ({claims['oid']}) is not an object id.") from None


@dataclass(frozen=True)
class _PrincipalFacts:
    """What an object id stands for as a service principal, read once and remembered until
    registrations change (gateway.callers' version); `caller` None: not registered."""

    caller: Caller | None
    name: str = ""
    enabled: bool = False


# Every call of a workload presents its token: its registration is not read again each time.
_principals: Remembered[_PrincipalFacts] = Remembered(seconds=REMEMBER_SECONDS, size=10_000)
_last_used_written: dict[UUID, datetime] = {}


def _service_principal(claims: dict[str, Any], department: str | None, *, now: datetime) -> Caller:
    object_id = _object_id(claims)
    version = callers_version()
    facts = _principals.get(object_id, version=version)
    if facts is None:
        facts = _read_principal(object_id)
        _principals.set(object_id, facts, version=version)
    caller = facts.caller
    if caller is None:
        client = claims.get("azp") or claims.get("appid") or "unknown"
        raise _forbidden(
            f"Service principal {object_id} (application {client}) is not registered with Switchyard: ask "
            "a platform admin to register it for your department."
        )
    if not facts.enabled:
        raise _forbidden(f"Service principal {facts.name} is disabled in Switchyard; ask a platform admin.")
    if department and department != caller.department.slug:
        raise _forbidden(
            f"Service principal {facts.name} calls for {caller.department.slug}, not {department}; "
            f"leave out the {DEPARTMENT_HEADER} header."
        )
    assert caller.principal_id is not None
    _note_use(object_id, caller.principal_id, now=now)
    return caller


def _read_principal(object_id: UUID) -> _PrincipalFacts:
    principal = (
        ServicePrincipal.objects.select_related("department")
        .prefetch_related("deployments")
        .filter(object_id=object_id)
        .first()
    )
    if principal is None:
        return _PrincipalFacts(caller=None)
    caller = limited_caller(principal, label=f"service principal {principal.name}", principal_id=principal.pk)
    return _PrincipalFacts(caller=caller, name=principal.name, enabled=principal.enabled)


def _note_use(object_id: UUID, principal_id: int, *, now: datetime) -> None:
    """Keep "last used" current to the minute, without a write per call. An update, not a save:
    no signal, so what is remembered about callers stays valid."""
    written = _last_used_written.get(object_id)
    if written is not None and now - written < LAST_USED_RESOLUTION:
        return
    _last_used_written[object_id] = now
    ServicePrincipal.objects.filter(pk=principal_id).update(last_used_at=now)


def person_for_claims(claims: dict[str, Any]) -> User:
    """The person a verified token acting for someone names (by `oid`): someone who signed in
    to Switchyard with Entra ID (allauth keeps their object id) and is not deactivated. Raises
    CallerRefused (403)."""
    object_id = _object_id(claims)
    account = (
        SocialAccount.objects.select_related("user")
        .filter(provider=ENTRA_PROVIDER_ID, uid=str(object_id))
        .first()
    )
    who = _who(claims)
    if account is None:
        raise _forbidden(
            f"{who} has not signed in to Switchyard yet: sign in once with Microsoft, so Switchyard knows "
            "your departments, then call again."
        )
    user: User = account.user
    if not user.is_active:
        raise _forbidden(f"{who}'s Switchyard account is deactivated.")
    return user


def _who(claims: dict[str, Any]) -> Any:
    return claims.get("preferred_username") or claims.get("upn") or claims["oid"]


def _person(claims: dict[str, Any], department: str | None) -> Caller:
    user = person_for_claims(claims)
    who = _who(claims)
    memberships = list(Membership.objects.filter(user=user).select_related("department"))
    departments = sorted((membership.department for membership in memberships), key=lambda d: d.slug)
    slugs = ", ".join(d.slug for d in departments)
    if department:
        chosen = next((d for d in departments if d.slug == department), None)
        if chosen is None:
            raise _forbidden(f"{who} is not a member of {department}; your departments: {slugs or 'none'}.")
    elif len(departments) == 1:
        chosen = departments[0]
    elif not departments:
        raise _forbidden(f"{who} belongs to no department in Switchyard, so no department would pay.")
    else:
        raise CallerRefused(
            f"{who} belongs to several departments ({slugs}): say which one pays with the header "
            f"{DEPARTMENT_HEADER}: <slug>.",
            status=400,
            code="department_required",
        )
    return Caller(department=chosen, label=f"{user.display_name} (Entra ID)", user_id=user.pk)
