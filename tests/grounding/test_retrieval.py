"""Retrieval against the emulator through the official SDKs: the hybrid query filtered on the
server by the assistant's data sets, numbered passages with names, the relevance floor, metering,
and the departments kept apart."""

import pytest
from asgiref.sync import async_to_sync

from calls import transport
from grounding import retrieval
from grounding.models import Grounding
from grounding.retrieval import RELEVANCE_FLOOR, grounded_data_sets, retrieve
from money.models import UsageRecord
from org.models import Membership
from tests.factories import make_department, make_deployment, make_user
from tests.grounding.backend import ingest, make_data_set, make_document

HANDBOOK = b"""# Employee handbook

## Parental leave

Every parent may take sixteen weeks of paid parental leave after a birth or an adoption.
Tell your lead about your parental leave eight weeks before it starts.

## Remote work

You may work from home up to three days a week when your team agrees.
"""

EXPENSES = b"""# Expense policy

## Travel expenses

Submit travel expense receipts within thirty days of the trip.
Hotel costs above the nightly limit need approval from your lead.

## Corporate cards

Corporate cards are for business purchases only; personal purchases are repaid within a week.
"""

RELATED = {
    "hr": [
        "How many weeks of parental leave do I get?",
        "When do I tell my lead about parental leave?",
        "How many days a week can I work from home?",
    ],
    "finance": [
        "How long do I have to submit travel expense receipts?",
        "Do hotel costs above the limit need approval?",
        "Can I use the corporate card for personal purchases?",
    ],
}
UNRELATED = [
    "What is the capital of Australia?",
    "Write me a poem about autumn leaves falling.",
    "hello",
    "Which programming language should I learn for data science?",
]


@pytest.fixture(autouse=True)
def retrieval_in_the_test(settings, documents_folder):
    # The test's transaction holds the rows: the turn's database work runs on the test's thread.
    settings.CHAT_DATABASE_THREAD = False


@pytest.fixture
def estate(search_backend, search_zone):
    """HR's handbook behind HR's helper, Finance's expense policy behind Finance's assistant."""
    hr = make_department(name="HR")
    finance = make_department(name="Finance")
    hr_lead = make_user(department=hr, role=Membership.Role.LEAD)
    finance_lead = make_user(department=finance, role=Membership.Role.LEAD)
    handbook_set = make_data_set(department=hr, owner=hr_lead, zone=search_zone, name="Handbook")
    expenses_set = make_data_set(department=finance, owner=finance_lead, zone=search_zone, name="Policies")
    handbook = ingest(make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK))
    expenses = ingest(make_document(data_set=expenses_set, name="expenses.md", content=EXPENSES))
    hr_helper = make_deployment(department=hr, display_name="HR policy helper", landing_zone=search_zone)
    finance_helper = make_deployment(
        department=finance, display_name="Finance helper", landing_zone=search_zone
    )
    Grounding.objects.create(deployment=hr_helper, data_set=handbook_set, state=Grounding.State.ACTIVE)
    Grounding.objects.create(deployment=finance_helper, data_set=expenses_set, state=Grounding.State.ACTIVE)
    return {
        "hr": hr,
        "finance": finance,
        "hr_helper": hr_helper,
        "finance_helper": finance_helper,
        "handbook": handbook,
        "expenses": expenses,
        "handbook_set": handbook_set,
        "expenses_set": expenses_set,
    }


def ask(deployment, question, *, department, data_sets=None, user_id=None):
    if data_sets is None:
        data_sets = grounded_data_sets(deployment)  # as a turn reads them: at every turn

    async def turn():
        passages = await retrieve(
            deployment=deployment,
            data_sets=data_sets,
            question=question,
            paying_department_id=department.pk,
            user_id=user_id,
            source=UsageRecord.Source.CHAT,
        )
        await retrieval.metering_done()
        # Each call runs on a loop of its own: its clients close with it.
        await retrieval.close_clients()
        await transport.close_clients()
        return passages

    return async_to_sync(turn)()


def test_the_answer_comes_from_the_assistants_data_set_with_names_and_numbers(estate):
    passages = ask(estate["hr_helper"], "How many weeks of parental leave do I get?", department=estate["hr"])
    assert passages
    assert [passage.number for passage in passages] == list(range(1, len(passages) + 1))
    best = passages[0]
    assert "sixteen weeks" in best.text
    assert best.document_id == estate["handbook"].pk
    assert best.document_name == "handbook.md"
    assert best.data_set_name == "Handbook"
    assert best.department_name == "HR"
    assert "Parental leave" in best.heading
    assert best.score >= RELEVANCE_FLOOR
    assert all(passage.data_set_id == estate["handbook_set"].pk for passage in passages)


def test_another_departments_data_set_never_answers_even_when_it_matches(estate):
    """Finance's assistant asked HR's question word for word: HR's handbook is in the same index,
    and the filter on the server keeps it out."""
    passages = ask(
        estate["finance_helper"], "How many weeks of parental leave do I get?", department=estate["finance"]
    )
    assert all(passage.data_set_id == estate["expenses_set"].pk for passage in passages)
    assert all("parental" not in passage.text.lower() for passage in passages)
    for question in RELATED["hr"]:
        answered = ask(estate["finance_helper"], question, department=estate["finance"])
        assert {passage.department_name for passage in answered} <= {"Finance"}


def test_removing_a_grounding_takes_effect_on_the_next_call(estate):
    question = "How many weeks of parental leave do I get?"
    assert ask(estate["hr_helper"], question, department=estate["hr"])
    Grounding.objects.filter(deployment=estate["hr_helper"]).update(state=Grounding.State.REMOVED)
    assert grounded_data_sets(estate["hr_helper"]) == []
    assert ask(estate["hr_helper"], question, department=estate["hr"]) == []


def test_a_question_nothing_answers_gets_no_passages(estate):
    for question in UNRELATED:
        assert ask(estate["hr_helper"], question, department=estate["hr"]) == [], question


def test_the_relevance_floor_separates_related_from_unrelated_questions(estate):
    """How the floor was chosen: the best passage's similarity for questions the documents answer
    and for questions they do not, with the floor between them."""
    both = [estate["handbook_set"], estate["expenses_set"]]

    def best(question):
        retrieval_floor, retrieval.RELEVANCE_FLOOR = retrieval.RELEVANCE_FLOOR, -1.0
        try:
            passages = ask(estate["hr_helper"], question, department=estate["hr"], data_sets=both)
        finally:
            retrieval.RELEVANCE_FLOOR = retrieval_floor
        return max((passage.score for passage in passages), default=0.0)

    related = [best(question) for questions in RELATED.values() for question in questions]
    unrelated = [best(question) for question in UNRELATED]
    print(f"related: {sorted(related)}; unrelated: {sorted(unrelated)}")
    assert max(unrelated) < RELEVANCE_FLOOR < min(related)


def test_the_questions_embedding_is_metered_for_the_paying_department(estate):
    member = make_user(department=estate["hr"])
    ask(estate["hr_helper"], "Can I work from home?", department=estate["hr"], user_id=member.pk)
    record = UsageRecord.objects.filter(source=UsageRecord.Source.CHAT).get()
    assert record.department == estate["hr"]
    assert record.user == member
    assert record.deployment.name == "grounding-embeddings"
    assert record.input_tokens > 0
    assert record.output_tokens == 0


def test_no_data_sets_or_no_question_ask_nothing(estate):
    assert ask(estate["hr_helper"], "parental leave", department=estate["hr"], data_sets=[]) == []
    assert ask(estate["hr_helper"], "   ", department=estate["hr"]) == []
    assert not UsageRecord.objects.filter(source=UsageRecord.Source.CHAT).exists()


def test_a_deleted_documents_leftover_passages_are_never_quoted(estate):
    question = "How many weeks of parental leave do I get?"
    assert ask(estate["hr_helper"], question, department=estate["hr"])
    # The row went (a removal mid-way) while its passages are still in the index.
    handbook = estate["handbook"]
    type(handbook).objects.filter(pk=handbook.pk).update(state="deleting")
    assert ask(estate["hr_helper"], question, department=estate["hr"]) == []


def test_the_hybrid_query_speaks_the_pinned_sdks_api_version():
    """retrieval sends its query through the SDK's pipeline with the version the SDK itself uses: a
    new azure-search-documents with another default fails here first."""
    from azure.core.credentials import AzureKeyCredential
    from azure.search.documents import SearchClient

    from provisioning.azure import SEARCH_API_VERSION

    client = SearchClient("https://example.search.windows.net", "passages", AzureKeyCredential("key"))
    assert client._config.api_version == SEARCH_API_VERSION
