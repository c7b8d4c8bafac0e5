"""The unchanged openai SDKs against the gateway on a live server: OpenAI (base_url .../openai/v1,
bearer key) and AzureOpenAI (azure_endpoint, api-key header), sync and async, streaming and not;
every call metered as an API call of its key."""

import asyncio

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from money.models import UsageRecord
from tests.gateway.conftest import API_VERSION, azure_client, openai_client, records

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


def test_openai_client_gets_an_answer_metered_on_its_key(gateway, marketing_key, assistant, marketing):
    client = openai_client(gateway, marketing_key)

    completion = client.chat.completions.create(model="company-assistant", messages=QUESTION)

    assert completion.choices[0].message.content
    assert completion.usage is not None
    (record,) = records()
    assert record.source == UsageRecord.Source.API
    assert record.department == marketing
    assert record.deployment == assistant
    assert record.api_key.name == "Web shop"
    assert record.user is None
    assert record.input_tokens == completion.usage.prompt_tokens
    assert record.output_tokens == completion.usage.completion_tokens
    assert not record.estimated
    assert record.cost > 0
    assert record.attempts == []


def test_openai_client_streams_azures_chunks_without_usage_unless_asked(gateway, marketing_key):
    client = openai_client(gateway, marketing_key)

    chunks = list(client.chat.completions.create(model="company-assistant", messages=QUESTION, stream=True))
    extra = chunks[0].model_extra or {}

    # Azure's first chunk (the prompt's filter results) comes through; the usage chunk does not.
    assert chunks[0].choices == []
    assert extra.get("prompt_filter_results")
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text
    assert any(chunk.choices and chunk.choices[0].finish_reason == "stop" for chunk in chunks)
    (record,) = records()
    assert record.output_tokens > 0
    assert not record.estimated


def test_openai_client_gets_the_usage_chunk_when_it_asks(gateway, marketing_key):
    client = openai_client(gateway, marketing_key)

    chunks = list(
        client.chat.completions.create(
            model="company-assistant", messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
    )

    usage = chunks[-1].usage
    assert usage is not None
    (record,) = records()
    assert (record.input_tokens, record.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)


def test_azure_client_streams_and_answers(gateway, marketing_key):
    client = azure_client(gateway, marketing_key)

    completion = client.chat.completions.create(model="company-assistant", messages=QUESTION)
    chunks = list(client.chat.completions.create(model="company-assistant", messages=QUESTION, stream=True))

    assert completion.choices[0].message.content
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert {record.source for record in records(2)} == {"api"}


def test_async_clients_stream_at_once(gateway, marketing_key):
    async def ask() -> list[str]:
        clients: list[openai.AsyncOpenAI | openai.AsyncAzureOpenAI] = [
            openai.AsyncOpenAI(base_url=f"{gateway}/openai/v1", api_key=marketing_key, max_retries=0),
            openai.AsyncAzureOpenAI(
                azure_endpoint=gateway, api_key=marketing_key, api_version=API_VERSION, max_retries=0
            ),
        ]

        async def one(client: openai.AsyncOpenAI | openai.AsyncAzureOpenAI) -> str:
            stream = await client.chat.completions.create(
                model="company-assistant", messages=QUESTION, stream=True
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

        try:
            answers = await asyncio.gather(*(one(client) for client in clients for _ in range(3)))
            completion = await clients[1].chat.completions.create(
                model="company-assistant", messages=QUESTION
            )
            return [*answers, completion.choices[0].message.content or ""]
        finally:
            for client in clients:
                await client.close()

    answers = asyncio.run(ask())

    assert all(answers)
    assert len(records(7)) == 7


def test_models_lists_exactly_what_the_key_may_call(gateway, marketing_key, assistant):
    client = openai_client(gateway, marketing_key)

    listed = client.models.list()
    one = client.models.retrieve("company-assistant")

    assert [model.id for model in listed.data] == ["company-assistant"]
    assert [model.id for model in azure_client(gateway, marketing_key).models.list()] == ["company-assistant"]
    assert one.id == "company-assistant"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("finance-assistant")
