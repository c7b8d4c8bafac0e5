"""Ingestion: a document version read, cut into passages, embedded and indexed.

Thin Celery tasks (grounding/tasks.py) call the services here; each is idempotent and guarded by
the document's run token, so a duplicate or superseded message does nothing and re-running is
safe. A document that fails is marked failed with its reason; the others go on.

A run goes queued -> extracting -> embedding -> indexing -> indexed. Passages are embedded and
uploaded batch by batch (an upload of the same passage id replaces it), so a run interrupted by
a throttled deployment or a worker that died goes on from the passages the index already has
instead of paying for their embeddings twice. The older versions' passages are deleted only once
the new version's are all in, so an assistant never loses the document in between. No database
transaction is open while Azure answers; each state change is a short one that first checks,
under the document's lock, that the run is still the current one.
"""

import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    map_error,
)
from azure.search.documents import SearchClient
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from grounding.chunks import Chunk, chunk_document
from grounding.embeddings import (
    EmbeddingsBusy,
    EmbeddingsRefused,
    EmbeddingsUnavailable,
    batches,
    embed_passages,
    passage_client,
    tokens_per_minute,
)
from grounding.extract import Section, read_document
from grounding.files import FileRefused
from grounding.index import passages_index
from grounding.models import Document
from grounding.storage import search_storage_record
from money.models import UsageRecord
from money.usage import usage_record_create
from provisioning.azure import search_client, search_documents_request, search_index_client
from provisioning.azure_errors import PermanentAzureError, TransientAzureError, azure_call
from provisioning.models import ModelDeployment, SearchService
from provisioning.search import SearchBackendRefused, search_backend_for

logger = logging.getLogger(__name__)

State = Document.State
INGESTING = [State.QUEUED, State.EXTRACTING, State.EMBEDDING, State.INDEXING]
# How often a document waiting for its zone's search backend looks again.
BACKEND_WAIT_SECONDS = 5.0
# Passages uploaded to the index in one request (Azure takes up to 1,000 and 16 MB).
UPLOAD_BATCH = 200
# Ids read from the index a page at a time (Azure's largest page).
ID_PAGE = 1000
WAITING_FOR_BACKEND = "Waiting for the search service to be ready."
T = TypeVar("T")


class IngestionInterrupted(Exception):
    """Azure (search or OpenAI) did not answer: the task tries again later. The message says so in
    a lead's words; `gave_up` is what the document says once the task stops trying."""

    def __init__(self, message: str, *, gave_up: str) -> None:
        super().__init__(message)
        self.gave_up = gave_up


def search_down() -> IngestionInterrupted:
    return IngestionInterrupted(
        "The search service did not answer; retrying.",
        gave_up="The search service did not answer after several tries. Upload the file again later, "
        "or ask the platform team if it keeps failing.",
    )


def openai_down() -> IngestionInterrupted:
    return IngestionInterrupted(
        "Azure OpenAI did not answer while embedding the document; retrying.",
        gave_up="Azure OpenAI did not answer after several tries while embedding the document. "
        "Upload the file again later, or ask the platform team if it keeps failing.",
    )


def ingestion_start(document: Document) -> None:
    """Queues the document's current version for ingestion (after the caller's transaction
    commits): a new run token, so any earlier run of an older version stops at its next step."""
    from grounding.tasks import document_ingest_task

    document.run_token = uuid.uuid4().hex
    document.state = Document.State.QUEUED
    document.state_reason = ""
    document.state_changed_at = timezone.now()
    document.save(update_fields=["run_token", "state", "state_reason", "state_changed_at"])
    token = document.run_token
    transaction.on_commit(lambda: document_ingest_task.delay(document.pk, token))


def document_ingest(document_id: int, run_token: str) -> float | None:
    """Extract, chunk, embed, index; the document's state follows each step. Returns seconds
    until the task should look again (the search backend is still being made, or the embeddings
    deployment is at its limit), or None when the run ended (indexed, failed, or superseded).
    Raises IngestionInterrupted when Azure did not answer (the task retries with backoff)."""
    document = _current(document_id, run_token)
    if document is None:
        return None
    data_set = document.data_set
    try:
        service = search_backend_for(data_set.landing_zone, requested_for=data_set.department)
    except SearchBackendRefused as refusal:
        _fail(document_id, run_token, str(refusal))
        return None
    if service.state == SearchService.State.FAILED:
        _fail(
            document_id,
            run_token,
            f"The search service of {data_set.landing_zone.name} could not be set up: "
            f"{service.status_message}",
        )
        return None
    if service.state != SearchService.State.ACTIVE:
        _mark(document_id, run_token, State.QUEUED, WAITING_FOR_BACKEND)
        return BACKEND_WAIT_SECONDS
    try:
        return _ingest(document, service, run_token)
    except FileRefused as refused:
        _fail(document_id, run_token, refused.message)
    except (EmbeddingsRefused, PermanentAzureError) as refused:
        _fail(document_id, run_token, str(refused))
    return None


def document_ingest_note(*, document_id: int, run_token: str, message: str) -> None:
    """The run will try again: the document says why it is not moving (its state unchanged)."""
    with transaction.atomic():
        document = _locked(document_id, run_token)
        if document is not None and document.state_reason != message:
            document.state_reason = message
            document.save(update_fields=["state_reason"])


def document_ingest_give_up(*, document_id: int, run_token: str, message: str) -> None:
    """The task stopped retrying: the document is failed with `message`."""
    _fail(document_id, run_token, message)


def _ingest(document: Document, service: SearchService, token: str) -> float | None:
    if not _mark(document.pk, token, State.EXTRACTING, ""):
        return None
    sections = read_document(name=document.name, data=_file_bytes(document))
    chunks = chunk_document(sections, document_id=document.uid, version=document.version)
    if not _mark(document.pk, token, State.EMBEDDING, ""):
        return None
    _ensure_index(service)
    client = _passages(service)
    assert service.embeddings_deployment_id is not None  # an active backend has one
    embeddings = ModelDeployment.objects.select_related("account").get(pk=service.embeddings_deployment_id)
    indexed = _passage_ids(client, f"document eq '{document.uid}' and version eq {document.version}")
    wait = _embed_and_upload(
        document, token, client, service.index_name, embeddings, [c for c in chunks if c.id not in indexed]
    )
    if wait is not None:
        return wait
    if not _mark(document.pk, token, State.INDEXING, ""):
        return None
    _delete_passages(client, f"document eq '{document.uid}' and version ne {document.version}")
    _finish(document.pk, token, chunks=chunks, pages=_page_count(sections))
    # What the data set stores changed: the search service's hours are split by it from today.
    search_storage_record(service=service)
    return None


def _embed_and_upload(
    document: Document,
    token: str,
    client: SearchClient,
    index_name: str,
    embeddings: ModelDeployment,
    chunks: Sequence[Chunk],
) -> float | None:
    """Embed and upload the passages batch by batch, within a minute of the deployment's tokens
    per call (the task comes back for the rest), metering what was embedded however it ends."""
    per_minute = tokens_per_minute(embeddings)
    openai_client = passage_client(embeddings)
    started, spent = time.monotonic(), 0
    try:
        for batch in batches([chunk.tokens for chunk in chunks], tokens_per_minute=per_minute):
            if spent >= per_minute:
                # This call had its minute of the deployment: the others' documents get theirs.
                return max(60.0 - (time.monotonic() - started), 1.0)
            part = [chunks[position] for position in batch]
            try:
                embedded = embed_passages(openai_client, embeddings, [chunk.text for chunk in part])
            except EmbeddingsBusy as busy:
                _mark(document.pk, token, State.EMBEDDING, f"{busy}")
                return busy.retry_after
            except EmbeddingsUnavailable as error:
                raise openai_down() from error
            spent += embedded.tokens
            _upload(client, index_name, document, part, embedded.vectors)
            if not _mark(document.pk, token, State.EMBEDDING, ""):
                return None  # removed or replaced meanwhile: stop spending on it
    finally:
        _meter(document, embeddings, spent)
    return None


def _passages(service: SearchService) -> SearchClient:
    """The passages index, with no retries inside the SDK: a worker does not sleep through a busy
    search service, the task comes back later (grounding.tasks)."""
    return search_client(service.endpoint, service.index_name, retries=0)


def _ensure_index(service: SearchService) -> None:
    """The passages index (grounding.index), made on the service's first use."""
    indexes = search_index_client(service.endpoint, retries=0)
    try:
        _search(lambda: indexes.get_index(service.index_name))
    except ResourceNotFoundError:
        _search(lambda: indexes.create_or_update_index(passages_index(service.index_name)))


def _search(call: Callable[[], T]) -> T:
    try:
        result: T = azure_call(None, "index the document's passages", call)
    except TransientAzureError as error:
        raise search_down() from error
    return result


def _upload(
    client: SearchClient,
    index_name: str,
    document: Document,
    chunks: Sequence[Chunk],
    vectors: list[list[float]],
) -> None:
    data_set = document.data_set
    rows = [
        {
            "@search.action": "upload",
            "id": chunk.id,
            "content": chunk.text,
            "embedding": vector,
            "department": data_set.department.slug,
            "data_set": str(data_set.pk),
            "document": document.uid,
            "version": document.version,
            "title": document.name,
            "page": chunk.page or 0,
            "heading": _heading(chunk),
        }
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    for start in range(0, len(rows), UPLOAD_BATCH):
        results = _search(
            functools.partial(_index_actions, client, index_name, rows[start : start + UPLOAD_BATCH])
        )
        failed = [result for result in results if not result.succeeded]
        if failed:
            if any(result.status_code >= 500 or result.status_code == 429 for result in failed):
                raise search_down()
            raise PermanentAzureError(
                f"The search service refused {len(failed)} passages of the document: "
                f"{failed[0].error_message}"
            )


@dataclass(frozen=True)
class Indexed:
    """One action's result in a `docs/search.index` answer."""

    key: str
    succeeded: bool
    status_code: int
    error_message: str


def _index_actions(client: SearchClient, index_name: str, actions: list[dict[str, Any]]) -> list[Indexed]:
    """Azure AI Search's `docs/search.index` for a batch of actions, sent through the SDK client's
    own pipeline (its Entra ID token, request id) with `send_request`, as retrieval sends its
    search (grounding.retrieval). The SDK's shortcut (`upload_documents`) builds a model of every
    action and turns each passage's 1536 numbers into JSON one number at a time through its
    serializer: two fifths of a worker's time for a document, in a profile of 200 documents
    ingested at once. Here the standard library's encoder writes the body. As the SDK does, a
    batch Azure finds too large (413) is sent again in halves, and the errors are the SDK's
    (`HttpResponseError` and its kinds), which `azure_call` sorts. tests/grounding/test_ingest.py
    runs this against the emulator, so an SDK that changes the route or the answer's shape fails
    there."""
    response = client.send_request(search_documents_request(index_name, "search.index", {"value": actions}))
    if response.status_code == 413 and len(actions) > 1:
        half = len(actions) // 2
        return _index_actions(client, index_name, actions[:half]) + _index_actions(
            client, index_name, actions[half:]
        )
    if response.status_code not in (200, 207):
        map_error(response.status_code, response, INDEX_ERRORS)
        raise HttpResponseError(response=response)
    return [
        Indexed(
            key=str(result.get("key")),
            succeeded=bool(result.get("status")),
            status_code=int(result.get("statusCode") or 0),
            error_message=str(result.get("errorMessage") or ""),
        )
        for result in response.json()["value"]
    ]


# The statuses the SDK's own operation raises as their own kinds of error.
INDEX_ERRORS: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
}


def _heading(chunk: Chunk) -> str:
    return " > ".join([chunk.sheet, *chunk.heading_path] if chunk.sheet else chunk.heading_path)


def _passage_ids(client: SearchClient, filter_: str) -> set[str]:
    ids: set[str] = set()
    while True:
        page = _search(
            lambda: [
                row["id"]
                for row in client.search(
                    search_text="*", filter=filter_, select=["id"], top=ID_PAGE, skip=len(ids)
                )
            ]
        )
        ids.update(page)
        if len(page) < ID_PAGE:
            return ids


def _delete_passages(client: SearchClient, filter_: str) -> int:
    """Delete every passage the filter finds. Azure's index is near-real-time: a passage just
    deleted may still be found for a moment, so ids already deleted do not count as left."""
    deleted: set[str] = set()
    while True:
        found = _search(
            lambda: [
                row["id"]
                for row in client.search(search_text="*", filter=filter_, select=["id"], top=ID_PAGE)
            ]
        )
        left = [passage_id for passage_id in found if passage_id not in deleted]
        if not left:
            return len(deleted)
        doomed = [{"id": passage_id} for passage_id in left]
        _search(functools.partial(client.delete_documents, documents=doomed))
        deleted.update(left)


def _file_bytes(document: Document) -> bytes:
    try:
        with document.file.open("rb") as stream:
            data: bytes = stream.read()
    except OSError as error:
        raise FileRefused("The uploaded file could not be read from storage; upload it again.") from error
    return data


def _page_count(sections: Sequence[Section]) -> int | None:
    pages = {section.page for section in sections if section.page is not None}
    if pages:
        return max(pages)
    sheets = {section.sheet for section in sections if section.sheet is not None}
    return len(sheets) or None


def _indexed_bytes(chunks: Sequence[Chunk], document: Document) -> int:
    """What the passages take in the index: their text and fields, and each vector's floats."""
    per_passage = (
        4 * settings.GROUNDING_EMBEDDING_DIMENSIONS + len(document.uid) + len(document.name.encode())
    )
    return sum(len(chunk.text.encode()) + len(_heading(chunk).encode()) + per_passage for chunk in chunks)


# State changes ---------------------------------------------------------------------------------


def _current(document_id: int, token: str) -> Document | None:
    """The document, if this run is its current ingestion run."""
    document = (
        Document.objects.select_related("data_set__landing_zone", "data_set__department", "uploaded_by")
        .filter(pk=document_id)
        .first()
    )
    if document is None or document.run_token != token or document.state not in INGESTING:
        return None
    return document


def _locked(document_id: int, token: str) -> Document | None:
    document = Document.objects.select_for_update().filter(pk=document_id).first()
    if document is None or document.run_token != token or document.state not in INGESTING:
        return None
    return document


def _mark(document_id: int, token: str, state: str, reason: str) -> bool:
    """Move the run to `state` with `reason`; False when the run is no longer the current one."""
    with transaction.atomic():
        document = _locked(document_id, token)
        if document is None:
            return False
        if document.state != state or document.state_reason != reason:
            document.state = state
            document.state_reason = reason
            document.state_changed_at = timezone.now()
            document.save(update_fields=["state", "state_reason", "state_changed_at"])
    return True


def _finish(document_id: int, token: str, *, chunks: Sequence[Chunk], pages: int | None) -> None:
    with transaction.atomic():
        document = _locked(document_id, token)
        if document is None:
            return
        document.state = State.INDEXED
        document.state_reason = ""
        document.state_changed_at = document.indexed_at = timezone.now()
        document.passages = len(chunks)
        document.pages = pages
        document.indexed_bytes = _indexed_bytes(chunks, document)
        document.save(
            update_fields=[
                "state",
                "state_reason",
                "state_changed_at",
                "indexed_at",
                "passages",
                "pages",
                "indexed_bytes",
            ]
        )
    logger.info("Document %s version %s is indexed (%s passages)", document_id, document.version, len(chunks))


def _fail(document_id: int, token: str, reason: str) -> None:
    with transaction.atomic():
        document = _locked(document_id, token)
        if document is None:
            return
        document.state = State.FAILED
        document.state_reason = reason
        document.state_changed_at = timezone.now()
        document.save(update_fields=["state", "state_reason", "state_changed_at"])
    logger.info("Document %s failed: %s", document_id, reason)


def _meter(document: Document, embeddings: ModelDeployment, tokens: int) -> None:
    """The embedding tokens, on the embeddings deployment at its price, paid by the data set's
    department: whatever happened to the run, the tokens were spent."""
    if not tokens:
        return
    with transaction.atomic():
        usage_record_create(
            department=document.data_set.department,
            user=document.uploaded_by,
            deployment=embeddings,
            input_tokens=tokens,
            cached_input_tokens=0,
            output_tokens=0,
            source=UsageRecord.Source.INGESTION,
        )
        Document.objects.filter(pk=document.pk).update(embedding_tokens=F("embedding_tokens") + tokens)


# Removal ---------------------------------------------------------------------------------------


def removal_start(document: Document) -> None:
    """Marks the document as being deleted and queues the removal of its passages and file."""
    from grounding.tasks import document_remove_task

    document.run_token = uuid.uuid4().hex
    document.state = Document.State.DELETING
    document.state_changed_at = timezone.now()
    document.save(update_fields=["run_token", "state", "state_changed_at"])
    token = document.run_token
    transaction.on_commit(lambda: document_remove_task.delay(document.pk, token))


def document_remove(document_id: int, run_token: str) -> None:
    """Deletes the document's passages from the index, its files from storage, then its row.
    Raises IngestionInterrupted when the search service did not answer (the task retries)."""
    document = (
        Document.objects.select_related("data_set__department", "data_set__landing_zone")
        .filter(pk=document_id)
        .first()
    )
    if document is None or document.run_token != run_token or document.state != State.DELETING:
        return
    service = SearchService.objects.filter(
        landing_zone=document.data_set.landing_zone, state=SearchService.State.ACTIVE
    ).first()
    if service is not None:
        _ensure_index(service)
        _delete_passages(_passages(service), f"document eq '{document.uid}'")
    _delete_files(document)
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document_id).first()
        if locked is None or locked.run_token != run_token or locked.state != State.DELETING:
            return
        audit_record(
            actor=None,
            verb="document.deleted",
            target=locked,
            department=document.data_set.department,
            before=_snapshot(locked),
        )
        locked.delete()
    if service is not None:
        search_storage_record(service=service)


def document_remove_give_up(*, document_id: int, run_token: str, message: str) -> None:
    """The removal stopped retrying: the document stays marked for deletion and says why."""
    Document.objects.filter(pk=document_id, run_token=run_token, state=State.DELETING).update(
        state_reason=message
    )


def _delete_files(document: Document) -> None:
    """Every version's file: a version's file stays until the document goes, so a citation of it
    opens while a newer version is read."""
    storage = document.file.storage
    folder = f"data-sets/{document.data_set_id}/{document.uid}"
    names = [document.file.name] if document.file.name else []
    try:
        versions, files = storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        versions, files = [], []
    names += [f"{folder}/{name}" for name in files]
    for version in versions:
        try:
            names += [f"{folder}/{version}/{name}" for name in storage.listdir(f"{folder}/{version}")[1]]
        except FileNotFoundError:
            continue
    for name in dict.fromkeys(names):
        storage.delete(name)


def _snapshot(document: Document) -> dict[str, Any]:
    return {
        "data_set": document.data_set_id,
        "name": document.name,
        "version": document.version,
        "passages": document.passages,
        "sha256": document.sha256,
    }
