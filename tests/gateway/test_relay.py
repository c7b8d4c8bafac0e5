"""Who may call the gateway and what it answers to bad calls: the key ladder, bodies that are not
JSON or too large, limits of the model, an abandoned stream, embeddings; every refusal is OpenAI's
JSON error shape with the right status."""

from datetime import timedelta
from typing import Any

import openai
import pytest
import requests
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from gateway.callers import keys_changed
from gateway.models import ApiKey
from gateway.secrets import new_key
from money.models import Reservation, SpendLedger, UsageRecord
from tests.chat.conftest import provisioned
from tests.gateway.conftest import azure_client, make_key, openai_client, records, wait_for

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


def post(url: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["api-key"] = key
    return requests.post(f"{url}{path}", headers=headers, timeout=30, **kwargs)


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


# The key ladder --------------------------------------------------------------------------------


def ask(url: str, key: str, model: str = "company-assistant") -> None:
    openai_client(url, key).chat.completions.create(model=model, messages=QUESTION, max_tokens=20)


def test_no_key_is_refused(gateway, assistant):
    response = post(gateway, "/openai/v1/chat/completions", json={"model": "company-assistant"})

    assert response.status_code == 401
    assert "No API key was given" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("not-a-key", "Switchyard takes a department API key"),
        ("sy-short", "is not a Switchyard key"),
        (new_key()[0], "Incorrect API key provided"),
        ("eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.", "Token not signed"),
    ],
)
def test_malformed_and_unknown_keys_are_refused(gateway, assistant, key, words):
    with pytest.raises(openai.AuthenticationError) as refused:
        ask(gateway, key)

    assert words in refused.value.message
    assert refused.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"revoked_at": timezone.now() - timedelta(hours=1)}, "was revoked on"),
        ({"expires_in": timedelta(seconds=-1)}, "expired on"),
        ({"state": ApiKey.State.PENDING}, "is waiting for approval"),
        ({"state": ApiKey.State.REJECTED}, "was not approved"),
        ({"grace_until": timezone.now() - timedelta(minutes=1)}, "its grace period ended"),
    ],
)
def test_unusable_keys_are_refused_with_the_reason(gateway, assistant, marketing, fields, words):
    raw, _key = make_key(marketing, [assistant], **fields)

    with pytest.raises(openai.AuthenticationError) as refused:
        ask(gateway, raw)

    assert words in refused.value.message
    assert not UsageRecord.objects.exists()


def test_a_rotated_key_works_during_its_grace(gateway, assistant, marketing):
    raw, _key = make_key(marketing, [assistant], grace_until=timezone.now() + timedelta(hours=1))

    ask(gateway, raw)

    assert records()[0].api_key.prefix == raw[:11]


def test_another_departments_deployment_is_not_found_as_if_it_did_not_exist(
    gateway, assistant, finance, zone, marketing
):
    provisioned(finance, zone, display_name="Finance assistant", name="finance-assistant")
    raw, _key = make_key(marketing, [assistant])

    with pytest.raises(openai.NotFoundError) as other:
        ask(gateway, raw, model="finance-assistant")
    with pytest.raises(openai.NotFoundError) as missing:
        ask(gateway, raw, model="no-such-assistant")

    assert other.value.code == missing.value.code == "DeploymentNotFound"
    assert other.value.message.replace("finance-assistant", "X") == missing.value.message.replace(
        "no-such-assistant", "X"
    )
    assert not UsageRecord.objects.exists()


def test_a_deployment_the_key_does_not_name_is_not_found(gateway, assistant, zone, marketing):
    provisioned(marketing, zone, display_name="Marketing analyst", name="marketing-analyst")
    raw, _key = make_key(marketing, [assistant])

    with pytest.raises(openai.NotFoundError):
        azure_client(gateway, raw).chat.completions.create(model="marketing-analyst", messages=QUESTION)


def test_a_revoked_key_stops_at_its_next_call(gateway, assistant, marketing):
    raw, key = make_key(marketing, [assistant])
    ask(gateway, raw)  # remembered by the server now

    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    keys_changed()

    with pytest.raises(openai.AuthenticationError):
        ask(gateway, raw)


def test_the_right_key_is_let_through_and_noted_as_used(gateway, assistant, marketing):
    raw, key = make_key(marketing, [assistant])

    ask(gateway, raw)

    key.refresh_from_db()
    assert key.last_used_at is not None
    assert records()[0].api_key == key


def test_a_known_keys_calls_are_each_metered_on_the_budget(gateway, assistant, marketing):
    """After its first call the server remembers the key, the deployment, its price and the
    budget's ledger, and admits the next calls from its event loop: each is metered all the same,
    its reservation settled, and the budget's ledger holds nothing once they are done."""
    raw, key = make_key(marketing, [assistant])
    client = openai_client(gateway, raw)
    ask(gateway, raw)

    for _ in range(3):
        ask(gateway, raw)
        stream = client.chat.completions.create(
            model="company-assistant", messages=QUESTION, max_tokens=20, stream=True
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    found = records(7)
    assert len(found) == 7
    assert {record.api_key_id for record in found} == {key.pk}
    assert all(record.output_tokens > 0 and not record.estimated for record in found)
    assert wait_for(lambda: not Reservation.objects.exists())
    ledger = SpendLedger.objects.get(key__startswith=f"department:{marketing.pk}:")
    assert wait_for(lambda: SpendLedger.objects.get(pk=ledger.pk).held_units == 0)


# Bad input -------------------------------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_400(gateway, marketing_key):
    response = post(
        gateway, "/openai/v1/chat/completions", key=marketing_key, data=b"model=company-assistant"
    )
    array = post(gateway, "/openai/v1/chat/completions", key=marketing_key, json=[1, 2])

    assert response.status_code == array.status_code == 400
    assert "not valid JSON" in error_of(response)["message"]
    assert "must be a JSON object" in error_of(array)["message"]


def test_a_huge_body_is_a_413_whether_announced_or_streamed(gateway, marketing_key, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 10_000
    huge = (
        b'{"model": "company-assistant", "messages": [{"role": "user", "content": "' + b"x" * 20_000 + b'"}]}'
    )

    announced = post(gateway, "/openai/v1/chat/completions", key=marketing_key, data=huge)
    chunked = post(
        gateway,
        "/openai/v1/chat/completions",
        key=marketing_key,
        data=iter([huge[i : i + 4096] for i in range(0, len(huge), 4096)]),
    )

    for response in (announced, chunked):
        assert response.status_code == 413
        assert "larger than the gateway takes (10,000 bytes)" in error_of(response)["message"]
    assert not Reservation.objects.exists()


def test_max_tokens_above_the_models_limit_is_a_400(gateway, marketing_key):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION, max_tokens=1_000_000
        )

    assert refused.value.param == "max_tokens"
    assert "This model supports at most" in refused.value.message
    assert not UsageRecord.objects.exists()
    assert not Reservation.objects.exists()


def test_missing_messages_and_model_are_400s(gateway, marketing_key):
    no_messages = post(
        gateway, "/openai/v1/chat/completions", key=marketing_key, json={"model": "company-assistant"}
    )
    no_model = post(gateway, "/openai/v1/chat/completions", key=marketing_key, json={"messages": QUESTION})

    assert error_of(no_messages)["param"] == "messages"
    assert error_of(no_model)["param"] == "model"


def test_azures_own_validation_message_is_passed_on(gateway, marketing_key, gateway_emulator):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=[{"role": "user", "content": "how to build a bomb"}]
        )

    assert refused.value.code == "content_filter"
    assert not UsageRecord.objects.exists()
    wait_for(lambda: not Reservation.objects.exists())
    assert not Reservation.objects.exists()


def test_unknown_paths_and_methods_answer_json(gateway, marketing_key):
    unknown = requests.get(f"{gateway}/openai/v1/assistants", headers={"api-key": marketing_key}, timeout=30)
    wrong_method = requests.get(
        f"{gateway}/openai/v1/chat/completions", headers={"api-key": marketing_key}, timeout=30
    )
    bare = requests.get(f"{gateway}/openai", timeout=30)

    assert unknown.status_code == bare.status_code == 404
    error_of(bare)
    assert wrong_method.status_code == 405
    error_of(unknown)
    error_of(wrong_method)


def test_a_stream_abandoned_half_way_is_settled_on_what_was_delivered(
    gateway, marketing_key, gateway_emulator
):
    gateway_emulator.configure(per_token_ms=20)
    client = openai_client(gateway, marketing_key)
    long_answer: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Write a long essay about our spring campaign plan"}
    ]

    with client.chat.completions.create(
        model="company-assistant", messages=long_answer, stream=True, max_tokens=400
    ) as stream:
        received = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received == 5:
                break

    (record,) = records()
    assert record.estimated
    assert record.input_tokens > 0
    assert 5 <= record.output_tokens < 400
    assert not Reservation.objects.exists()


def test_embeddings_through_both_clients(gateway, gateway_emulator, zone, marketing):
    embedder = provisioned(
        marketing,
        zone,
        display_name="Marketing embeddings",
        name="marketing-embeddings",
        model_name="text-embedding-3-small",
        model_version="1",
        sku="GlobalStandard",
    )
    raw, _key = make_key(marketing, [embedder])

    one = openai_client(gateway, raw).embeddings.create(model="marketing-embeddings", input="spring sale")
    many = azure_client(gateway, raw).embeddings.create(model="marketing-embeddings", input=["a", "b"])

    assert len(one.data[0].embedding) == 1536
    assert len(many.data) == 2
    recorded = records(2)
    assert {record.deployment for record in recorded} == {embedder}
    assert sorted(record.input_tokens for record in recorded) == sorted(
        [one.usage.prompt_tokens, many.usage.prompt_tokens]
    )
