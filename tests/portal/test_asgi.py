"""The ASGI application the servers run (`portal.asgi`): requests start without a trip to a
thread, and still leave no database connection behind; a server that stops closes its
connections."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_started
from django.db import close_old_connections, connections

from calls import transport
from portal.asgi import application
from tests.servers import http_scope


def serve(path: str) -> int:
    """One GET through the ASGI application; returns the response's status."""
    scope = http_scope("GET", path)
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def go() -> None:
        answered = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await answered.wait()  # then the client goes away, as a browser does
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            sent.append(dict(message))
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        # Django's test client connects `close_old_connections` to request_started again around
        # its own requests; a server process has no test client.
        request_started.disconnect(close_old_connections)
        await application(scope, receive, send)

    async_to_sync(go)()
    status: int = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status


def _open_connections() -> list[str]:
    return [alias for alias in connections if connections[alias].connection is not None]


@pytest.mark.django_db(transaction=True)
def test_a_request_that_read_the_database_leaves_its_connection_closed(emulator):
    assert serve("/healthz") in (200, 503)  # it reads the database either way

    # The thread that served the request waits for the next one; its connection was closed when
    # the request ended, as Django does between requests.
    thread = application.idle[-1]
    assert thread.submit(_open_connections).result() == []


def test_requests_start_without_a_trip_to_a_thread():
    # In a server's process: this one's test client reconnects Django's receiver.
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import portal.asgi; from django.core.signals import request_started; "
            "print(len(request_started._live_receivers(None)[0]))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
    )
    # A synchronous receiver would send every request to a thread before anything else.
    assert started.stdout.strip() == "0"


def test_a_server_that_stops_closes_its_connections_to_azure_openai():
    sent: list[str] = []

    async def go() -> Any:
        client = transport.openai_client("https://marketing-copy.openai.azure.com/")
        messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: Mapping[str, Any]) -> None:
            sent.append(message["type"])

        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        return client

    client = async_to_sync(go)()

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert client.is_closed()
