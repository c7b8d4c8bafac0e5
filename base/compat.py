"""Every place where Switchyard reaches into another library's private parts, and nowhere else.

The hot path (portal/runtime, calls/transport.py) and the admin's input checks (portal/admin_site.py)
rely on internals of Django, WhiteNoise, the openai SDK and aiohttp: names with a leading
underscore, modules the library keeps to itself, attributes and hooks it does not document. Each
such use is one small function here, named for what the caller wants, so a library upgrade has one
file to read. tests/base/test_compat.py fails when an installed version differs from
`WRITTEN_FOR` or when an internal used here, or a hook in `OVERRIDDEN_HOOKS`, has changed shape:
check this module against the new version, then update `WRITTEN_FOR`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteMixin
from django.core.cache.backends import redis as django_redis
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponseBase

if TYPE_CHECKING:
    import aiohttp
    import httpx2
    import openai
    from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]

# The distributions (as pip names them) whose internals this module uses, at the versions it was
# checked against. pyproject.toml pins the same versions (aiohttp comes with openai[aiohttp]).
WRITTEN_FOR = {
    "Django": "5.2.19",
    "whitenoise": "6.12.0",
    "openai": "3.57.0",
    "aiohttp": "3.14.5",
}

# Undocumented methods that classes of this project override, relying on the library to call them
# (and calling them with super()): where they are and the parameters they take.
OVERRIDDEN_HOOKS = {
    # portal/runtime/middleware.py: Django's middleware, with hooks on the event loop.
    "django.utils.deprecation.MiddlewareMixin.__acall__": ("self", "request"),
    # portal/runtime/cache.py: one Redis client per process.
    "django.core.cache.backends.redis.RedisCacheClient.get_client": ("self", "key", "write"),
    # portal/admin_site.py: hostile input refused with a message.
    "django.contrib.admin.views.main.ChangeList.get_filters": ("self", "request"),
    "django.contrib.admin.views.main.ChangeList.get_results": ("self", "request"),
    "django.contrib.admin.widgets.AutocompleteMixin.optgroups": ("self", "name", "value", "attr"),
    "django.contrib.admin.options.BaseModelAdmin.formfield_for_dbfield": (
        "self",
        "db_field",
        "request",
        "kwargs",
    ),
}


# Django: the Redis cache -------------------------------------------------------------------------


def redis_cache_use_client(cache: django_redis.RedisCache, client_class: type[Any]) -> None:
    """Make `cache` build its client from `client_class` (a subclass of Django's)."""
    cache._class = client_class  # type: ignore[attr-defined]


def redis_server(client: django_redis.RedisCacheClient, *, write: bool) -> tuple[str, str]:
    """The Redis server a call goes to (its URL) and the connection options, as a key."""
    index = client._get_connection_pool_index(write)  # type: ignore[attr-defined]
    return client._servers[index], repr(sorted(client._pool_options.items()))  # type: ignore[attr-defined]


def redis_client(client: django_redis.RedisCacheClient, *, write: bool) -> Any:
    """A new `redis.Redis` on the connection pool Django keeps for that server."""
    pool = client._get_connection_pool(write)  # type: ignore[attr-defined]
    return client._client(connection_pool=pool)  # type: ignore[attr-defined]


# Django: what a request's middleware has loaded --------------------------------------------------


def user_loaded(request: HttpRequest) -> bool:
    """Whether the authentication middleware's lazy `request.user` has been read already."""
    return hasattr(request, "_cached_user")


def messages_touched(request: HttpRequest) -> bool:
    """Whether the request's flash messages were read or added to (else nothing is stored)."""
    storage = getattr(request, "_messages", None)
    return storage is not None and bool(storage.used or storage.added_new)


# Django: the admin -------------------------------------------------------------------------------


def changelist_filter_values(changelist: ChangeList) -> list[str]:
    """Every value in the list's query string (filters, search, ordering) but the page number."""
    return [value for values in changelist.filter_params.values() for value in values]


def invalid_json_input(data: str) -> str:
    """Text that a JSON form field shows again as typed, next to its error."""
    return InvalidJSONInput(data)


def autocomplete_model_field(widget: AutocompleteMixin) -> Any:
    """The model field an admin autocomplete widget chooses for."""
    return widget.field


# WhiteNoise --------------------------------------------------------------------------------------


def static_prefixes(middleware: WhiteNoiseMiddleware) -> tuple[str, ...]:
    """The URL prefixes WhiteNoise serves files under."""
    return tuple({middleware.static_prefix, *(prefix for _, prefix in middleware.directories)})


def may_be_static(middleware: WhiteNoiseMiddleware, path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether WhiteNoise might have a file at `path` (without a look at the disk)."""
    if middleware.autorefresh:
        return path.startswith(prefixes)
    return path in middleware.files


def static_response(middleware: WhiteNoiseMiddleware, request: HttpRequest) -> HttpResponseBase | None:
    """WhiteNoise's response for the request's file, or None when it has no such file."""
    path = request.path_info
    static_file = middleware.find_file(path) if middleware.autorefresh else middleware.files.get(path)
    if static_file is None:
        return None
    response: HttpResponseBase = middleware.serve(static_file, request)
    return response


# openai and aiohttp ------------------------------------------------------------------------------
# The SDK is imported when a function below is first called, not with this module: the admin site
# imports this module in every process, and workers and commands never stream an answer.


def unparsed_stream_options() -> openai.RequestOptions:
    """Request options that make the SDK's `post` return the raw response, its body unread (what
    `with_streaming_response` asks for)."""
    from openai._constants import RAW_RESPONSE_HEADER

    return {"headers": {RAW_RESPONSE_HEADER: "stream"}}


def aiohttp_transport(**options: Any) -> httpx2.AsyncBaseTransport:
    """The SDK's aiohttp transport (what `openai.DefaultAioHttpClient` uses), made with `options`."""
    from openai._vendor.httpx_aiohttp.transport import AiohttpTransport

    return AiohttpTransport(**options)


def aiohttp_response(body: object) -> aiohttp.ClientResponse | None:
    """The aiohttp response under a body from `aiohttp_transport`, or None for any other body."""
    from openai._vendor.httpx_aiohttp.transport import AiohttpResponseStream

    if isinstance(body, AiohttpResponseStream):
        response: aiohttp.ClientResponse = body._aiohttp_response
        return response
    return None


def unread_bytes(response: aiohttp.ClientResponse) -> bytes:
    """What aiohttp received for the response and nobody read, which it keeps in its reader's
    buffer (and no longer returns once the connection has failed). Nothing, rather than an error,
    if aiohttp keeps it elsewhere: this runs while a broken stream's error is being raised."""
    content = response.content
    return b"".join(getattr(content, "_buffer", ()))[getattr(content, "_buffer_offset", 0) :]


def socket_transport(response: aiohttp.ClientResponse) -> asyncio.Transport | None:
    """The socket's transport while the response holds its connection (None once it went back to
    the pool); pausing its reading leaves what arrives in the kernel until the next read."""
    connection = response.connection
    return connection.transport if connection is not None else None


def sdk_http_client(client: openai.AsyncOpenAI) -> httpx2.AsyncClient:
    """The SDK client's own HTTP client (its connection pool and transport), to send a request
    built without the SDK's per-request machinery."""
    http_client: httpx2.AsyncClient = client._client
    return http_client


def sdk_status_error(client: openai.AsyncOpenAI, response: httpx2.Response) -> openai.APIStatusError:
    """The error the SDK raises for a response with an error status (its body read), with the
    same class for each status (`RateLimitError` for 429...) and Azure's error body in it."""
    return client._make_status_error_from_response(response)
