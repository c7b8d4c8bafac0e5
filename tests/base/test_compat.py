"""base/compat.py against the libraries installed: the versions it was written for, and every
private part it uses (or hook it relies on) still there and still behaving as it expects.

When one of these fails after an upgrade, read base/compat.py against the new version, fix what
changed, and then update `compat.WRITTEN_FOR`."""

import asyncio
import inspect
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import Group, Permission
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.forms import JSONField
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.module_loading import import_string
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from base import compat
from portal.runtime.cache import RedisCache, RedisCacheClient
from portal.runtime.middleware import StaticFilesMiddleware

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


# The versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", sorted(compat.WRITTEN_FOR))
def test_the_installed_version_is_the_one_compat_was_written_for(distribution):
    installed = metadata.version(distribution)

    assert installed == compat.WRITTEN_FOR[distribution], (
        f"{distribution} {installed} is installed; base/compat.py was written for "
        f"{compat.WRITTEN_FOR[distribution]}. Check its use of {distribution}'s internals against "
        f"{installed}, then update compat.WRITTEN_FOR."
    )


def test_pyproject_pins_the_versions_compat_was_written_for():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pinned = {}
    for requirement in dependencies:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(.+)", requirement).groups()
        pinned[name.lower()] = version

    for distribution, version in compat.WRITTEN_FOR.items():
        if distribution.lower() in pinned:  # aiohttp comes with openai[aiohttp], unpinned
            assert pinned[distribution.lower()] == version, distribution


# Hooks the project overrides ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(compat.OVERRIDDEN_HOOKS))
def test_every_overridden_hook_is_still_there_with_the_same_parameters(path):
    owner_path, name = path.rsplit(".", 1)
    owner = import_string(owner_path)

    assert name in vars(owner), f"{owner_path} no longer defines {name}"
    parameters = tuple(inspect.signature(vars(owner)[name]).parameters)
    assert parameters == compat.OVERRIDDEN_HOOKS[path]


# Django --------------------------------------------------------------------------------------------


def test_the_redis_cache_keeps_one_client_per_server():
    # Nothing connects until a command is sent.
    cache = RedisCache("redis://127.0.0.1:6379/14", {})
    client = cache._cache  # type: ignore[attr-defined]

    assert isinstance(client, RedisCacheClient)
    assert compat.redis_server(client, write=True)[0] == "redis://127.0.0.1:6379/14"
    made = compat.redis_client(client, write=True)
    assert made.connection_pool is client._get_connection_pool(True)  # type: ignore[attr-defined]
    assert client.get_client(write=True) is client.get_client(write=False)


def _request(path: str = "/") -> Any:
    request = RequestFactory().get(path)
    SessionMiddleware(lambda request: HttpResponse()).process_request(request)
    AuthenticationMiddleware(lambda request: HttpResponse()).process_request(request)
    MessageMiddleware(lambda request: HttpResponse()).process_request(request)
    return request


def test_a_request_tells_whether_its_user_was_loaded():
    request = _request()
    assert not compat.user_loaded(request)

    assert not request.user.is_authenticated  # loads the (anonymous) user

    assert compat.user_loaded(request)


def test_a_request_tells_whether_its_messages_were_touched():
    shown, added, untouched = _request(), _request(), _request()

    list(messages.get_messages(shown))
    messages.info(added, "Saved.")

    assert compat.messages_touched(shown)
    assert compat.messages_touched(added)
    assert not compat.messages_touched(untouched)


@pytest.mark.django_db
def test_an_admin_list_gives_the_values_of_its_query_string(platform_admin):
    request = RequestFactory().get("/admin/auth/group/", {"name__startswith": "Fin", "o": "1", "p": "1"})
    request.user = platform_admin
    platform_admin.is_superuser = True

    changelist = admin.site._registry[Group].get_changelist_instance(request)

    assert sorted(compat.changelist_filter_values(changelist)) == ["1", "Fin"]  # not the page


def test_invalid_json_is_shown_again_as_typed():
    typed = '{"a": NaN'

    assert JSONField().prepare_value(compat.invalid_json_input(typed)) == typed


def test_an_autocomplete_widget_gives_its_model_field():
    field = Permission._meta.get_field("content_type")

    assert compat.autocomplete_model_field(AutocompleteSelect(field, admin.site)) is field


# WhiteNoise ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("autorefresh", [True, False])
def test_whitenoise_finds_and_serves_a_static_file(settings, autorefresh):
    settings.WHITENOISE_AUTOREFRESH = autorefresh
    settings.WHITENOISE_USE_FINDERS = True
    middleware = StaticFilesMiddleware(lambda request: HttpResponse())
    prefixes = compat.static_prefixes(middleware)
    path = "/static/img/switchyard.svg"

    assert "/static/" in prefixes
    assert compat.may_be_static(middleware, path, prefixes)
    assert not compat.may_be_static(middleware, "/chat/", prefixes)
    response = compat.static_response(middleware, RequestFactory().get(path))
    assert response is not None
    assert response.status_code == 200
    assert compat.static_response(middleware, RequestFactory().get("/static/img/none.svg")) is None


# openai and aiohttp --------------------------------------------------------------------------------


class Events(httpx2.AsyncByteStream):
    async def __aiter__(self) -> Any:
        yield b"data: [DONE]\n\n"


def test_the_sdk_returns_the_raw_response_with_its_body_unread():
    async def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Events())

    async def go() -> Any:
        async with openai.AsyncOpenAI(
            api_key="key",
            base_url="http://azure.invalid/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
        ) as client:
            response = await client.post(
                "/chat/completions",
                body={"model": "gpt-4o-mini"},
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
                options=compat.unparsed_stream_options(),
            )
            assert isinstance(response, openai.AsyncAPIResponse)
            assert not response.http_response.is_closed
            return await response.http_response.aread()

    assert asyncio.run(go()) == b"data: [DONE]\n\n"


def test_the_sdk_aiohttp_transport_exposes_its_response_socket_and_unread_bytes():
    chunk = b"data: one\n\ndata: two\n\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One chunk of a chunked body, and the connection held open until the client closes it.
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        await reader.read()
        writer.close()

    async def go() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = compat.aiohttp_transport()
        try:
            request = httpx2.Request("GET", f"http://127.0.0.1:{port}/")
            response = await transport.handle_async_request(request)
            received = compat.aiohttp_response(response.stream)
            assert isinstance(received, aiohttp.ClientResponse)
            socket = compat.socket_transport(received)
            assert socket is not None
            assert socket.is_reading()
            for _ in range(100):  # the chunk arrives, and nobody reads it
                if compat.unread_bytes(received) == chunk:
                    break
                await asyncio.sleep(0.01)
            assert compat.unread_bytes(received) == chunk
            await response.aclose()
            assert compat.aiohttp_response(httpx2.ByteStream(b"")) is None
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_the_sdk_client_lends_its_http_client_and_makes_its_status_errors():
    async def answer(request: httpx2.Request) -> httpx2.Response:
        body = {"error": {"code": "429", "message": "Slow down."}}
        return httpx2.Response(429, headers={"retry-after": "3"}, json=body, request=request)

    async def go() -> openai.APIStatusError:
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(answer))
        async with openai.AsyncAzureOpenAI(
            api_key="key",
            azure_endpoint="http://azure.invalid",
            api_version="2025-04-01-preview",
            http_client=http_client,
        ) as client:
            lent = compat.sdk_http_client(client)
            response = await lent.send(httpx2.Request("POST", "http://azure.invalid/openai/x"))
            await response.aread()
            assert isinstance(lent, httpx2.AsyncClient)
            return compat.sdk_status_error(client, response)

    error = asyncio.run(go())

    assert isinstance(error, openai.RateLimitError)
    assert error.status_code == 429
    assert error.body == {"code": "429", "message": "Slow down."}
    assert error.response.headers["retry-after"] == "3"
