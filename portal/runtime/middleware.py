"""Django's middleware, and WhiteNoise's, with hooks that run on the event loop under ASGI.

settings.MIDDLEWARE names these in place of Django's own; `check_middleware_settings` runs
Django's deploy checks for them. The project's own middleware (portal/middleware.py) is written on
`EventLoopHooks` too.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core import checks
from django.core.checks.security import base as security_checks
from django.core.checks.security import csrf as csrf_checks
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security
from django.test.utils import override_settings
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]

from base import compat


def _next_chunk(iterator: Iterator[bytes]) -> bytes | None:
    return next(iterator, None)


async def _read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await sync_to_async(_next_chunk, thread_sensitive=False)(chunks)) is not None:
        yield chunk


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]
    """WhiteNoise, able to run in an async middleware chain.

    WhiteNoise is sync-only: under ASGI Django would then run every request's whole middleware
    chain through one shared thread, so one slow request holds up all the others (the streaming
    chat most of all). Here a request that cannot be a static file passes straight on; a static
    one is looked up and opened in a worker thread, and its file is handed to the server chunk by
    chunk (read in a thread) instead of being read whole into memory.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Where a file may be served from: only such paths need a look at the disk.
        self.prefixes = compat.static_prefixes(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._serve_async(request)
        return super().__call__(request)

    async def _serve_async(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if not compat.may_be_static(self, request.path_info, self.prefixes):
            return await get_response(request)
        response = await sync_to_async(compat.static_response, thread_sensitive=False)(self, request)
        if response is None:
            return await get_response(request)
        if isinstance(response, FileResponse) and not response.is_async:
            response.streaming_content = _read_in_thread(iter(response.streaming_content))  # type: ignore[arg-type]
        return response


# Django's own middleware, without a thread hop per hook -----------------------------------------

ViewFunction = Callable[..., Any]


class EventLoopHooks(MiddlewareMixin):
    """For a Django middleware whose hooks do no I/O: under ASGI they run on the event loop.

    Django runs every hook of such a middleware in a thread when the request is async, two or
    three hops per middleware and request. Under load each hop waits for the thread and for the
    GIL, and a streaming answer's first token waits for all of them. A hook that does need the
    database (saving a session, reading a user) says so in `*_needs_thread` and still gets its
    thread.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(get_response) and hasattr(self, "process_view"):
            self._process_view_sync: Callable[..., HttpResponseBase | None] = self.process_view
            # Django awaits a coroutine function here instead of running the hook in a thread.
            self.__dict__["process_view"] = self._process_view_async

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def view_needs_thread(self, request: HttpRequest, view_func: ViewFunction) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def _process_view_async(
        self, request: HttpRequest, view_func: ViewFunction, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        hook = self._process_view_sync
        if self.view_needs_thread(request, view_func):
            return await sync_to_async(hook, thread_sensitive=True)(
                request, view_func, view_args, view_kwargs
            )
        return hook(request, view_func, view_args, view_kwargs)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response = cast("Callable[[HttpRequest], Awaitable[HttpResponseBase]]", self.get_response)
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
            else:
                response = self.process_request(request)
        response = response or await get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(EventLoopHooks, security.SecurityMiddleware):
    pass


class SessionMiddleware(EventLoopHooks, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(EventLoopHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(EventLoopHooks, csrf.CsrfViewMiddleware):
    # The token lives in a cookie; in the session it would need the database.
    def request_needs_thread(self, request: HttpRequest) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    def view_needs_thread(self, request: HttpRequest, view_func: ViewFunction) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)


class AuthenticationMiddleware(EventLoopHooks, auth.AuthenticationMiddleware):
    pass


class LoginRequiredMiddleware(EventLoopHooks, auth.LoginRequiredMiddleware):
    def process_view(
        self, request: HttpRequest, view_func: ViewFunction, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        # A view that signs its user in itself (with the rest of its database work) is let
        # through before anyone looks at the session.
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def view_needs_thread(self, request: HttpRequest, view_func: ViewFunction) -> bool:
        return getattr(view_func, "login_required", True) and not compat.user_loaded(request)


class MessageMiddleware(EventLoopHooks, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Messages kept in the session are read or written only when some were shown or added.
        return compat.messages_touched(request)


class XFrameOptionsMiddleware(EventLoopHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class CSPMiddleware(EventLoopHooks, csp_middleware.CSPMiddleware):
    pass


# Django's deploy checks for the middleware above --------------------------------------------------

# Django's checks that look for its own middleware by dotted path (and pass silently when they do
# not find it); settings.SILENCED_SYSTEM_CHECKS silences the three that would report it missing.
_MIDDLEWARE_CHECKS: list[Callable[..., Iterable[checks.CheckMessage]]] = [
    security_checks.check_security_middleware,
    security_checks.check_xframe_options_middleware,
    security_checks.check_sts,
    security_checks.check_sts_include_subdomains,
    security_checks.check_sts_preload,
    security_checks.check_content_type_nosniff,
    security_checks.check_ssl_redirect,
    security_checks.check_xframe_deny,
    security_checks.check_referrer_policy,
    security_checks.check_cross_origin_opener_policy,
    csrf_checks.check_csrf_middleware,
    csrf_checks.check_csrf_cookie_secure,
]
_DJANGO_MIDDLEWARE = {
    SecurityMiddleware: "django.middleware.security.SecurityMiddleware",
    CsrfViewMiddleware: "django.middleware.csrf.CsrfViewMiddleware",
    XFrameOptionsMiddleware: "django.middleware.clickjacking.XFrameOptionsMiddleware",
}


@checks.register(checks.Tags.security, deploy=True)
def check_middleware_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django's middleware deploy checks, run with each event-loop version above named as the
    Django middleware it extends. A missing one is reported under this project's id."""
    as_django = [_DJANGO_MIDDLEWARE.get(import_string(path), path) for path in settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=as_django):
        found = [message for check in _MIDDLEWARE_CHECKS for message in check(app_configs)]
    silenced = set(settings.SILENCED_SYSTEM_CHECKS)
    return [
        checks.CheckMessage(message.level, message.msg, hint=message.hint, id=f"portal.{message.id}")
        if message.id in silenced
        else message
        for message in found
    ]
