"""Errors as RFC 9457 problem documents (`application/problem+json`): `type`, `title`, `status`,
`detail`, and `errors` by field for input that fails validation. Every 4xx the API answers is one,
ninja's own (validation, authentication, 404, 405) included, and so is a 500 that slipped through:
a script reads JSON, never an HTML page.

A problem with nothing more to say than its status has the type `about:blank` and the status's
reason phrase as its title (RFC 9457 section 4.2.1); the others have a `tag:` URI of their own,
which names the kind of problem without pretending to be a page to open."""

import json
import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "tag:switchyard,2026:problems/"
VALIDATION = TYPE_BASE + "validation"
UNAUTHENTICATED = TYPE_BASE + "unauthenticated"
RATE_LIMITED = TYPE_BASE + "rate-limited"
BAD_CURSOR = TYPE_BASE + "bad-cursor"
REFUSED = TYPE_BASE + "refused"

FieldErrors = dict[str, list[str]]


class Problem(Exception):
    """Raised anywhere under the API: answered as the problem document it describes."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str = "about:blank",
        title: str | None = None,
        errors: FieldErrors | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers or {}


def problem_response(problem: Problem) -> HttpResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    response = HttpResponse(json.dumps(body), status=problem.status, content_type=MEDIA_TYPE)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def refused(detail: str, errors: "FieldErrors", *, title: str = "Refused") -> Problem:
    """Input that fits the document but breaks one of Switchyard's rules (the form's, the
    service's): a 400 with `errors` by field, the words a person reads next to the field on the
    page. A 422 is kept for input that does not fit the document at all (a bug in the script);
    a 400 is something to show to the script's user."""
    return Problem(400, detail, type=REFUSED, title=title, errors=errors)


def unauthenticated(detail: str) -> Problem:
    return Problem(
        401,
        detail,
        type=UNAUTHENTICATED,
        title="Not signed in",
        # RFC 9110: a 401 names the scheme to use.
        headers={"WWW-Authenticate": 'Bearer realm="switchyard"'},
    )


def field_errors(errors: list[dict[str, Any]]) -> FieldErrors:
    """pydantic's errors as ninja reports them, by field: `limit`, `name`, `monthly_budget.amount`.
    The source (query, path, header, body) is left out, so a body's field has the name the
    services use when they refuse it; `body` names a body that is missing or not an object."""
    by_field: FieldErrors = {}
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in ("query", "path", "header", "cookie"):
            location = location[1:]
        elif location[:1] == ["body"]:
            # ninja puts the view's parameter name after "body": a field of the body goes by its own
            # path (`monthly_budget.amount`), as the services name the fields they refuse.
            location = location[2:] or ["body"]
        field = ".".join(location) or "__all__"
        by_field.setdefault(field, []).append(str(error.get("msg", "Invalid value.")))
    return by_field


def _validation(request: HttpRequest, exc: Any) -> HttpResponse:
    errors = field_errors(list(exc.errors))
    fields = ", ".join(sorted(errors))
    return problem_response(
        Problem(
            422,
            f"The request has values that are not valid: {fields}. `errors` says what is wrong with each.",
            type=VALIDATION,
            title="Invalid input",
            errors=errors,
        )
    )


def _http_error(request: HttpRequest, exc: Any) -> HttpResponse:
    if isinstance(exc, AuthenticationError):
        return problem_response(
            unauthenticated(
                "Sign in, or send `Authorization: Bearer <token>` with a personal access token (make one "
                "on your profile page) or a Microsoft Entra ID access token for Switchyard."
            )
        )
    if exc.status_code == 403 and "CSRF" in str(exc):
        return problem_response(
            Problem(
                403,
                "A change made with the browser session needs the CSRF token in the X-CSRFToken header; "
                "scripts send a bearer token instead.",
                title="CSRF check failed",
            )
        )
    return problem_response(Problem(exc.status_code, str(exc)))


def _not_found(request: HttpRequest, exc: Any) -> HttpResponse:
    detail = str(exc) if str(exc) else "Nothing here: check the address against /api/v1/openapi.json."
    return problem_response(Problem(404, detail))


def _forbidden(request: HttpRequest, exc: Any) -> HttpResponse:
    return problem_response(Problem(403, str(exc) or "Your roles do not allow this."))


def _server_error(request: HttpRequest, exc: Any) -> HttpResponse:
    logger.exception("Unexpected error in %s %s", request.method, request.path, exc_info=exc)
    return problem_response(
        Problem(
            500, "Something went wrong on Switchyard's side; it is logged. Try again, or tell the admins."
        )
    )


# ninja hands a handler the exception (typed as "the exception or its class"): these take Any.
def _problem(request: HttpRequest, exc: Any) -> HttpResponse:
    return problem_response(exc)


def install_problem_handlers(api: NinjaAPI) -> None:
    api.add_exception_handler(Problem, _problem)
    api.add_exception_handler(ValidationError, _validation)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(PermissionDenied, _forbidden)
    api.add_exception_handler(Exception, _server_error)


def not_found_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any address under /api/v1/ that names no operation."""
    return problem_response(
        Problem(404, f"No operation at {request.path}: the operations are listed in /api/v1/openapi.json.")
    )


def method_not_allowed(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    """ninja's bare 405 for a method an address does not take, as a problem with its Allow."""
    allowed = response.get("Allow", "")
    problem = problem_response(
        Problem(405, f"{request.method} is not an operation of {request.path}; it takes {allowed or 'none'}.")
    )
    problem["Allow"] = allowed
    return problem
