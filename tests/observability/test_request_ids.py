"""One id per request (or Celery task): in the JSON log lines, in the answer's X-Request-ID, and in
`x-ms-client-request-id` on every call to Azure it makes, data plane (the chat, the gateway) and
ARM (provisioning) alike."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from openai.types.chat import ChatCompletionMessageParam

from audit.context import origin
from portal.logs import JsonFormatter
from provisioning.models import ModelDeployment
from provisioning.tasks import catalog_sync_task
from tests.chat.conftest import provision
from tests.factories import make_deployment, make_user
from tests.gateway.conftest import openai_client
from tests.observability.test_metrics_multiprocess import chat_turn
from tests.portal.test_logging import PROJECT, procfile_command
from tests.servers import free_port

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


@pytest.fixture(autouse=True)
def _azure_forgets_earlier_ids(emulator_server):
    requests.delete(f"{emulator_server.control_url}/client-request-ids", timeout=10)


def client_request_ids(emulator) -> list[dict[str, str]]:
    """What the emulator (as Azure) was sent in `x-ms-client-request-id`, oldest first."""
    return list(requests.get(f"{emulator.control_url}/client-request-ids", timeout=10).json()["requests"])


def ids_sent_to(emulator, path_part: str) -> list[str]:
    return [each["id"] for each in client_request_ids(emulator) if path_part in each["path"]]


# Azure hears the id ------------------------------------------------------------------------------


def test_a_gateway_call_sends_its_request_id_to_azure_and_names_it_in_the_answer(
    gateway, marketing_key, assistant, gateway_emulator
):
    client = openai_client(gateway, marketing_key, default_headers={"X-Request-ID": "shop-checkout-0042"})

    answer = client.chat.completions.with_raw_response.create(model="company-assistant", messages=QUESTION)

    assert answer.headers["x-request-id"] == "shop-checkout-0042"
    assert ids_sent_to(gateway_emulator, "/chat/completions") == ["shop-checkout-0042"]


def test_a_gateway_call_without_an_id_gets_one_and_a_hostile_id_is_replaced(
    gateway, marketing_key, assistant, gateway_emulator
):
    plain = openai_client(gateway, marketing_key).chat.completions.with_raw_response.create(
        model="company-assistant", messages=QUESTION
    )
    hostile = openai_client(
        gateway, marketing_key, default_headers={"X-Request-ID": "x" * 65}
    ).chat.completions.with_raw_response.create(model="company-assistant", messages=QUESTION)

    given = [plain.headers["x-request-id"], hostile.headers["x-request-id"]]
    assert all(len(each) == 32 for each in given)
    assert ids_sent_to(gateway_emulator, "/chat/completions") == given


def test_a_chat_turn_sends_its_request_id_to_azure(gateway, assistant, marketing, gateway_emulator):
    person = make_user(email="mark@example.com", department=marketing)

    events = chat_turn(gateway, person, assistant, headers={"X-Request-ID": "turn-7f3a"})

    assert events[-1][0] == "done", events
    assert ids_sent_to(gateway_emulator, "/chat/completions") == ["turn-7f3a"]


def test_provisioning_sends_the_request_or_task_id_to_arm(gateway_emulator, zone, marketing):
    deployment = make_deployment(
        department=marketing, landing_zone=zone, state=ModelDeployment.State.REQUESTED
    )

    with origin(request_id="approval-91"):
        provision(deployment)
    catalog_sync_task.apply(task_id="catalog-sync-5")

    arm = [
        each for each in client_request_ids(gateway_emulator) if each["path"].startswith("/subscriptions/")
    ]
    puts = [each["id"] for each in arm if each["method"] == "PUT"]
    assert puts
    assert set(puts) == {"approval-91"}
    assert "catalog-sync-5" in {each["id"] for each in arm if each["method"] == "GET"}


# The log -----------------------------------------------------------------------------------------


def test_a_json_line_has_time_level_logger_message_request_id_extras_and_the_traceback():
    record = logging.LogRecord(
        "calls.observe", logging.ERROR, __file__, 1, "Could not write %d rows", (3,), None
    )
    record.deployment = "company-assistant"
    try:
        raise RuntimeError("the database went away")
    except RuntimeError:
        record.exc_info = sys.exc_info()

    with origin(request_id="job-1234"):
        line = json.loads(JsonFormatter().format(record))

    assert line["level"] == "ERROR"
    assert line["logger"] == "calls.observe"
    assert line["message"] == "Could not write 3 rows"
    assert line["request_id"] == "job-1234"
    assert line["deployment"] == "company-assistant"
    assert "RuntimeError: the database went away" in line["exception"]
    assert line["time"].endswith("+00:00")


def test_the_web_process_logs_json_lines_that_name_the_request(tmp_path):
    port = free_port()
    environment = {
        **os.environ,
        "WEB_PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        web = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {procfile_command('web')}"],
            cwd=PROJECT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{port}/no-such-page/",
                    headers={"X-Request-ID": "support-case-77"},
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                assert web.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the web process did not start"
                time.sleep(0.2)
    finally:
        web.terminate()
        web.wait(timeout=15)

    assert response.headers["X-Request-ID"] == "support-case-77"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (not_found,) = [line for line in lines if line["message"] == "Not Found: /no-such-page/"]
    assert not_found["level"] == "WARNING"
    assert not_found["logger"] == "django.request"
    assert not_found["request_id"] == "support-case-77"
    assert not_found["status_code"] == 404
