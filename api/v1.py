"""Version 1 of the automation API: one NinjaAPI, its operations from the routers beside it, and
the URL patterns that serve it under /api/v1/.

ninja's views are wrapped once here so that every answer is what a script expects: a problem
document for a method an address does not take (ninja's own 405 is plain text), the rate-limit
headers of the call, and no sign-in redirect or CSRF page from the portal's middleware (the API
authenticates, and checks CSRF for the session, itself).

The reference page (/api/v1/docs) is ninja's Swagger UI, from the assets django-ninja ships (so
pinned with it and served by Switchyard: offline, within the CSP, whose script-src 'self' they
satisfy without inline scripts)."""

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase, RawPostDataException
from django.urls import URLPattern, URLResolver
from django.utils.cache import patch_cache_control
from ninja import NinjaAPI, Schema
from ninja.openapi.schema import OpenAPISchema

from api import audit, catalog, costs, data_sets, departments, deployments, keys, me, requests
from api.auth import BearerAuth, SessionAuth, add_rate_headers
from api.idempotency import HEADER as IDEMPOTENCY_KEY
from api.idempotency import MAX_KEY_LENGTH, Replay, idempotency_finish, replay_response
from api.problems import MEDIA_TYPE, install_problem_handlers, method_not_allowed

DESCRIPTION = """Switchyard's pages as a JSON API, under the same access rules.

Authenticate with `Authorization: Bearer <token>`: a personal access token (`sy-pat-…`, made on
your profile page or with `manage.py create_access_token`) or a Microsoft Entra ID access token for
Switchyard. The browser session works too; a change made with it needs the CSRF token.

Lists are paged with an opaque `cursor` (`next_cursor` of the previous page) and a `limit`, and
take filters and a `sort`. Money is a decimal string with its currency; times are ISO 8601 in UTC.
Errors are RFC 9457 problem documents (`application/problem+json`), with `errors` by field; a field
the API does not know is refused. Each answer carries `RateLimit` and `RateLimit-Policy` headers;
over the limit, a 429 with `Retry-After`.

Every POST takes an `Idempotency-Key`: sent again with the same key and body, it gets its first
answer again (`Idempotent-Replayed: true`) rather than acting twice; the same key with another body
is a 409. What can be changed is read with an `ETag`; send it back in `If-Match` with the change,
and a change to something that changed meanwhile is a 412."""


class ProblemOut(Schema):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]] | None = None


# The problems every operation may answer with (its own 404 for an unknown id, 400 for a bad
# cursor): listed in the document so clients and schema-driven tests know them.
PROBLEM_STATUSES = {
    "400": "Refused by one of Switchyard's rules, `errors` by field (or a cursor this list did not give out)",
    "401": "Not signed in, or the bearer token is not accepted",
    "403": "Your roles do not allow this, or the session's CSRF token is missing",
    "404": "No such thing, or one of another department",
    "405": "The address does not take this method",
    "422": "Does not fit this document (a bug in the script): `errors` says what is wrong with each field",
    "429": "Over the rate limit: `Retry-After` says when to come back",
}
# What a POST may answer besides, and a change (PATCH, PUT) sent with If-Match.
POST_STATUSES = {
    "409": "The Idempotency-Key was used for another request, or its first request is still under way",
}
UPDATE_STATUSES = {"412": "If-Match names an older version: read it again"}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": "A key of yours (a UUID, say): the same POST sent again with it gets the first answer "
    "again (`Idempotent-Replayed: true`) for 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}
IF_MATCH_PARAMETER = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "The ETag you read: the change is made only if nothing changed since (else 412).",
    "schema": {"type": "string"},
}


class SwitchyardApi(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
            ProblemOut.model_json_schema()
        )
        problem = {"content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for operations in schema["paths"].values():
            for method, operation in operations.items():
                statuses = dict(PROBLEM_STATUSES)
                if method == "post":
                    statuses.update(POST_STATUSES)
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                if method in ("patch", "put"):
                    statuses.update(UPDATE_STATUSES)
                    operation.setdefault("parameters", []).append(IF_MATCH_PARAMETER)
                for status, description in statuses.items():
                    operation["responses"].setdefault(status, {"description": description, **problem})
        return schema


api = SwitchyardApi(
    title="Switchyard automation API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    openapi_url="/openapi.json",
    docs_url="/docs",
    auth=[BearerAuth(), SessionAuth()],
    openapi_extra={
        "tags": [
            {"name": "me", "description": "You: your roles, departments and personal access tokens."},
            {"name": "departments", "description": "Departments, their people, budgets and data policy."},
            {"name": "api keys", "description": "Keys for a department's applications at the gateway."},
            {"name": "requests", "description": "Deployment requests and their approvals."},
            {"name": "catalog", "description": "What can be asked for: models, regions, quota, prices."},
            {"name": "deployments", "description": "Deployments, how to call them, fallbacks, grants."},
            {
                "name": "data sets",
                "description": "Data sets, their documents, and the assistants grounded on them.",
            },
            {"name": "costs", "description": "Usage and costs by month, and the chargeback statements."},
            {"name": "audit", "description": "The audit trail, for platform admins and security."},
        ]
    },
)
install_problem_handlers(api)
api.add_exception_handler(Replay, lambda request, exc: replay_response(exc.kept))
api.add_router("", me.router)
api.add_router("", departments.router)
api.add_router("", keys.router)
api.add_router("", requests.router)
api.add_router("", catalog.router)
api.add_router("", deployments.router)
api.add_router("", data_sets.router)
api.add_router("", costs.router)
api.add_router("", audit.router)


def _finished(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @functools.wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method in ("POST", "PUT", "PATCH"):
            # Read the body before ninja's CSRF check reads a form's fields, which would use up the
            # stream the body (and the idempotency fingerprint) is read from.
            # An upload over the in-memory limit was parsed as it arrived (RequestSizeMiddleware):
            # its form and files are read, its body is not kept.
            with contextlib.suppress(RawPostDataException):
                request.body  # noqa: B018
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(MEDIA_TYPE):
            response = method_not_allowed(response, request)  # type: ignore[arg-type]
        idempotency_finish(request, response)
        add_rate_headers(request, response)
        # What a person may see, fetched with their credentials: no shared cache keeps it.
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response

    answer.csrf_exempt = True  # type: ignore[attr-defined]
    answer.login_required = False  # type: ignore[attr-defined]
    return answer


def url_patterns() -> list[URLPattern | URLResolver]:
    patterns, _app_name, _namespace = api.urls
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)
        pattern.callback = _finished(pattern.callback)
    return patterns
