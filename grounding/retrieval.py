"""Retrieval for a grounded turn (chat or gateway): the question embedded, a hybrid query on the
zone's passages index filtered on the server by the data sets the assistant is grounded on (its
active groundings, read here, never anything the caller sends).

One query per landing zone (an assistant's data sets are nearly always in one zone; a shared
assistant combining departments of several zones asks each zone's service): full text and the
question's vector together, `filter` built here from the data sets' ids only, `top` the
passages a turn quotes. The hybrid score (Reciprocal Rank Fusion) ranks passages but says
nothing of how relevant the best one is, so the floor is the cosine similarity between the
question's vector and each passage's (returned with it): below it, a passage does not answer the
question, and a question nothing answers gets no passages (the assistant then says so).

Only passages of the documents' current, indexed versions are returned: a passage left behind
by a version being replaced, or by a document being deleted, is never quoted.
"""

import asyncio
import time
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azure.search.documents.aio import SearchClient as AsyncSearchClient
from django.conf import settings
from django.db.models import QuerySet

from calls.database import database_job, database_later, database_rows
from grounding.embeddings import embed_question
from grounding.models import DataSet, Document, Grounding
from money.usage import usage_record_create
from org.models import Department, User
from provisioning.azure import async_search_client, search_documents_request
from provisioning.models import ModelDeployment, SearchService

# The cosine similarity below which a passage does not answer the question. Measured against the
# emulator's embeddings (tests/grounding/test_retrieval.py::test_the_relevance_floor_separates):
# questions a passage answers score 0.45-0.6 with it, unrelated questions (other topics, small
# talk) below 0.06 with every passage; the demo handbook's questions 0.25-0.36 with their page.
# text-embedding-3 models score unrelated English text around 0.05-0.2 and related text above
# 0.3, so the same floor holds on Azure.
RELEVANCE_FLOOR = 0.2
SELECT = ["id", "content", "data_set", "document", "version", "title", "page", "heading"]


@dataclass(frozen=True)
class Passage:
    number: int  # its citation number in this answer: [1], [2], ...
    id: str  # the chunk id in the index
    document_id: int
    document_name: str
    data_set_id: int
    data_set_name: str
    department_name: str  # whose documents answered
    page: int | None  # page, slide or sheet; None when the format has none
    heading: str
    text: str
    score: float


def grounded_data_sets(deployment: ModelDeployment) -> list[DataSet]:
    """The data sets the assistant is grounded on now (active groundings): read at every turn, so
    removing one takes effect on the next turn."""
    active = Grounding.objects.active().filter(deployment=deployment).values("data_set_id")
    return list(DataSet.objects.filter(pk__in=active).select_related("department").order_by("pk"))


def grounded_data_set_names(deployments: Sequence[ModelDeployment]) -> dict[int, list[str]]:
    """deployment id -> the names of the data sets it is grounded on now, for pickers and pages."""
    names: dict[int, list[str]] = defaultdict(list)
    rows = (
        Grounding.objects.active()
        .filter(deployment__in=list(deployments))
        .order_by("data_set__name")
        .values_list("deployment_id", "data_set__name")
    )
    for deployment_id, name in rows:
        names[deployment_id].append(name)
    return names


async def retrieve(
    *,
    deployment: ModelDeployment,
    data_sets: Sequence[DataSet],
    question: str,
    paying_department_id: int,
    user_id: int | None,
    source: str,
) -> list[Passage]:
    """The top passages (settings.GROUNDING_TOP_PASSAGES) that answer `question`, best first, only
    from `data_sets`; an empty list when nothing is relevant. The question's embedding tokens are
    metered as a usage record on the zone's embeddings deployment for the paying department."""
    if not data_sets or not question.strip():
        return []
    zones: dict[int, list[int]] = defaultdict(list)
    for data_set in data_sets:
        zones[data_set.landing_zone_id].append(data_set.pk)
    services = await _services_for(list(zones))
    found = await asyncio.gather(
        *(
            _search_zone(
                service, zones[service.landing_zone_id], question, paying_department_id, user_id, source
            )
            for service in services
        )
    )
    hits = sorted((hit for zone_hits in found for hit in zone_hits), key=lambda hit: -hit.similarity)
    hits = hits[: settings.GROUNDING_TOP_PASSAGES]
    if not hits:
        return []
    return _passages(hits, await _indexed_documents({hit.row["document"] for hit in hits}))


@dataclass(frozen=True)
class _Hit:
    row: dict[str, Any]
    similarity: float


# A zone's active search service, remembered in the process for a while: once active it stays so
# (and its endpoint and embeddings deployment do not change), so a turn need not read it again.
SERVICE_MEMORY_SECONDS = 60.0
_services: dict[int, tuple[float, SearchService]] = {}


async def _services_for(zone_ids: list[int]) -> list[SearchService]:
    now = time.monotonic()
    known = {zone: entry[1] for zone in zone_ids if (entry := _services.get(zone)) and entry[0] > now}
    missing = [zone for zone in zone_ids if zone not in known]
    if missing:
        for service in await database_job(_active_services, missing):
            known[service.landing_zone_id] = service
            _services[service.landing_zone_id] = (now + SERVICE_MEMORY_SECONDS, service)
    return list(known.values())


def forget_services() -> None:
    """Read the zones' services afresh at the next turn (tests; a service provisioned again)."""
    _services.clear()


def _active_services(zone_ids: list[int]) -> list[SearchService]:
    return list(
        SearchService.objects.filter(landing_zone_id__in=zone_ids, state=SearchService.State.ACTIVE)
        .select_related("embeddings_deployment__account")
        .exclude(embeddings_deployment__isnull=True)
    )


async def _search_zone(
    service: SearchService,
    data_set_ids: list[int],
    question: str,
    paying_department_id: int,
    user_id: int | None,
    source: str,
) -> list[_Hit]:
    embeddings = service.embeddings_deployment
    assert embeddings is not None
    embedded = await embed_question(embeddings, question)
    # Metered after the answer's urgent work, off the event loop; the tokens were spent anyway.
    _meter_later(embeddings, embedded.tokens, paying_department_id, user_id, source)
    vector = embedded.vectors[0]
    top = settings.GROUNDING_TOP_PASSAGES
    rows = await _hybrid_search(
        _client(service),
        service.index_name,
        {
            "search": question,
            "vectorQueries": [{"kind": "vector", "vector": vector, "k": top, "fields": "embedding"}],
            # Built here from the assistant's data sets' ids (integers), never from the caller's input.
            "filter": f"search.in(data_set, '{','.join(str(pk) for pk in data_set_ids)}', ',')",
            "top": top,
            "select": ",".join(SELECT),
            # Each passage's cosine similarity to the question, as the service computed it.
            "debug": "vector",
        },
    )
    hits = []
    for row in rows:
        similarity = _similarity(row)
        if similarity is not None and similarity >= RELEVANCE_FLOOR:
            hits.append(_Hit(row=row, similarity=similarity))
    return hits


async def _hybrid_search(
    client: AsyncSearchClient, index_name: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """Azure AI Search's `docs/search.post.search`, sent through the SDK client's own pipeline
    (its Entra ID token, retries, request id) with `send_request`, the SDK's documented way to send
    a request it has no shortcut for. The shortcut it has (`client.search`) turns the question's
    1536 numbers and the five answers' vectors into and out of its models one number at a time:
    half of the web process's time for a grounded turn, in a profile at 20 concurrent chats.
    tests/grounding/test_retrieval.py runs this against the emulator, so an SDK that changes the
    route or the answer's shape fails there."""
    response = await client.send_request(search_documents_request(index_name, "search.post.search", body))
    await response.read()
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["value"]
    return rows


def _similarity(row: dict[str, Any]) -> float | None:
    """The passage's cosine similarity to the question (`@search.documentDebugInfo`'s vector
    subscore for the embedding field); None when the vector side did not find it."""
    try:
        subscores = row["@search.documentDebugInfo"]["vectors"]["subscores"]
        similarity = subscores["vectors"][0]["embedding"]["vectorSimilarity"]
    except (KeyError, IndexError, TypeError):
        return None
    return float(similarity) if isinstance(similarity, int | float) else None


# One async client per event loop and search service: it keeps its connections (and the token)
# from one turn to the next; a client is bound to the loop that made it.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], AsyncSearchClient]]" = (
    weakref.WeakKeyDictionary()
)


def _client(service: SearchService) -> AsyncSearchClient:
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (service.endpoint, service.index_name)
    client = clients.get(key)
    if client is None:
        client = clients[key] = async_search_client(service.endpoint, service.index_name)
    return client


async def close_clients() -> None:
    """Close the running event loop's search clients and their connections (when the process
    stops, beside calls.transport.close_clients)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


@dataclass(frozen=True)
class _Indexed:
    """What a passage quotes of its document: the document's current indexed version."""

    uid: str
    pk: int
    name: str
    version: int
    data_set_id: int
    data_set_name: str
    department_name: str


def _indexed_documents_query(uids: set[str]) -> "QuerySet[Document, tuple[Any, ...]]":
    return (
        Document.objects.filter(uid__in=sorted(uids), state=Document.State.INDEXED.value)
        .order_by()
        # In `_Indexed`'s order.
        .values_list(
            "uid", "pk", "name", "version", "data_set_id", "data_set__name", "data_set__department__name"
        )
    )


async def _indexed_documents(uids: set[str]) -> dict[str, _Indexed]:
    """The hits' documents that are indexed, by uid: one query, which the turn waits for (as a job
    on the database thread it queued behind the other turns' preparations: p95 about 40 ms at 20
    chats in flight)."""
    rows = await database_rows(_indexed_documents_query(uids))
    return {row[0]: _Indexed(*row) for row in rows}


def _passages(hits: list[_Hit], documents: dict[str, _Indexed]) -> list[Passage]:
    """The hits as numbered passages with their documents' and data sets' names, only those of a
    document's current indexed version."""
    passages: list[Passage] = []
    for hit in hits:
        row = hit.row
        document = documents.get(row["document"])
        if (
            document is None
            or document.version != row["version"]
            or str(document.data_set_id) != row["data_set"]
        ):
            continue
        passages.append(
            Passage(
                number=len(passages) + 1,
                id=row["id"],
                document_id=document.pk,
                document_name=document.name,
                data_set_id=document.data_set_id,
                data_set_name=document.data_set_name,
                department_name=document.department_name,
                page=row.get("page") or None,
                heading=row.get("heading") or "",
                text=row["content"],
                score=round(hit.similarity, 4),
            )
        )
    return passages


def _meter_later(
    embeddings: ModelDeployment, tokens: int, department_id: int, user_id: int | None, source: str
) -> None:
    if not tokens:
        return
    task = asyncio.ensure_future(database_later(_meter, embeddings, tokens, department_id, user_id, source))
    _metering.add(task)
    task.add_done_callback(_metering.discard)


# Metering tasks under way (a task nobody holds may be collected before it ends).
_metering: "set[asyncio.Future[None]]" = set()


def _meter(
    embeddings: ModelDeployment, tokens: int, department_id: int, user_id: int | None, source: str
) -> None:
    usage_record_create(
        department=Department(pk=department_id),
        user=None if user_id is None else User(pk=user_id),
        deployment=embeddings,
        input_tokens=tokens,
        cached_input_tokens=0,
        output_tokens=0,
        source=source,
    )


async def metering_done() -> None:
    """Wait for the questions' usage records under way (tests, and a process stopping)."""
    while _metering:
        await asyncio.gather(*list(_metering), return_exceptions=True)
