"""GET /metrics: Prometheus's series, for a scrape that brings the token (or, without one set, from
this machine only), served beside Django without a session; and the series a chat turn, a gateway
call, a provisioning run and the budgets make."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import openai
import pytest
import requests
from asgiref.sync import async_to_sync
from openai.types.chat import ChatCompletionMessageParam

from portal import metrics
from provisioning.models import Fallback
from tests.chat.conftest import ChatClient, provisioned
from tests.chat.test_streaming import start
from tests.factories import make_spend, make_user
from tests.gateway.conftest import openai_client
from tests.observability.conftest import value
from tests.servers import http_scope

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


# Who may read it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token", "Basic bWV0cmljczp4", "Bearer"])
def test_without_the_right_token_a_scrape_is_401(gateway, metrics_token, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = requests.get(f"{gateway}/metrics", headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "METRICS_TOKEN" in response.text
    assert "switchyard_" not in response.text


def test_with_the_token_a_scrape_gets_the_series_without_a_session(gateway, metrics_token):
    response = requests.get(
        f"{gateway}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "switchyard_queue_depth" in response.text
    assert "Set-Cookie" not in response.headers  # no session, no CSRF cookie


def test_only_get_is_answered(gateway, metrics_token):
    response = requests.post(
        f"{gateway}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
    )

    assert response.status_code == 405


def test_without_a_token_set_only_this_machine_may_scrape(gateway, settings):
    settings.METRICS_TOKEN = ""

    assert requests.get(f"{gateway}/metrics", timeout=10).status_code == 200
    # Relayed by a proxy on this machine: the caller is elsewhere.
    relayed = requests.get(f"{gateway}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert relayed.status_code == 401


def test_without_a_token_set_another_machine_is_refused(settings, transactional_db):
    settings.METRICS_TOKEN = ""
    scope = {**http_scope("GET", "/metrics"), "client": ("10.20.30.40", 51000)}
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    async_to_sync(metrics.application)(scope, receive, send)

    assert sent[0]["status"] == 401


# What it tells -----------------------------------------------------------------------------------


def test_a_gateway_call_and_a_chat_turn_show_in_the_series(
    scrape, gateway, marketing_key, assistant, marketing
):
    before = scrape()

    openai_client(gateway, marketing_key).chat.completions.create(
        model="company-assistant", messages=QUESTION
    )
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))
    assert browser.stream(start(browser, assistant)["stream_url"], {"content": "Hello"}).names[-1] == "done"
    after = scrape()

    for source in ("api", "chat"):
        labels = {"deployment": "company-assistant", "source": source}
        for name in ("switchyard_time_to_first_token_seconds_count", "switchyard_answer_seconds_count"):
            assert value(after, name, **labels) == value(before, name, **labels) + 1, (name, source)
        assert value(after, "switchyard_calls_total", **labels, outcome="answered") == (
            value(before, "switchyard_calls_total", **labels, outcome="answered") + 1
        )
        assert value(after, "switchyard_tokens_total", **labels, kind="output") > value(
            before, "switchyard_tokens_total", **labels, kind="output"
        )
    # The histogram's buckets are calls.latency's, in seconds.
    assert (
        "switchyard_time_to_first_token_seconds_bucket",
        frozenset({"deployment": "company-assistant", "source": "api", "le": "0.005"}.items()),
    ) in after


def test_errors_429s_and_failovers_show_in_the_series(
    scrape, gateway, marketing_key, assistant, zone, marketing, gateway_emulator
):
    spare = provisioned(
        marketing, zone, display_name="Company assistant spare", name="company-assistant-spare", capacity=200
    )
    Fallback.objects.create(deployment=assistant, fallback=spare, position=1)
    client = openai_client(gateway, marketing_key)
    before = scrape()

    gateway_emulator.inject(operation="chat", kind="429", deployment="company-assistant", count=1)
    client.chat.completions.create(model="company-assistant", messages=QUESTION)
    gateway_emulator.inject(operation="chat", kind="500", count=1)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="company-assistant", messages=QUESTION)
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    api = {"source": "api"}
    failover = {"from_deployment": "company-assistant", "to_deployment": "company-assistant-spare"}
    assert grew("switchyard_failovers_total", **failover, **api) == 1
    assert grew("switchyard_azure_throttled_total", deployment="company-assistant", **api) == 1
    assert grew("switchyard_upstream_errors_total", deployment="company-assistant", status="500", **api) == 1
    # The failed-over call counts as answered by the deployment that served it.
    assert (
        grew("switchyard_calls_total", deployment="company-assistant-spare", outcome="answered", **api) == 1
    )


def test_refusals_at_admission_and_the_budget_used_show_in_the_series(
    scrape, gateway, marketing_key, assistant, marketing
):
    marketing.monthly_budget = Decimal("0.01")
    marketing.save(update_fields=["monthly_budget"])
    make_spend(marketing, assistant, Decimal("0.01"))
    before = scrape()

    with pytest.raises(openai.RateLimitError):
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION
        )
    after = scrape()

    labels = {"deployment": "company-assistant", "source": "api", "reason": "department"}
    assert value(after, "switchyard_admission_refusals_total", **labels) == (
        value(before, "switchyard_admission_refusals_total", **labels) + 1
    )
    assert value(after, "switchyard_budget_utilisation_ratio", department="marketing") == pytest.approx(1.0)
    assert value(after, "switchyard_budget_spent_usd", department="marketing") == pytest.approx(0.01)
    assert value(after, "switchyard_budget_usd", department="marketing") == pytest.approx(0.01)


def test_a_provisioning_run_shows_its_outcome_and_duration(scrape, gateway_emulator, zone, marketing):
    before = scrape()

    provisioned(marketing, zone, display_name="Campaign writer", name="campaign-writer", capacity=10)

    after = scrape()
    labels = {"kind": "provisioning", "outcome": "succeeded"}
    assert value(after, "switchyard_provisioning_runs_total", **labels) == (
        value(before, "switchyard_provisioning_runs_total", **labels) + 1
    )
    assert value(after, "switchyard_provisioning_run_seconds_count", **labels) == (
        value(before, "switchyard_provisioning_run_seconds_count", **labels) + 1
    )


def test_the_queue_depth_is_read_at_scrape(scrape, broker):
    from provisioning.tasks import check_drift_task

    before = value(scrape(), "switchyard_queue_depth", queue="celery")
    check_drift_task.apply_async()  # nobody consumes it in this test
    check_drift_task.apply_async()

    assert value(scrape(), "switchyard_queue_depth", queue="celery") == before + 2
