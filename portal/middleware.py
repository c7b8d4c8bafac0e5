"""The project's own middleware (Django's, tuned to run on the event loop, is in
portal/runtime/middleware.py)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from portal.runtime.middleware import EventLoopHooks

# Paths whose clients read JSON errors (the chat's scripts, programs).
JSON_PATHS = ("/chat/", "/api/", "/openai/")


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
            if request.path.startswith(JSON_PATHS):
                return JsonResponse({"error": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return None
