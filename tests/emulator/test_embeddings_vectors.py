"""The emulator's embeddings through the unchanged openai SDK: vectors in which texts sharing
words and phrases lie close, so retrieval over them means something offline; the requested
dimensions; base64 (the SDK's default) and float encodings agreeing; the tokens metered as a chat
call's are."""

import math
from decimal import Decimal

import openai
import pytest
import requests

from provisioning.azure import data_plane_token_provider
from provisioning.emulator.catalog import Catalog
from tests.emulator.conftest import deploy_chat
from tests.emulator.test_costs import by_resource, cost_query


def cosine(first: list[float], second: list[float]) -> float:
    return sum(a * b for a, b in zip(first, second, strict=True))


@pytest.fixture
def client(cognitive):
    deployed = deploy_chat(
        cognitive, account="oai-vectors", deployment="embed", model="text-embedding-3-small", version="1"
    )
    return openai.AzureOpenAI(
        azure_endpoint=deployed.endpoint,
        azure_ad_token_provider=data_plane_token_provider(),
        api_version="2024-10-21",
    )


def embed(client, texts: list[str], **options) -> list[list[float]]:
    return [item.embedding for item in client.embeddings.create(model="embed", input=texts, **options).data]


def test_texts_sharing_phrases_lie_closer_than_unrelated_ones(client):
    leave, leave_again, lunch = embed(
        client,
        [
            "How many weeks of parental leave do new parents get?",
            "New parents get sixteen weeks of paid parental leave.",
            "The canteen serves vegetarian lunch on Fridays.",
        ],
    )

    assert cosine(leave, leave_again) > 0.3
    assert cosine(leave, leave_again) > cosine(leave, lunch) + 0.25
    assert abs(cosine(leave, lunch)) < 0.15


def test_the_same_text_gets_the_same_unit_vector_of_1536_dimensions(client):
    first, again = embed(client, ["Brand voice: short, friendly sentences."] * 2)

    assert first == again
    assert len(first) == 1536
    assert math.isclose(math.sqrt(cosine(first, first)), 1.0, rel_tol=1e-5)


def test_the_dimensions_parameter_is_honoured(client):
    (vector,) = embed(client, ["expense claims within thirty days"], dimensions=256)

    assert len(vector) == 256
    assert math.isclose(math.sqrt(cosine(vector, vector)), 1.0, rel_tol=1e-5)


def test_base64_and_float_encodings_agree(client):
    text = ["Remote work up to three days a week"]
    (as_base64,) = embed(client, text)  # the SDK asks for base64 and decodes it
    (as_floats,) = embed(client, text, encoding_format="float")

    assert as_base64 == pytest.approx(as_floats, abs=1e-6)


def test_text_without_words_still_gets_a_vector(client):
    (vector,) = embed(client, ["?!"])

    assert math.isclose(math.sqrt(cosine(vector, vector)), 1.0, rel_tol=1e-5)


def test_embedded_tokens_are_metered_as_a_chat_calls_are(client, emulator):
    answer = client.embeddings.create(model="embed", input=["parental leave", "expense claims policy"])

    rows = requests.get(f"{emulator.control_url}/", timeout=10).json()["usage"]
    (row,) = [row for row in rows if row["deployment"] == "embed"]
    assert answer.usage.prompt_tokens > 0
    assert row["inputTokens"] == answer.usage.prompt_tokens
    assert row["outputTokens"] == 0
    assert row["model"] == "text-embedding-3-small"
    assert row["requests"] == 1


def test_embedded_tokens_are_priced_by_cost_management(client, emulator):
    handbook = " ".join(["Parental leave is sixteen weeks of paid leave for every new parent."] * 200)
    answer = client.embeddings.create(model="embed", input=[handbook])

    response = cost_query(emulator, by_resource())

    price_in, _, _ = Catalog.load().token_price(
        model="text-embedding-3-small", version="1", sku="GlobalStandard"
    )
    assert price_in > 0
    [[cost, _resource_id, _currency]] = response.json()["properties"]["rows"]
    expected = answer.usage.prompt_tokens * price_in / Decimal(1_000_000)
    assert Decimal(str(cost)).quantize(Decimal("0.000000001")) == expected.quantize(Decimal("0.000000001"))
