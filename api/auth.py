"""Who calls the automation API, and how often they may.

Three ways in, each acting as a person with that person's roles at the moment of the call:
- `Authorization: Bearer sy-pat-…`, a personal access token (`api.tokens`);
- `Authorization: Bearer <JWT>`, a Microsoft Entra ID access token an application got for a
  person, checked exactly as the gateway checks it (`gateway.entra`); its `oid` names someone who
  signed in to Switchyard with Microsoft. A workload's own token (no person behind it) is refused:
  the API acts with a person's roles, and a workload has none;
- the browser session, for Switchyard's own pages; a change made with it needs the CSRF token.

A request that presents a bearer token is judged by that token alone, never by a session cookie
that came along. Each caller is counted against `API_REQUESTS_PER_MINUTE` per token (per person
for Entra ID tokens and the session) in the shared cache, in fixed one-minute windows, and every
answer says where the caller stands in the `RateLimit` and `RateLimit-Policy` headers of the IETF
draft (draft-ietf-httpapi-ratelimit-headers)."""

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from ninja.security import HttpBearer
from ninja.security import SessionAuth as NinjaSessionAuth

from api.idempotency import idempotency_begin
from api.models import AccessToken
from api.problems import RATE_LIMITED, Problem, unauthenticated
from api.tokens import TOKEN_START, TokenNotAccepted, holder_of
from gateway.callers import CallerRefused
from gateway.entra import acts_for_a_person, person_for_claims, verified_claims
from gateway.secrets import KEY_START
from org.models import User

WINDOW_SECONDS = 60
POLICY = "per-token"
RATE_STATE_ATTRIBUTE = "_api_rate_state"
RATE_KEY_PREFIX = "api:rate:"


@dataclass(frozen=True)
class ApiCaller:
    """The person behind a call, and what they presented: "access_token", "entra" or "session"."""

    user: User
    method: str
    token: AccessToken | None = None

    @property
    def rate_key(self) -> str:
        if self.token is not None:
            return f"token:{self.token.pk}"
        return f"person:{self.user.pk}"


class BearerAuth(HttpBearer):
    """A personal access token or an Entra ID access token."""

    def __call__(self, request: HttpRequest) -> Any:
        value = request.headers.get(self.header)
        if not value:
            return None  # the session's turn
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated(
                "Send `Authorization: Bearer <token>`, with a personal access token or an Entra ID "
                "access token."
            )
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiCaller:
        now = timezone.now()
        if token.startswith(TOKEN_START):
            caller = _token_holder(token, now=now)
        elif token.startswith(KEY_START):
            raise unauthenticated(
                "That is a department API key: it calls deployments through the gateway (/openai/…). The "
                "automation API takes a personal access token (sy-pat-…) or an Entra ID access token."
            )
        else:
            caller = _entra_person(token, now=now)
        admit(request, caller)
        idempotency_begin(request, caller.rate_key)
        return caller


def _token_holder(token: str, *, now: datetime) -> ApiCaller:
    try:
        holder = holder_of(token, now=now)
    except TokenNotAccepted as refusal:
        raise unauthenticated(str(refusal)) from None
    return ApiCaller(user=holder.user, method="access_token", token=holder.token)


def _entra_person(token: str, *, now: datetime) -> ApiCaller:
    try:
        claims = verified_claims(token, now=now)
        if not acts_for_a_person(claims):
            raise Problem(
                403,
                "This Entra ID token is an application's own: the automation API acts as a person, with "
                "their roles. Get a token for a signed-in person (delegated), or use a personal access "
                "token.",
            )
        user = person_for_claims(claims)
    except CallerRefused as refusal:
        if refusal.status == 401:
            raise unauthenticated(refusal.message) from None
        raise Problem(refusal.status, refusal.message) from None
    return ApiCaller(user=user, method="entra")


class SessionAuth(NinjaSessionAuth):
    """The browser session. For a signed-in person, ninja checks the CSRF token of an unsafe
    method before `authenticate`; someone not signed in gets the 401, not a CSRF complaint."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiCaller | None:
        user = request.user
        if not user.is_authenticated or not user.is_active:
            return None
        caller = ApiCaller(user=user, method="session")
        admit(request, caller)
        idempotency_begin(request, caller.rate_key)
        return caller


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_seconds}',
        }


def admit(request: HttpRequest, caller: ApiCaller) -> None:
    """Count the call in its caller's window; over the limit, a 429 that says when to come back."""
    limit = settings.API_REQUESTS_PER_MINUTE
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    reset = max(1, WINDOW_SECONDS - int(now % WINDOW_SECONDS))
    key = f"{RATE_KEY_PREFIX}{caller.rate_key}:{window}"
    # add() then incr(): atomic on Redis and in the process's memory alike; the key outlives its
    # window a little so a slow call still finds it.
    cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between the two calls
        cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
        count = 1
    state = RateState(limit=limit, remaining=max(0, limit - count), reset_seconds=reset)
    setattr(request, RATE_STATE_ATTRIBUTE, state)
    if count > limit:
        raise Problem(
            429,
            f"Too many requests: {limit} a minute per token. Try again in {reset} seconds.",
            type=RATE_LIMITED,
            title="Rate limit reached",
            headers={**state.headers(), "Retry-After": str(reset)},
        )


def add_rate_headers(request: HttpRequest, response: HttpResponseBase) -> None:
    state: RateState | None = getattr(request, RATE_STATE_ATTRIBUTE, None)
    if state is not None:
        for name, value in state.headers().items():
            response[name] = value
