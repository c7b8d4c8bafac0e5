"""The project's own middleware (Django's, tuned to run on the event loop, is in
portal/runtime/middleware.py)."""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from api.problems import Problem, problem_response
from audit.context import origin, request_id_or_new
from portal.logs import REQUEST_ID_META
from portal.runtime.middleware import EventLoopHooks

# Paths whose clients read JSON errors (the chat's scripts, programs).
JSON_PATHS = ("/chat/", "/api/", "/openai/")
# The automation API answers every error with an RFC 9457 problem document.
API_PATH = "/api/"


class RequestSizeMiddleware(EventLoopHooks):
    """A body over Django's limit (DATA_UPLOAD_MAX_MEMORY_SIZE) is the client's mistake: answer it
    with 413 and a message the client can show (JSON where the client reads JSON), before the
    CSRF check reads the body and Django answers its bare 400 page and logs a traceback."""

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if limit is None or length <= limit or request.method not in ("POST", "PUT", "PATCH"):
            return None
        try:
            request.POST  # noqa: B018  (uploaded files do not count towards the limit; the rest does)
        except RequestDataTooBig:
            message = (
                f"That is too much to send at once ({length / 1_000_000:.1f} MB; the limit is "
                f"{limit / 1_000_000:.1f} MB). Shorten it and try again."
            )
            if request.path.startswith(API_PATH):
                return problem_response(Problem(413, message))
            if request.path.startswith(JSON_PATHS):
                return JsonResponse({"error": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return None


class AuditOriginMiddleware:
    """Every audit event written while serving a request carries the request's id and the
    caller's IP address (`audit.context.origin`), and the response names the id in
    `X-Request-ID`, so a user reporting a problem and the audit trail speak of the same request.

    The origin is a context variable: set here on the event loop, it reaches sync views, which
    asgiref runs in a thread with a copy of the context."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._serve_async(request)
        request_id = request_id_of(request)
        request.META[REQUEST_ID_META] = request_id  # for the log lines written after the middleware
        with origin(request_id=request_id, source_ip=source_ip_of(request)):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

    async def _serve_async(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_of(request)
        request.META[REQUEST_ID_META] = request_id  # for the log lines written after the middleware
        with origin(request_id=request_id, source_ip=source_ip_of(request)):
            response: HttpResponseBase = await self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def request_id_of(request: HttpRequest) -> str:
    """The request's id: the one the caller gave in X-Request-ID if it is a plain token, else new."""
    return request_id_or_new(request.headers.get("X-Request-ID", ""))


def source_ip_of(request: HttpRequest) -> str | None:
    """The caller's address. Behind `TRUSTED_PROXY_COUNT` proxies it is the hop the farthest of
    them saw in `X-Forwarded-For`; without proxies that header is the caller's to invent and is
    not read."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        if hops:
            return hops[-proxies] if len(hops) >= proxies else hops[0]
    return request.META.get("REMOTE_ADDR") or None
