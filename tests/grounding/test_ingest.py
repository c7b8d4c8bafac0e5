"""Ingestion against the emulator through the official SDKs: a document read, cut into passages,
embedded with the zone's embeddings deployment, indexed in its search service; new versions,
refusals, waits, Azure down, removal and retention."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from grounding import ingest as ingestion
from grounding.index import passages
from grounding.models import Document
from grounding.retention import documents_purge_expired
from grounding.tasks import MAX_TRIES, document_ingest_task
from money.models import UsageRecord
from org.models import Membership
from provisioning.models import SearchService
from tests.factories import make_department, make_landing_zone, make_user
from tests.grounding.backend import ingest, make_data_set, make_document, new_version
from tests.grounding.documents import pdf_bytes

HANDBOOK = b"""# Leave

## Parental leave

Every parent may take sixteen weeks of paid parental leave after a birth or an adoption.
Tell your lead eight weeks before it starts.

## Remote work

You may work from home up to three days a week when your team agrees.
"""


@pytest.fixture
def hr(db):
    return make_department(name="HR", chat_retention_days=7)


@pytest.fixture
def hr_lead(hr):
    return make_user(email="hana@example.com", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def handbook_set(hr, hr_lead, search_zone):
    return make_data_set(department=hr, owner=hr_lead, zone=search_zone, name="Handbook")


@pytest.fixture(autouse=True)
def _documents_in_the_tests_folder(documents_folder):
    return documents_folder


def indexed(service: SearchService, **filters: str) -> list[dict[str, Any]]:
    expression = " and ".join(f"{field} eq '{value}'" for field, value in filters.items()) or None
    return list(passages(service).search(search_text="*", filter=expression, top=1000))


def test_a_document_is_read_embedded_indexed_and_metered(search_backend, handbook_set, hr, hr_lead, settings):
    document = make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK, uploaded_by=hr_lead)
    document = ingest(document)
    assert document.state == Document.State.INDEXED, document.state_reason
    assert document.state_reason == ""
    assert document.passages >= 2  # two headings: two passages
    assert document.indexed_bytes > document.passages * 4 * 1536
    assert document.embedding_tokens > 0
    assert document.indexed_at is not None
    rows = indexed(search_backend, document=document.uid)
    assert len(rows) == document.passages
    assert {row["department"] for row in rows} == {"hr"}
    assert {row["data_set"] for row in rows} == {str(handbook_set.pk)}
    assert any("Parental leave" in row["heading"] and "sixteen weeks" in row["content"] for row in rows)
    usage = UsageRecord.objects.get(source=UsageRecord.Source.INGESTION)
    assert usage.department == hr
    assert usage.user == hr_lead
    assert usage.deployment == search_backend.embeddings_deployment
    assert usage.input_tokens == document.embedding_tokens
    # At the embeddings model's price in force (the shipped price list).
    assert usage.price.model_name == settings.GROUNDING_EMBEDDINGS_MODEL
    assert usage.price.input_per_million > 0
    assert usage.cost == usage.price.input_per_million * usage.input_tokens / Decimal(1_000_000)


def test_pdf_pages_are_counted_and_kept_on_passages(search_backend, handbook_set):
    content = pdf_bytes(["Expenses are claimed within thirty days.", "Hotels above the limit need approval."])
    document = ingest(make_document(data_set=handbook_set, name="expenses.pdf", content=content))
    assert document.state == Document.State.INDEXED, document.state_reason
    assert document.pages == 2
    assert {row["page"] for row in indexed(search_backend, document=document.uid)} <= {1, 2}


def test_a_new_version_replaces_the_old_ones_passages(search_backend, handbook_set):
    document = ingest(
        make_document(data_set=handbook_set, name="policy.md", content=b"Old rule: travel by train.")
    )
    old_ids = {row["id"] for row in indexed(search_backend, document=document.uid)}
    document = ingest(new_version(document, b"New rule: travel by bus.\n\nAnother paragraph about bicycles."))
    assert document.state == Document.State.INDEXED
    rows = indexed(search_backend, document=document.uid)
    assert {row["version"] for row in rows} == {2}
    assert not old_ids & {row["id"] for row in rows}
    assert all("train" not in row["content"] for row in rows)


def test_running_a_run_again_is_safe(search_backend, handbook_set):
    document = ingest(make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK))
    # The same message delivered twice: the run is over, nothing changes.
    assert ingestion.document_ingest(document.pk, document.run_token) is None
    again = ingest(document)  # and the same version queued again: the same passages, not twice
    assert again.passages == document.passages
    assert len(indexed(search_backend, document=document.uid)) == document.passages


def test_a_superseded_run_does_nothing(search_backend, handbook_set):
    document = make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK)
    ingestion.ingestion_start(document)
    old_token = document.run_token
    ingestion.ingestion_start(document)
    assert ingestion.document_ingest(document.pk, old_token) is None
    assert Document.objects.get(pk=document.pk).state == Document.State.QUEUED


def test_a_refused_file_fails_with_its_reason_and_others_go_on(search_backend, handbook_set):
    liar = ingest(
        make_document(data_set=handbook_set, name="report.pdf", content=b"this is not a pdf at all")
    )
    assert liar.state == Document.State.FAILED
    assert liar.state_reason  # the refusal's own words
    assert "pdf" in liar.state_reason.lower()
    fine = ingest(make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK))
    assert fine.state == Document.State.INDEXED


def test_a_document_waits_for_its_zones_search_service(emulator, settings, hr, hr_lead):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    zone = make_landing_zone(owner_department=hr, allowed_regions=["swedencentral"])
    data_set = make_data_set(department=hr, owner=hr_lead, zone=zone)
    document = make_document(data_set=data_set, name="handbook.md", content=HANDBOOK)
    ingestion.ingestion_start(document)
    wait = ingestion.document_ingest(document.pk, document.run_token)
    assert wait == ingestion.BACKEND_WAIT_SECONDS
    document.refresh_from_db()
    assert document.state == Document.State.QUEUED
    assert document.state_reason == "Waiting for the search service to be ready."
    service = SearchService.objects.get(landing_zone=zone)
    assert service.state == SearchService.State.PROVISIONING
    assert service.embeddings_deployment.department == hr


def test_a_throttled_deployment_makes_the_run_come_back_later(emulator, search_backend, handbook_set):
    emulator.inject(operation="embeddings", kind="429", retry_after_seconds=7, count=1)
    document = make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK)
    ingestion.ingestion_start(document)
    wait = ingestion.document_ingest(document.pk, document.run_token)
    assert wait == pytest.approx(7, abs=1)
    document.refresh_from_db()
    assert document.state == Document.State.EMBEDDING
    assert "busy" in document.state_reason
    assert ingestion.document_ingest(document.pk, document.run_token) is None
    assert Document.objects.get(pk=document.pk).state == Document.State.INDEXED


def test_a_search_service_that_does_not_answer_fails_the_document_after_some_tries(
    emulator, search_backend, handbook_set
):
    emulator.inject(operation="search", kind="503", count=100, retry_after_seconds=0)
    document = make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK)
    ingestion.ingestion_start(document)
    with pytest.raises(ingestion.IngestionInterrupted, match="The search service did not answer; retrying"):
        ingestion.document_ingest(document.pk, document.run_token)
    # The task, run eagerly: its retries come one after another, then it gives up.
    document_ingest_task.apply(args=(document.pk, document.run_token))
    document.refresh_from_db()
    assert document.state == Document.State.FAILED
    assert document.state_reason.startswith("The search service did not answer after several tries")
    assert MAX_TRIES >= 3


def test_removal_deletes_passages_files_and_row(search_backend, handbook_set):
    document = ingest(make_document(data_set=handbook_set, name="policy.md", content=b"Version one text."))
    first_file = document.file.name
    document = ingest(new_version(document, b"Version two text."))
    storage = document.file.storage
    assert storage.exists(first_file)
    assert storage.exists(document.file.name)
    ingestion.removal_start(document)
    ingestion.document_remove(document.pk, document.run_token)
    assert not Document.objects.filter(pk=document.pk).exists()
    assert indexed(search_backend, document=document.uid) == []
    assert not storage.exists(first_file)
    assert not storage.exists(document.file.name)
    assert AuditEvent.objects.filter(verb="document.deleted", object_id=str(document.pk)).exists()


def test_retention_removes_documents_older_than_the_departments_chat_retention(
    search_backend, handbook_set, hr_lead, search_zone
):
    old = make_document(data_set=handbook_set, name="old.md", content=b"Old text.")
    Document.objects.filter(pk=old.pk).update(uploaded_at=timezone.now() - timedelta(days=8))
    recent = make_document(data_set=handbook_set, name="recent.md", content=b"Recent text.")
    history_off = make_department(name="Finance", chat_retention_days=0)
    finance_set = make_data_set(department=history_off, owner=hr_lead, zone=search_zone)
    kept = make_document(data_set=finance_set, name="kept.md", content=b"Kept text.")
    Document.objects.filter(pk=kept.pk).update(uploaded_at=timezone.now() - timedelta(days=400))

    assert documents_purge_expired() == 1
    assert documents_purge_expired() == 0  # safe to run twice
    assert Document.objects.get(pk=old.pk).state == Document.State.DELETING
    assert Document.objects.get(pk=recent.pk).state != Document.State.DELETING
    assert Document.objects.get(pk=kept.pk).state != Document.State.DELETING
    assert AuditEvent.objects.filter(verb="document.expired", object_id=str(old.pk)).exists()


def test_what_a_data_set_stores_is_recorded_for_the_search_bill_as_it_changes(
    search_backend, handbook_set, hr, hr_lead
):
    from provisioning.models import SearchStorage

    document = ingest(make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK))
    [stored] = SearchStorage.objects.filter(service=search_backend, data_set_id=handbook_set.pk)
    assert (stored.department, stored.stored_bytes) == (hr, document.indexed_bytes)

    ingestion.removal_start(document)
    ingestion.document_remove(document.pk, Document.objects.get(pk=document.pk).run_token)

    assert SearchStorage.objects.get(service=search_backend, data_set_id=handbook_set.pk).stored_bytes == 0


def test_azure_openai_down_is_retried_and_then_the_run_goes_on(emulator, search_backend, handbook_set):
    emulator.inject(operation="embeddings", kind="503", count=1)
    document = make_document(data_set=handbook_set, name="handbook.md", content=HANDBOOK)
    ingestion.ingestion_start(document)
    with pytest.raises(ingestion.IngestionInterrupted, match="Azure OpenAI did not answer"):
        ingestion.document_ingest(document.pk, document.run_token)
    assert Document.objects.get(pk=document.pk).state == Document.State.EMBEDDING
    assert ingestion.document_ingest(document.pk, document.run_token) is None
    assert Document.objects.get(pk=document.pk).state == Document.State.INDEXED


def _action(key: str, action: str = "upload") -> dict[str, Any]:
    return {
        "@search.action": action,
        "id": key,
        "content": f"Passage {key}",
        "department": "hr",
        "data_set": "1",
        "document": "d",
        "version": 1,
        "title": "t.md",
        "page": 0,
        "heading": "",
    }


def test_a_batch_the_search_service_finds_too_large_is_sent_again_in_halves(search_backend):
    # Azure takes at most 1,000 actions a request (413 above): the halves go, and every one lands.
    ingestion._ensure_index(search_backend)
    client = passages(search_backend)
    results = ingestion._index_actions(
        client, search_backend.index_name, [_action(f"p{n}") for n in range(1001)]
    )
    assert len(results) == 1001
    assert all(result.succeeded and result.status_code == 201 for result in results)
    assert client.get_document_count() == 1001


def test_each_actions_own_result_is_read_and_a_missing_index_is_not_found(search_backend):
    from azure.core.exceptions import ResourceNotFoundError

    ingestion._ensure_index(search_backend)
    client = passages(search_backend)
    kept, refused = ingestion._index_actions(
        client, search_backend.index_name, [_action("kept"), _action("never-uploaded", "merge")]
    )
    assert (kept.key, kept.succeeded) == ("kept", True)
    assert (refused.key, refused.succeeded, refused.status_code) == ("never-uploaded", False, 404)
    assert refused.error_message
    with pytest.raises(ResourceNotFoundError):
        ingestion._index_actions(client, "no-such-index", [_action("x")])
