"""/metrics under gunicorn with two uvicorn workers, as docker-compose runs the web: whichever
worker answers a scrape, it tells every worker's calls (prometheus-client's multiprocess mode,
PROMETHEUS_MULTIPROC_DIR), the chat's and the gateway's."""

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse
from openai.types.chat import ChatCompletionMessageParam

from tests.chat.conftest import parse_events
from tests.factories import make_user
from tests.observability.conftest import METRICS_TOKEN, samples, value
from tests.servers import free_port
from tests.workers import database_url

PROJECT = Path(__file__).resolve().parent.parent.parent
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]
GATEWAY_CALLS = 4


@pytest.fixture
def two_workers(tmp_path, gateway_emulator, broker):
    """gunicorn with two uvicorn workers on the test database, the emulator and the test's broker."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    environment = {
        **os.environ,
        **broker,
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "AZURE_MODE": "emulator",
        "AZURE_EMULATOR_URL": gateway_emulator.url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "portal.asgi:application",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=PROJECT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Both workers up, so that calls and scrapes may go to either.
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def chat_turn(
    url: str, user, deployment, *, headers: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """A signed-in person's chat turn over HTTP: start a conversation, stream the answer."""
    signed_in = Client()
    signed_in.force_login(user)
    csrf = secrets.token_hex(16)
    session = requests.Session()
    session.cookies.set(settings.SESSION_COOKIE_NAME, signed_in.cookies[settings.SESSION_COOKIE_NAME].value)
    session.cookies.set(settings.CSRF_COOKIE_NAME, csrf)
    headers = {**(headers or {}), "X-CSRFToken": csrf}
    started = session.post(
        url + reverse("chat:start"), data={"deployment": deployment.pk}, headers=headers, timeout=30
    )
    assert started.status_code == 201, started.text
    answer = session.post(
        url + started.json()["stream_url"], data={"content": "Hello"}, headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return parse_events(answer.content)


def test_every_worker_answers_a_scrape_with_every_workers_calls(
    two_workers, marketing_key, assistant, marketing
):
    for _ in range(GATEWAY_CALLS):
        # A client (and so a connection) each: the calls spread over the workers.
        with openai.OpenAI(
            base_url=f"{two_workers}/openai/v1", api_key=marketing_key, max_retries=0
        ) as client:
            client.chat.completions.create(model="company-assistant", messages=QUESTION)
    events = chat_turn(two_workers, make_user(email="mark@example.com", department=marketing), assistant)
    assert events[-1][0] == "done", events

    first_token = "switchyard_time_to_first_token_seconds_count"
    deadline = time.monotonic() + 15
    for _ in range(8):  # new connections: each scrape may reach either worker
        while True:
            response = requests.get(
                f"{two_workers}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
            )
            assert response.status_code == 200, response.text
            scraped = samples(response.text)
            api = value(scraped, first_token, deployment="company-assistant", source="api")
            chat = value(scraped, first_token, deployment="company-assistant", source="chat")
            # A settlement follows its answer by a moment.
            if (api, chat) == (GATEWAY_CALLS, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (api, chat) == (GATEWAY_CALLS, 1)
        assert (
            value(
                scraped,
                "switchyard_calls_total",
                deployment="company-assistant",
                source="api",
                outcome="answered",
            )
            == GATEWAY_CALLS
        )
