"""The unchanged openai SDK against the emulator's Azure OpenAI data plane: what Switchyard's chat
would see on Azure — streams, usage, limits, filters, auth failures and injected faults."""

import asyncio
import time
from typing import Any

import openai
import pytest
import requests
from azure.identity import get_bearer_token_provider
from django.conf import settings
from openai.types.chat import ChatCompletionMessageParam

from provisioning.azure import COGNITIVE_SERVICES_SCOPE, EmulatorCredential, data_plane_token_provider
from tests.emulator.conftest import ChatDeployment, deploy_chat
from tests.emulator.fixtures import RESOURCE_GROUP

API_VERSION = "2025-04-01-preview"


def user_says(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


QUESTION_TEXT = "How should we roll out a new internal search service?"
QUESTION = user_says(QUESTION_TEXT)


def azure_client(chat: ChatDeployment, **options) -> openai.AsyncAzureOpenAI:
    options.setdefault("azure_ad_token_provider", data_plane_token_provider())
    return openai.AsyncAzureOpenAI(azure_endpoint=chat.endpoint, api_version=API_VERSION, **options)


def ask(chat: ChatDeployment, messages=QUESTION, client_options=None, **request):
    """One non-streaming call through AsyncAzureOpenAI."""

    async def call():
        async with azure_client(chat, **(client_options or {})) as client:
            return await client.chat.completions.create(model=chat.deployment, messages=messages, **request)

    return asyncio.run(call())


def stream(chat: ChatDeployment, messages=QUESTION, client_options=None, **request):
    """All chunks of one streaming call through AsyncAzureOpenAI, with when each arrived."""

    async def call():
        arrivals = []
        started = time.monotonic()
        async with azure_client(chat, **(client_options or {})) as client:
            chunks = await client.chat.completions.create(
                model=chat.deployment, messages=messages, stream=True, **request
            )
            async for chunk in chunks:
                arrivals.append((time.monotonic() - started, chunk))
        return arrivals

    return asyncio.run(call())


def text_of(chunks) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def content_chunks(chunks):
    return [chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]


def metered(emulator) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = requests.get(f"{emulator.control_url}/", timeout=10).json()["usage"]
    return rows


class TestChat:
    def test_a_stream_with_usage_arrives_as_azure_sends_it(self, emulator, chat_deployment):
        chunks = [chunk for _, chunk in stream(chat_deployment, stream_options={"include_usage": True})]

        first, last = chunks[0], chunks[-1]
        assert first.choices == []
        assert first.model_extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
            "filtered": False,
            "severity": "safe",
        }
        answer = text_of(chunks)
        assert len(answer.split()) > 20
        assert answer.endswith(".")
        assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
        assert last.choices == []
        assert last.usage.completion_tokens == len(content_chunks(chunks))
        assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
        assert all(chunk.usage is None for chunk in chunks[:-1])
        assert content_chunks(chunks)[0].choices[0].model_extra["content_filter_results"]["violence"] == {
            "filtered": False,
            "severity": "safe",
        }
        assert {chunk.model for chunk in chunks[1:]} == {"gpt-4o-mini-2024-07-18"}

    def test_a_plain_call_returns_the_same_answer_as_the_stream(self, emulator, chat_deployment):
        streamed = text_of(chunk for _, chunk in stream(chat_deployment))

        completion = ask(chat_deployment)

        assert completion.choices[0].message.content == streamed
        assert completion.choices[0].finish_reason == "stop"
        assert completion.id.startswith("chatcmpl-")
        assert completion.model == "gpt-4o-mini-2024-07-18"
        assert completion.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
        assert completion.usage.prompt_tokens > len(QUESTION_TEXT.split())
        assert completion.usage.prompt_tokens_details.cached_tokens == 0

    def test_the_v1_endpoint_streams_to_the_plain_openai_client(self, emulator, chat_deployment):
        token = data_plane_token_provider()()
        client = openai.OpenAI(base_url=f"{chat_deployment.endpoint}openai/v1/", api_key=token)

        chunks = list(
            client.chat.completions.create(
                model=chat_deployment.deployment,
                messages=QUESTION,
                stream=True,
                stream_options={"include_usage": True},
            )
        )

        assert chunks[-1].usage.completion_tokens == len(content_chunks(chunks))
        assert text_of(chunks) == ask(chat_deployment).choices[0].message.content

    def test_max_tokens_cuts_the_answer(self, emulator, chat_deployment):
        chunks = [
            chunk
            for _, chunk in stream(chat_deployment, max_tokens=10, stream_options={"include_usage": True})
        ]

        assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "length"
        assert len(content_chunks(chunks)) == 10
        assert chunks[-1].usage.completion_tokens == 10
        assert ask(chat_deployment, max_completion_tokens=10).usage.completion_tokens == 10

    def test_a_request_for_code_gets_a_code_block(self, emulator, chat_deployment):
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": "You are a helpful engineer."},
            {"role": "user", "content": "Write a Python function that removes empty invoices."},
        ]

        answer = ask(chat_deployment, messages).choices[0].message.content

        assert "```python\n" in answer
        assert answer.count("```") == 2

    def test_usage_is_metered_for_cost_management(self, emulator, chat_deployment):
        completion = ask(chat_deployment)

        [row] = metered(emulator)
        assert row["accountId"] == chat_deployment.account_id
        assert row["deployment"] == "chat"
        assert row["requests"] == 1
        assert row["inputTokens"] == completion.usage.prompt_tokens
        assert row["outputTokens"] == completion.usage.completion_tokens

    def test_the_first_token_waits_for_the_configured_latency(self, emulator, chat_deployment):
        emulator.configure(first_token_ms=300)

        arrivals = stream(chat_deployment)

        first_content = next(at for at, chunk in arrivals if chunk.choices and chunk.choices[0].delta.content)
        assert first_content >= 0.3

    def test_tokens_are_paced_by_the_per_token_delay(self, emulator, chat_deployment):
        emulator.configure(per_token_ms=30)

        arrivals = stream(chat_deployment, max_tokens=10)

        content = [at for at, chunk in arrivals if chunk.choices and chunk.choices[0].delta.content]
        assert len(content) == 10
        assert content[-1] >= 9 * 0.03

    def test_reasoning_models_refuse_max_tokens(self, emulator, cognitive):
        chat = deploy_chat(cognitive, model="o4-mini", version="2025-04-16")

        with pytest.raises(openai.BadRequestError) as refused:
            ask(chat, max_tokens=50)

        assert refused.value.code == "unsupported_parameter"
        assert ask(chat, max_completion_tokens=50).usage.completion_tokens == 50


class TestRateLimits:
    def test_a_429_without_retries_raises_with_retry_after(self, emulator, chat_deployment):
        emulator.inject(operation="chat", kind="429", count=1, retry_after_seconds=7)

        with pytest.raises(openai.RateLimitError) as refused:
            ask(chat_deployment, client_options={"max_retries": 0})

        assert refused.value.response.headers["retry-after"] == "7"
        assert refused.value.code == "429"
        assert "exceeded token rate limit of your current OpenAI S0 pricing tier" in refused.value.message

    def test_a_429_is_retried_by_the_sdk(self, emulator, chat_deployment):
        emulator.inject(operation="chat", kind="429", count=1, retry_after_seconds=1)

        completion = ask(chat_deployment, client_options={"max_retries": 2})

        assert completion.choices[0].finish_reason == "stop"

    def test_capacity_limits_requests_per_minute(self, emulator, cognitive):
        # gpt-4.1-mini allows 1 request per minute per capacity unit.
        chat = deploy_chat(cognitive, model="gpt-4.1-mini", version="2025-04-14", capacity=1)
        ask(chat, max_tokens=50)

        with pytest.raises(openai.RateLimitError) as refused:
            ask(chat, max_tokens=50, client_options={"max_retries": 0})

        assert "exceeded call rate limit" in refused.value.message
        assert int(refused.value.response.headers["retry-after"]) > 30
        assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"

    def test_capacity_limits_tokens_per_minute(self, emulator, cognitive):
        chat = deploy_chat(cognitive, capacity=1)  # 1,000 tokens per minute

        with pytest.raises(openai.RateLimitError) as refused:
            ask(chat, max_tokens=2000, client_options={"max_retries": 0})

        assert "exceeded token rate limit" in refused.value.message


class TestContentFilter:
    def test_a_blocked_prompt_is_refused_with_content_filter(self, emulator, chat_deployment):
        emulator.configure(prompt_block_words=["forbidden recipe"])

        with pytest.raises(openai.BadRequestError) as refused:
            ask(chat_deployment, user_says("Give me the Forbidden Recipe now"))

        error = refused.value.body
        assert isinstance(error, dict)
        assert refused.value.code == "content_filter"
        assert error["param"] == "prompt"
        assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
        verdicts = error["innererror"]["content_filter_result"]
        assert [name for name, verdict in verdicts.items() if verdict["filtered"]] == ["violence"]

    def test_a_blocked_answer_stops_with_content_filter(self, emulator, chat_deployment):
        messages = user_says("Tell me a gory story about pirates")

        chunks = [
            chunk for _, chunk in stream(chat_deployment, messages, stream_options={"include_usage": True})
        ]

        final = [chunk for chunk in chunks if chunk.choices][-1].choices[0]
        assert final.finish_reason == "content_filter"
        assert final.model_extra["content_filter_results"]["violence"] == {
            "filtered": True,
            "severity": "medium",
        }
        assert 0 < chunks[-1].usage.completion_tokens == len(content_chunks(chunks))
        completion = ask(chat_deployment, messages)
        assert completion.choices[0].finish_reason == "content_filter"
        assert completion.choices[0].message.content is None


class TestAuthentication:
    def test_a_principal_without_the_role_is_denied(self, emulator, chat_deployment):
        stranger = EmulatorCredential(principal_id="99999999-8888-7777-6666-555555555555", tenant_id="t")
        provider = get_bearer_token_provider(stranger, COGNITIVE_SERVICES_SCOPE)

        with pytest.raises(openai.AuthenticationError) as refused:
            ask(chat_deployment, client_options={"azure_ad_token_provider": provider})

        assert refused.value.code == "PermissionDenied"
        assert "The principal `99999999-8888-7777-6666-555555555555` lacks the required data action" in (
            refused.value.message
        )

    def test_the_portal_without_its_role_assignment_is_denied(self, emulator, cognitive):
        chat = deploy_chat(cognitive, grant=False)

        with pytest.raises(openai.AuthenticationError) as refused:
            ask(chat)

        assert settings.AZURE_PORTAL_PRINCIPAL_ID in refused.value.message

    def test_api_keys_are_refused_when_local_auth_is_disabled(self, emulator, chat_deployment):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            ask(
                chat_deployment,
                client_options={"api_key": "0123456789abcdef", "azure_ad_token_provider": None},
            )

        assert refused.value.code == "AuthenticationTypeDisabled"

    def test_api_keys_work_where_local_auth_is_allowed(self, emulator, cognitive):
        chat = deploy_chat(cognitive, keyless=False, grant=False)
        key = cognitive.accounts.list_keys(RESOURCE_GROUP, chat.account_name).key2

        completion = ask(chat, client_options={"api_key": key, "azure_ad_token_provider": None})

        assert completion.choices[0].finish_reason == "stop"
        with pytest.raises(openai.AuthenticationError):
            ask(chat, client_options={"api_key": "not-a-key", "azure_ad_token_provider": None})

    def test_an_unknown_deployment_is_not_found(self, emulator, chat_deployment):
        missing = ChatDeployment(chat_deployment.endpoint, "no-such", chat_deployment.account_id, "x")

        with pytest.raises(openai.NotFoundError) as refused:
            ask(missing)

        assert refused.value.code == "DeploymentNotFound"

    def test_an_unknown_account_is_not_found(self, emulator, chat_deployment):
        unknown = ChatDeployment(f"{emulator.url}/accounts/nobody/", "chat", "", "nobody")

        with pytest.raises(openai.NotFoundError):
            ask(unknown)


class TestFaults:
    @pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
    def test_server_errors_reach_the_caller(self, emulator, chat_deployment, kind, status):
        emulator.inject(operation="chat", kind=kind, count=1)

        with pytest.raises(openai.InternalServerError) as failed:
            ask(chat_deployment, client_options={"max_retries": 0})

        assert failed.value.status_code == status

    def test_a_dropped_stream_breaks_off_and_meters_what_was_sent(self, emulator, chat_deployment):
        emulator.inject(operation="chat", kind="drop_stream", count=1, after_chunks=5)
        received = []

        async def read():
            async with azure_client(chat_deployment, max_retries=0) as client:
                chunks = await client.chat.completions.create(
                    model=chat_deployment.deployment,
                    messages=QUESTION,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in chunks:
                    received.append(chunk)

        with pytest.raises(openai.APIConnectionError):
            asyncio.run(read())

        assert len(content_chunks(received)) == 5
        assert all(chunk.usage is None for chunk in received)
        [row] = metered(emulator)
        assert row["outputTokens"] == 5

    def test_a_hung_call_times_out_and_the_emulator_carries_on(self, emulator, chat_deployment):
        emulator.inject(operation="chat", kind="hang", count=1)

        with pytest.raises(openai.APITimeoutError):
            ask(chat_deployment, client_options={"max_retries": 0, "timeout": 0.5})

        assert ask(chat_deployment).choices[0].finish_reason == "stop"

    def test_a_caller_that_leaves_mid_stream_is_billed_for_what_it_got(self, emulator, chat_deployment):
        emulator.configure(per_token_ms=20)

        async def read_five():
            async with azure_client(chat_deployment) as client:
                chunks = await client.chat.completions.create(
                    model=chat_deployment.deployment, messages=QUESTION, stream=True
                )
                tokens = 0
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        tokens += 1
                    if tokens == 5:
                        await chunks.close()
                        return

        asyncio.run(read_five())

        billed = _metered_call(emulator)["outputTokens"]
        emulator.configure(per_token_ms=0)
        assert 5 <= billed < ask(chat_deployment).usage.completion_tokens


def _metered_call(emulator) -> dict[str, Any]:
    """The usage row once the emulator has noticed the call ended."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = metered(emulator)
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the call was never metered")
