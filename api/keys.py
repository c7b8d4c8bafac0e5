"""A department's API keys, as its leads handle them on the key pages: list them (by prefix; the
key itself is never shown again), create one, rotate it with a grace period, revoke it. Reading
follows the department page, where finance approvers see the list too; changing is for the
department's leads and platform admins (`gateway.access`). Every change goes through the services
of `gateway.keys`, so the audit trail says the same as for the pages, and a key for restricted
data waits for its approval as it does there.

A new key is in the 201 answer that made it and nowhere else. Sent again with the same
`Idempotency-Key`, a create or a rotation is not done twice: the replay describes the same key,
with `key` null. The first answer is kept for replays without the secret, because a kept answer
is a row in the database for a day, and Switchyard keeps keys only as hashes (`gateway.models`).
That it would be replayed only to the same caller does not make a key stored in plain text safe.
The pages do the same with a form posted twice."""

import json
from datetime import datetime
from typing import Annotated, Literal

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.responses import NinjaJSONEncoder

from api.idempotency import idempotency_keep
from api.pagination import Page, PageParams, page_of
from api.params import Id, Slug, user_of
from api.problems import FieldErrors, Problem, refused
from api.schemas import Input, utc
from approvals.models import DeploymentRequest
from gateway.access import get_department_for_keys, get_key_for, get_key_shown_to
from gateway.keys import (
    DEFAULT_DAYS,
    DEFAULT_GRACE_HOURS,
    MAX_DAYS,
    MAX_GRACE_HOURS,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_MINUTE,
    NAME_LENGTH,
    PURPOSE_LENGTH,
    ApiKeyInvalid,
    ApiKeyRefused,
    api_key_create,
    api_key_errors,
    api_key_revoke,
    api_key_rotate,
    deployments_for_keys,
)
from gateway.models import ApiKey, ApiKeyQuerySet
from org.access import get_department_for
from org.models import Department
from provisioning.models import ModelDeployment

router = Router(tags=["api keys"])

KeyStatus = Literal["active", "pending", "rotated", "replaced", "revoked", "rejected", "expired"]
STATUS_TEXT = (
    "`active`; `pending`: waits for the approval a key for restricted data needs, and works only "
    "once approved; `rotated`: replaced by a new key, but works until `grace_until`; `replaced`: "
    "rotated and its grace period over; `revoked`; `rejected`: its approval was refused; `expired`."
)
KeySort = Literal["-created_at", "created_at", "name", "-name", "expires_at", "-expires_at"]
GATEWAY_NAME_LENGTH = 63
MOST_DEPLOYMENTS = 100


class KeyOut(Schema):
    id: int
    name: str = Field(..., description="The application that uses it.")
    prefix: str = Field(..., description="The key's first characters; the key itself is never shown again.")
    status: KeyStatus = Field(..., description=STATUS_TEXT)
    deployments: list[str] = Field(
        ...,
        description="The gateway names it may call (the `model`, or the deployment in an Azure-style URL).",
    )
    requests_per_minute: int | None = Field(..., description="null: no limit of its own.")
    tokens_per_minute: int | None = Field(..., description="null: no limit of its own.")
    created_at: datetime
    created_by: str | None = Field(..., description="The email of who made it; null for Switchyard itself.")
    expires_at: datetime
    grace_until: datetime | None = Field(..., description="A rotated key works until then.")
    revoked_at: datetime | None
    last_used_at: datetime | None
    replaces: int | None = Field(..., description="The key this one replaced by rotation.")
    replaced_by: int | None = Field(..., description="The key that replaced this one by rotation.")
    approval_request: int | None = Field(
        ..., description="The request that decides a key for restricted data (/api/v1/requests/{id})."
    )


class KeyCreatedOut(KeyOut):
    key: str | None = Field(
        ...,
        description="The key itself, for `Authorization: Bearer` or `api-key` at the gateway: in this "
        "answer only. null in a replay of it (`Idempotent-Replayed: true`).",
    )


class KeyRotatedOut(KeyCreatedOut):
    replaced: KeyOut = Field(..., description="The old key, working until its `grace_until`.")


class KeyIn(Input):
    name: str = Field(
        ..., max_length=NAME_LENGTH, description="The application that uses it, e.g. “Web shop”."
    )
    deployments: list[Annotated[str, Field(max_length=GATEWAY_NAME_LENGTH)]] = Field(
        ...,
        max_length=MOST_DEPLOYMENTS,
        description="Gateway names among the department's own deployments and the shared services "
        "granted to it (active or being provisioned).",
    )
    requests_per_minute: int | None = Field(None, ge=1, le=MAX_REQUESTS_PER_MINUTE)
    tokens_per_minute: int | None = Field(None, ge=1, le=MAX_TOKENS_PER_MINUTE)
    expires_in_days: int = Field(DEFAULT_DAYS, ge=1, le=MAX_DAYS)
    purpose: str = Field(
        "",
        max_length=PURPOSE_LENGTH,
        description="Needed for a key that calls restricted data: what the application does with "
        "it, for the approvers.",
    )


class RotateIn(Input):
    grace_hours: int = Field(
        DEFAULT_GRACE_HOURS,
        ge=0,
        le=MAX_GRACE_HOURS,
        description="How long the old key keeps working: 0 stops it now. The page offers 0, 1, 24, "
        "72 and 168 (a week, the most).",
    )


class KeyFilters(Schema):
    status: KeyStatus | None = Field(None, description="Only the keys in this status.")
    deployment: str | None = Field(
        None,
        max_length=GATEWAY_NAME_LENGTH,
        pattern=r"^[-a-zA-Z0-9_]+$",
        description="Only the keys that may call this gateway name.",
    )
    sort: KeySort = "-created_at"


def _with_relations(keys: ApiKeyQuerySet) -> ApiKeyQuerySet:
    return keys.select_related("created_by", "replaces", "replaced_by").prefetch_related(
        Prefetch("deployments", queryset=ModelDeployment.objects.order_by("gateway_name")),
        Prefetch("approval_requests", queryset=DeploymentRequest.objects.order_by("-pk")),
    )


def _replaced_by(key: ApiKey) -> int | None:
    try:
        return key.replaced_by.pk
    except ApiKey.DoesNotExist:
        return None


def key_out(key: ApiKey, *, now: datetime | None = None) -> KeyOut:
    approvals = list(key.approval_requests.all())
    return KeyOut(
        id=key.pk,
        name=key.name,
        prefix=key.prefix,
        status=key.status(now),  # type: ignore[arg-type]
        deployments=[deployment.gateway_name for deployment in key.deployments.all()],
        requests_per_minute=key.requests_per_minute,
        tokens_per_minute=key.tokens_per_minute,
        created_at=utc(key.created_at),
        created_by=key.created_by.email if key.created_by else None,
        expires_at=utc(key.expires_at),
        grace_until=utc(key.grace_until) if key.grace_until else None,
        revoked_at=utc(key.revoked_at) if key.revoked_at else None,
        last_used_at=utc(key.last_used_at) if key.last_used_at else None,
        replaces=key.replaces_id,
        replaced_by=_replaced_by(key),
        approval_request=approvals[0].pk if approvals else None,
    )


def _fresh(key: ApiKey) -> ApiKey:
    return _with_relations(ApiKey.objects.filter(pk=key.pk)).get()


def _location(key: ApiKey) -> str:
    return f"/api/v1/departments/{key.department.slug}/keys/{key.pk}"


def _keep_without_secret(request: HttpRequest, answer: KeyCreatedOut, *, location: str) -> None:
    """Keep the answer for a replay of this POST (same `Idempotency-Key`) with `key` null, in place
    of the answer itself (see the module's docstring)."""
    body = json.dumps(answer.model_copy(update={"key": None}).model_dump(), cls=NinjaJSONEncoder)
    kept = HttpResponse(body, status=201, content_type="application/json; charset=utf-8")
    kept["Location"] = location
    idempotency_keep(request, kept)


def _invalid(errors: FieldErrors) -> Problem:
    fields = ", ".join(sorted(errors))
    return refused(
        f"The key cannot be made as asked: {fields}. `errors` says what is wrong with each.", errors
    )


def _chosen_deployments(department: Department, payload: KeyIn) -> list[ModelDeployment]:
    """The deployments named, among those a key of the department may call; a name that is not
    one of them is refused with every other rule the key breaks, as the page's form does."""
    offered = {deployment.gateway_name: deployment for deployment in deployments_for_keys(department)}
    names = list(dict.fromkeys(payload.deployments))
    unknown = [name for name in names if name not in offered]
    chosen = [offered[name] for name in names if name in offered]
    if not unknown:
        return chosen
    errors = api_key_errors(
        department=department,
        name=payload.name.strip(),
        deployments=chosen,
        requests_per_minute=payload.requests_per_minute,
        tokens_per_minute=payload.tokens_per_minute,
        expires_in_days=payload.expires_in_days,
        purpose=payload.purpose,
        now=timezone.now(),
    )
    errors["deployments"] = [
        f"{name} is not a deployment {department.name} may use: only its own deployments and the "
        "shared services granted to it, active or being provisioned."
        for name in unknown
    ]
    raise _invalid(errors)


@router.get("/departments/{slug}/keys", response=Page[KeyOut], summary="The department's API keys")
def list_keys(
    request: HttpRequest, slug: Slug, page: Query[PageParams], filters: Query[KeyFilters]
) -> dict[str, object]:
    """Every key of the department, ended ones included, by prefix: never the key itself. For its
    leads, platform admins and finance approvers (who read, and change nothing), as the
    department page lists them. Newest first unless `sort` says otherwise."""
    department = get_department_for(user_of(request), slug, lead_only=True)
    now = timezone.now()
    keys = ApiKey.objects.filter(department=department)
    if filters.status is not None:
        keys = keys.with_status(filters.status, now)
    if filters.deployment is not None:
        keys = keys.filter(deployments__gateway_name=filters.deployment)
    chunk = page_of(
        _with_relations(keys),
        order=filters.sort,
        list_name=f"departments/{department.slug}/keys?status={filters.status}&deployment={filters.deployment}",
        cursor=page.cursor,
        limit=page.limit,
    )
    return {"items": [key_out(key, now=now) for key in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/departments/{slug}/keys/{key_id}", response=KeyOut, summary="One API key")
def get_key(request: HttpRequest, slug: Slug, key_id: Id) -> KeyOut:
    """A key of the department, by its id, for those who may list them."""
    return key_out(_fresh(get_key_shown_to(user_of(request), slug, key_id)))


@router.post("/departments/{slug}/keys", response={201: KeyCreatedOut}, summary="Create an API key")
def create_key(request: HttpRequest, slug: Slug, payload: KeyIn, response: HttpResponse) -> KeyCreatedOut:
    """A new key for the department's applications, for its leads and platform admins. The key
    itself (`key`) is in this answer only: Switchyard keeps a hash of it. An application sends it
    to the gateway as `Authorization: Bearer <key>` (the OpenAI SDKs' `api_key`) or `api-key`.

    A key that calls a deployment holding restricted data waits for an approval (`status`
    `pending`, and `approval_request` names it): it works once the approvers agreed, and
    `purpose` must say what the application does with the data. The same `Idempotency-Key` sent
    again gets the same key described with `key` null, not a second key: if that first answer was
    lost, rotate the key (`grace_hours` 0) to get a new secret."""
    user = user_of(request)
    department = get_department_for_keys(user, slug)
    deployments = _chosen_deployments(department, payload)
    try:
        key, raw = api_key_create(
            department=department,
            name=payload.name,
            deployments=deployments,
            requests_per_minute=payload.requests_per_minute,
            tokens_per_minute=payload.tokens_per_minute,
            expires_in_days=payload.expires_in_days,
            purpose=payload.purpose,
            actor=user,
        )
    except ApiKeyInvalid as invalid:
        raise _invalid(invalid.errors) from None
    except ApiKeyRefused as refusal:
        raise Problem(409, str(refusal)) from None
    answer = KeyCreatedOut(**key_out(_fresh(key)).model_dump(), key=raw)
    location = _location(key)
    response["Location"] = location
    _keep_without_secret(request, answer, location=location)
    return answer


@router.post(
    "/departments/{slug}/keys/{key_id}/rotate", response={201: KeyRotatedOut}, summary="Rotate an API key"
)
def rotate_key(
    request: HttpRequest, slug: Slug, key_id: Id, payload: RotateIn, response: HttpResponse
) -> KeyRotatedOut:
    """A new key with the same name, deployments and limits, lasting as long as the old one was
    meant to, in this answer only (`key`); the old key (`replaced`) keeps working for
    `grace_hours` so applications can switch over. Only a working (`active`) key is rotated: any
    other is a 409. A key for restricted data that was approved once needs no new approval. A
    replay with the same `Idempotency-Key` describes the same new key with `key` null."""
    user = user_of(request)
    key = get_key_for(user, slug, key_id)
    try:
        successor, raw = api_key_rotate(key=key, grace_hours=payload.grace_hours, actor=user)
    except ApiKeyInvalid as invalid:
        raise _invalid(invalid.errors) from None
    except ApiKeyRefused as refusal:
        raise Problem(409, str(refusal)) from None
    answer = KeyRotatedOut(**key_out(_fresh(successor)).model_dump(), key=raw, replaced=key_out(_fresh(key)))
    location = _location(successor)
    response["Location"] = location
    _keep_without_secret(request, answer, location=location)
    return answer


@router.delete("/departments/{slug}/keys/{key_id}", response=KeyOut, summary="Revoke an API key")
def revoke_key(request: HttpRequest, slug: Slug, key_id: Id) -> KeyOut:
    """The key stops working at once, a rotated key's grace period included; it stays listed as
    `revoked`. A key waiting for approval withdraws its approval request. Revoking a revoked key
    changes nothing. As `DELETE /api/v1/me/tokens/{token_id}` does for an access token."""
    user = user_of(request)
    key = get_key_for(user, slug, key_id)
    try:
        revoked = api_key_revoke(key=key, actor=user)
    except ApiKeyRefused as refusal:
        raise Problem(409, str(refusal)) from None
    return key_out(_fresh(revoked))
