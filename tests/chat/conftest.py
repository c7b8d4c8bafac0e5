"""Chat fixtures: a deployment provisioned on the emulator the portal's way (provisioning
services, keyless account, the portal's data role), people in Marketing and Finance, and clients
that read the chat's server-sent events. The chat's database work runs on its database thread, as
in a web process."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections
from django.test import AsyncClient, Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils.crypto import get_random_string

from calls import database, transport
from chat import streaming
from org.models import Department, Membership, User
from provisioning import services as provisioning
from provisioning.models import LandingZone, ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION, drive_run
from tests.factories import make_deployment, make_landing_zone, make_user
from tests.servers import http_scope

T = TypeVar("T")


def in_event_loop(go: Callable[[], Awaitable[T]]) -> T:
    """Run `go` in an event loop of its own, as the server runs a request, and close the chat's
    clients for Azure OpenAI when it is done (they belong to that loop, which ends with it)."""

    async def run() -> T:
        try:
            return await go()
        finally:
            await transport.close_clients()

    return async_to_sync(run)()


def streamed(turn: Any) -> "streaming.AnswerStream":
    """A prepared turn's answer read to its end, as the streaming view reads it."""
    stream = streaming.AnswerStream(turn)

    async def go() -> streaming.AnswerStream:
        async for _event in stream.events():
            pass
        return stream

    return in_event_loop(go)


def provisioned(department: Department, zone: LandingZone, **spec: Any) -> ModelDeployment:
    """A dedicated deployment of the department's, provisioned on the emulator like any other."""
    deployment = make_deployment(
        department=department, landing_zone=zone, state=ModelDeployment.State.REQUESTED, **spec
    )
    return provision(deployment)


def provision(deployment: ModelDeployment, *, limit_seconds: float = 60) -> ModelDeployment:
    """Request provisioning and drive the run as the Celery task would, until it is done."""
    provisioning.deployment_request_provisioning(deployment=deployment)
    finished: ModelDeployment = drive_run(deployment.pk, limit_seconds=limit_seconds)
    return finished


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # The per-user counters live in the cache, which outlives a test's database transaction.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _database_thread_sees_the_test_data(db):
    """The chat's database thread runs the chat's database work, as in a web process. A test that
    keeps its data in a transaction (`db`) lends the thread its connection, on which that data is
    visible, as Django's LiveServerThread borrows a test's connections for its server. A test on
    committed data (`transactional_db`) leaves the thread its own connection, as in production,
    and the thread closes it before the test's database is flushed."""
    lent = {connection.alias: connection for connection in connections.all() if connection.in_atomic_block}
    if not lent:
        yield
        async_to_sync(database.close_connection)()
        return
    for connection in lent.values():
        connection.inc_thread_sharing()
    async_to_sync(database.use_connections)(lent)
    try:
        yield
    finally:
        async_to_sync(database.use_connections)({})
        for connection in lent.values():
            connection.dec_thread_sharing()


@pytest.fixture
def lena(marketing: Department) -> User:
    lead = make_user(
        email="lena@example.com", first_name="Lena", department=marketing, role=Membership.Role.LEAD
    )
    lead.last_name = "Lindqvist"
    lead.save(update_fields=["last_name"])
    return lead


@pytest.fixture
def mark(marketing: Department) -> User:
    return make_user(email="mark@example.com", first_name="Mark", department=marketing)


@pytest.fixture
def fred(finance: Department) -> User:
    return make_user(email="fred@example.com", first_name="Fred", department=finance)


@pytest.fixture
def zone(db) -> LandingZone:
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-central-ai"
    )


@pytest.fixture
def chat_emulator(emulator, settings):
    # Provisioning without waits: the run is the portal's, only the clock is faster.
    emulator.configure(lro_delay_seconds=0)
    settings.PROVISIONING_POLL_SECONDS = 0.01
    return emulator


@pytest.fixture
def copywriter(chat_emulator, zone, marketing, lena) -> ModelDeployment:
    """Marketing's dedicated gpt-4o-mini, provisioned on the emulator through the services."""
    return provisioned(
        marketing,
        zone,
        display_name="Marketing copy assistant",
        name="marketing-copy",
        system_prompt="You write crisp marketing copy.",
    )


@dataclass
class Reply:
    """A response from the chat, with its server-sent events parsed when it streamed."""

    status: int
    headers: dict[str, str]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    json: dict[str, Any] | None = None

    def of(self, name: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.of(name)
        assert len(found) == 1, self.events
        return found[0]

    @property
    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    @property
    def text(self) -> str:
        return "".join(data["text"] for data in self.of("delta"))


def parse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", ""
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data += value
        events.append((name, json.loads(data)))
    return events


class ChatClient:
    """A signed-in browser: the sync test client for pages, an async one (same cookies, so the
    same session) for the streaming views."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.client = Client()
        self.client.force_login(user)
        self.async_client = AsyncClient()
        self.async_client.cookies = self.client.cookies

    def get(self, url: str, **kwargs: Any):
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any):
        return self.client.post(url, data or {}, **kwargs)

    def stream(self, url: str, data: dict[str, Any] | None = None) -> Reply:
        """POST and read the whole event stream."""
        return in_event_loop(lambda: self._stream(url, data))

    def stream_many(self, url: str, datas: list[dict[str, Any]]) -> list[Reply]:
        """Several POSTs at once (tabs, or a script), each read to its end."""

        async def go() -> list[Reply]:
            return list(await asyncio.gather(*(self._stream(url, data) for data in datas)))

        return in_event_loop(go)

    async def _stream(self, url: str, data: dict[str, Any] | None) -> Reply:
        response = await self.async_client.post(url, data or {})
        headers = {key.lower(): value for key, value in response.items()}
        if not response.streaming:
            return Reply(response.status_code, headers, json=json.loads(response.content or b"{}"))
        body = b"".join([chunk async for chunk in response.streaming_content])  # type: ignore[attr-defined]
        return Reply(response.status_code, headers, events=parse_events(body))

    def stream_and_leave(self, url: str, data: dict[str, Any], *, after_deltas: int) -> Reply:
        """What a browser does when the person presses stop: it goes away mid-answer. Runs the
        portal's ASGI application itself, which (unlike the test client) listens for the
        disconnect and cancels the view, as under uvicorn."""
        csrf_token = get_random_string(32)
        body = encode_multipart(BOUNDARY, data)
        cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in self.client.cookies.items())
        scope = http_scope(
            "POST",
            url,
            [
                (b"content-type", MULTIPART_CONTENT.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cookie", f"{cookies}; csrftoken={csrf_token}".encode()),
                (b"x-csrftoken", csrf_token.encode()),
            ],
        )

        async def go() -> Reply:
            left = asyncio.Event()
            received: list[bytes] = []
            status = 0
            request_sent = False

            async def receive() -> dict[str, Any]:
                nonlocal request_sent
                if not request_sent:
                    request_sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await left.wait()
                return {"type": "http.disconnect"}

            async def send(message: Mapping[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif not left.is_set():
                    received.append(message.get("body", b""))
                    if b"".join(received).count(b"event: delta") >= after_deltas:
                        left.set()

            # As the test client does: the request must not close the test's database connection.
            request_started.disconnect(close_old_connections)
            request_finished.disconnect(close_old_connections)
            try:
                await ASGIHandler()(scope, receive, send)
            finally:
                request_started.connect(close_old_connections)
                request_finished.connect(close_old_connections)
            return Reply(status, {}, events=parse_events(b"".join(received)))

        return in_event_loop(go)


@pytest.fixture
def browser_for() -> Callable[[User], ChatClient]:
    return ChatClient
