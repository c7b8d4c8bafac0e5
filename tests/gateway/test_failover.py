"""Failover with the emulator's faults: a 429 or 503 before the first byte sends the call to the
deployment's fallback (each attempt recorded, the cost on the fallback), in the gateway and in the
chat alike; nothing fails over once bytes went out, and the chat's calls and the gateway's share
the Azure deployment's rate limit."""

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from money.models import Reservation, UsageRecord
from provisioning.models import Fallback, ModelDeployment
from tests.chat.conftest import ChatClient, provisioned
from tests.chat.test_streaming import start
from tests.gateway.conftest import azure_client, openai_client, records, wait_for

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


@pytest.fixture
def spare(assistant, zone, marketing) -> ModelDeployment:
    """The assistant's fallback: the same model, another deployment."""
    fallback = provisioned(
        marketing, zone, display_name="Company assistant spare", name="company-assistant-spare", capacity=200
    )
    Fallback.objects.create(deployment=assistant, fallback=fallback, position=1)
    return fallback


@pytest.mark.parametrize("status", ["429", "503"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_before_the_first_byte_is_served_by_the_fallback(
    gateway, marketing_key, assistant, spare, gateway_emulator, status, stream
):
    gateway_emulator.inject(operation="chat", kind=status, deployment="company-assistant")
    client = openai_client(gateway, marketing_key)

    if stream:
        chunks = client.chat.completions.create(model="company-assistant", messages=QUESTION, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    else:
        answer = client.chat.completions.create(model="company-assistant", messages=QUESTION)
        assert answer.choices[0].message.content
    (record,) = records()
    assert record.deployment == spare
    assert [(attempt["deployment"], attempt["status"]) for attempt in record.attempts] == [
        (assistant.pk, int(status))
    ]
    assert record.cost > 0


def test_a_server_error_is_not_failed_over_and_is_a_502(gateway, marketing_key, spare, gateway_emulator):
    gateway_emulator.inject(operation="chat", kind="500", deployment="company-assistant")

    with pytest.raises(openai.InternalServerError) as failed:
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION
        )

    assert failed.value.status_code == 502
    assert "Azure error 500" in failed.value.message
    wait_for(lambda: not Reservation.objects.exists())
    assert not UsageRecord.objects.exists()


def test_when_every_deployment_refuses_the_caller_hears_azures_429_with_its_wait(
    gateway, marketing_key, spare, gateway_emulator
):
    gateway_emulator.inject(operation="chat", kind="429", retry_after_seconds=7)

    with pytest.raises(openai.RateLimitError) as refused:
        azure_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION
        )

    assert refused.value.response.headers["retry-after"] == "7"
    assert "exceeded token rate limit" in refused.value.message
    wait_for(lambda: not Reservation.objects.exists())
    assert not UsageRecord.objects.exists()


def test_a_stream_that_breaks_after_the_first_byte_is_not_failed_over(
    gateway, marketing_key, assistant, spare, gateway_emulator
):
    gateway_emulator.inject(
        operation="chat", kind="drop_stream", after_chunks=3, deployment="company-assistant"
    )
    client = openai_client(gateway, marketing_key)
    received: list[str] = []

    def read_all() -> None:
        stream = client.chat.completions.create(model="company-assistant", messages=QUESTION, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError):
        read_all()

    assert received
    (record,) = records()
    assert record.deployment == assistant
    assert record.attempts == []
    assert record.estimated
    assert record.output_tokens == len(received)


def test_the_chat_fails_over_too_and_records_the_attempt(
    assistant, spare, gateway_emulator, marketing, transactional_db
):
    from tests.factories import make_user

    mark = make_user(email="mark@example.com", department=marketing)
    gateway_emulator.inject(operation="chat", kind="429", deployment="company-assistant")
    browser = ChatClient(mark)

    reply = browser.stream(start(browser, assistant)["stream_url"], {"content": "Write a tagline"})

    assert reply.names[-1] == "done", reply.events
    (record,) = records()
    assert record.source == UsageRecord.Source.CHAT
    assert record.deployment == spare
    assert [attempt["status"] for attempt in record.attempts] == [429]


def test_the_chat_and_the_gateway_share_the_azure_deployments_rate_limit(
    gateway, gateway_emulator, zone, marketing, settings
):
    from tests.factories import make_user
    from tests.gateway.conftest import make_key

    # 6K tokens a minute on Azure: two chat answers of up to 2,900 tokens take nearly all of it.
    small = provisioned(marketing, zone, display_name="Small assistant", name="small-assistant", capacity=6)
    raw, _key = make_key(marketing, [small])
    settings.CHAT_MAX_ANSWER_TOKENS = 2_900
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))
    for _ in range(2):
        assert browser.stream(start(browser, small)["stream_url"], {"content": "Hello"}).names[-1] == "done"

    with pytest.raises(openai.RateLimitError) as refused:
        openai_client(gateway, raw).chat.completions.create(
            model="small-assistant", messages=QUESTION, max_tokens=2_900
        )

    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert "exceeded token rate limit" in refused.value.message
