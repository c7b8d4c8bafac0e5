"""Grounded deployments through the gateway, with the unchanged openai SDK (AzureOpenAI): the
application's question is searched in the assistant's data sets only, the answer cites them and
carries Azure's "on your data" `context` (a stream: in the first chunk with a choice), the
retrieval is metered as an API call's, and a question the documents do not cover gets the honest
answer without a call to Azure."""

from typing import Any

import pytest
import requests
from openai.types.chat import ChatCompletionMessageParam

from grounding.models import DataSet, Grounding
from grounding.quoting import SOURCES_BEGIN
from money.models import UsageRecord
from org.models import Department, Membership, User
from provisioning.catalog import prices_load_shipped
from provisioning.models import LandingZone, ModelDeployment
from tests.chat.conftest import provisioned
from tests.factories import make_department, make_user
from tests.gateway.conftest import azure_client, make_key, wait_for
from tests.grounding.backend import ingest, make_data_set, make_document

SYSTEM = "You answer HR questions for the intranet's help widget."
HANDBOOK = b"""# Employee handbook

## Parental leave

Parents get 16 weeks of parental leave at full pay. The leave can be taken in up to two blocks.

## Expenses

Travel expenses are refunded within 30 days when the receipts are attached.
"""
FINANCE_RULES = b"""# Finance staff rules

## Parental leave bonus

Finance staff on parental leave get a secret bonus of 5,000 euros from the finance reserve.
"""


def question(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


@pytest.fixture
def hr(transactional_db) -> Department:
    prices_load_shipped()
    return make_department(name="HR", slug="hr", cost_center="CC-4100")


@pytest.fixture
def hana(hr) -> User:
    return make_user(email="hana@example.com", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def grounded_helper(hr, hana, finance, search_backend, search_zone: LandingZone) -> ModelDeployment:
    policies = make_data_set(department=hr, owner=hana, zone=search_zone, name="HR policies")
    assert ingest(make_document(data_set=policies, name="Employee handbook.md", content=HANDBOOK)).passages
    olga = make_user(email="olga@example.com", department=finance, role=Membership.Role.LEAD)
    rules = make_data_set(department=finance, owner=olga, zone=search_zone, name="Finance rules")
    assert ingest(
        make_document(data_set=rules, name="Finance staff rules.md", content=FINANCE_RULES)
    ).passages
    helper = provisioned(hr, search_zone, display_name="HR policy helper", name="hr-helper", capacity=200)
    Grounding.objects.create(deployment=helper, data_set=policies, state=Grounding.State.ACTIVE)
    return helper


@pytest.fixture
def hr_key(grounded_helper, hr) -> str:
    raw, _key = make_key(hr, [grounded_helper], name="Intranet help widget")
    return raw


@pytest.fixture
def emulator_prompts(emulator):
    url = f"{emulator.url}/_emulator/chat-prompts"
    requests.delete(url, timeout=5)

    def read() -> list[dict[str, Any]]:
        return list(requests.get(url, timeout=5).json()["prompts"])

    return read


def test_a_grounded_answer_carries_azures_context_with_citations(
    gateway, hr_key, grounded_helper, emulator_prompts
):
    client = azure_client(gateway, hr_key)

    completion = client.chat.completions.create(
        model=grounded_helper.gateway_name, messages=question("How long is parental leave?")
    )

    message = completion.choices[0].message
    assert message.content is not None
    assert "16 weeks" in message.content
    assert "[1]" in message.content
    context = (message.model_extra or {})["context"]
    assert context["intent"] == "How long is parental leave?"
    citations = context["citations"]
    assert citations
    assert set(citations[0]) == {"content", "title", "url", "filepath", "chunk_id"}
    assert citations[0]["title"] == "Employee handbook.md"
    assert "16 weeks" in citations[0]["content"]
    assert all(citation["title"] == "Employee handbook.md" for citation in citations)
    (sent,) = emulator_prompts()
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}
    assert SOURCES_BEGIN in sent["messages"][1]["content"]
    # The answer and the question's embedding, both metered as the key's API calls (the documents'
    # own embeddings were metered as ingestion).
    answer = wait_for(lambda: UsageRecord.objects.filter(deployment=grounded_helper).first())
    assert answer.source == UsageRecord.Source.API
    embedding = wait_for(
        lambda: (
            UsageRecord.objects.filter(department__slug="hr", source=UsageRecord.Source.API)
            .exclude(deployment=grounded_helper)
            .first()
        )
    )
    assert embedding is not None
    assert embedding.output_tokens == 0


def test_a_stream_carries_the_context_in_its_first_chunk_with_a_choice(gateway, hr_key, grounded_helper):
    client = azure_client(gateway, hr_key)

    chunks = list(
        client.chat.completions.create(
            model=grounded_helper.gateway_name, messages=question("How long is parental leave?"), stream=True
        )
    )

    with_choice = [chunk for chunk in chunks if chunk.choices]
    first = (with_choice[0].choices[0].delta.model_extra or {}).get("context")
    assert first is not None
    assert first["citations"][0]["title"] == "Employee handbook.md"
    assert all("context" not in (chunk.choices[0].delta.model_extra or {}) for chunk in with_choice[1:])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in with_choice)
    assert "[1]" in text


def test_another_departments_passages_never_reach_the_prompt(
    gateway, hr_key, grounded_helper, emulator_prompts
):
    client = azure_client(gateway, hr_key)

    completion = client.chat.completions.create(
        model=grounded_helper.gateway_name,
        messages=question(
            "What secret bonus do finance staff on parental leave get from the finance reserve?"
        ),
    )

    for sent in emulator_prompts():
        assert "5,000 euros" not in "\n".join(str(message["content"]) for message in sent["messages"])
    context = (completion.choices[0].message.model_extra or {})["context"]
    assert all(citation["title"] == "Employee handbook.md" for citation in context["citations"])


def test_a_question_the_documents_do_not_cover_is_answered_without_azure(
    gateway, hr_key, grounded_helper, emulator_prompts
):
    client = azure_client(gateway, hr_key)

    completion = client.chat.completions.create(
        model=grounded_helper.gateway_name,
        messages=question("Quantum chromodynamics gluon confinement lattice?"),
    )

    message = completion.choices[0].message
    assert message.content is not None
    assert message.content.startswith("I could not find this in the documents HR policy helper answers from")
    assert (message.model_extra or {})["context"] == {
        "citations": [],
        "intent": "Quantum chromodynamics gluon confinement lattice?",
    }
    assert emulator_prompts() == []


def test_data_sets_in_the_request_are_ignored(gateway, hr_key, grounded_helper, emulator_prompts):
    """Azure's own `data_sources` are the application's to send to Azure; the data sets searched
    are the assistant's, read on the server, whatever the request names."""
    client = azure_client(gateway, hr_key)
    finance_rules = DataSet.objects.get(name="Finance rules")

    completion = client.chat.completions.create(
        model=grounded_helper.gateway_name,
        messages=question("What secret bonus do finance staff get from the finance reserve?"),
        extra_body={
            "data_set": finance_rules.pk,
            "data_sets": [finance_rules.pk],
            "filter": "department eq 'Finance'",
        },
    )

    assert completion.choices[0].message is not None
    for sent in emulator_prompts():
        assert "5,000 euros" not in "\n".join(str(message["content"]) for message in sent["messages"])
