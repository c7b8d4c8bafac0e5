"""A search request run against an index, as Azure AI Search answers `docs/search.post.search`:
the filter narrows the documents; full-text search ranks them by BM25; each vector query finds
its k nearest neighbours by cosine (exhaustively); more than one ranked list (hybrid, or several
vector queries) is fused by Reciprocal Rank Fusion as Azure fuses them; then skip, top, select
and count shape the answer. With `debug` "vector" (or "all") each result also carries its
subscores before fusion (`@search.documentDebugInfo`): the text side's BM25 score and, for each
vector query, every field's score and cosine similarity (`vectorSimilarity`), for the documents
that query found."""

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from provisioning.emulator.search.errors import bad_request, invalid_filter
from provisioning.emulator.search.filters import CompiledFilter, FilterError, compile_filter
from provisioning.emulator.search.schema import is_vector
from provisioning.emulator.search.store import Index
from provisioning.emulator.search.text import bm25_ranked, parse_simple

DEFAULT_TOP = 50
MAX_TOP = 1000
# Reciprocal Rank Fusion's constant, as Azure uses it.
RRF_K = 60
# `debug`'s modes (QueryDebugMode), joined with "|".
DEBUG_MODES = {"disabled", "semantic", "vector", "queryRewrites", "innerHits", "all"}
# How many of the text side's results a hybrid query fuses (Azure's maxTextRecallSize default).
HYBRID_TEXT_RECALL = 1000


@dataclass(frozen=True)
class VectorQuery:
    vector: list[float]
    fields: list[str]
    k: int
    weight: float


@dataclass(frozen=True)
class SearchRequest:
    search: str | None
    search_fields: list[str] | None
    mode_all: bool
    filter: str | None
    top: int | None
    skip: int
    select: list[str] | None
    count: bool
    vector_queries: list[VectorQuery]
    post_filter: bool
    order_by: list[str]
    debug_vector: bool = False


@dataclass(frozen=True)
class Subscores:
    """The lists a result was fused from, for `debug`: key -> BM25 score (None: no text side), and
    for each vector query, key -> field -> cosine similarity."""

    text: dict[str, float] | None
    vectors: list[dict[str, dict[str, float]]]

    def of(self, key: str) -> dict[str, Any]:
        """A result's `@search.documentDebugInfo`."""
        subscores: dict[str, Any] = {}
        if self.text is not None and key in self.text:
            subscores["text"] = {"searchScore": self.text[key]}
        subscores["vectors"] = [
            {
                field: {"searchScore": _vector_score(similarity), "vectorSimilarity": similarity}
                for field, similarity in found.get(key, {}).items()
            }
            for found in self.vectors
        ]
        subscores["documentBoost"] = 1.0
        return {"vectors": {"subscores": subscores}}


def _vector_score(similarity: float) -> float:
    # 1 / (1 + cosine distance), as Azure scores a cosine field.
    return 1.0 / (1.0 + (1.0 - similarity))


def names(value: Any, parameter: str) -> list[str] | None:
    """A list of names as the REST API takes it (a comma-separated string) or as a JSON array."""
    if value is None:
        return None
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value]
    raise bad_request(f"Invalid value for '{parameter}': a comma-separated list of field names.")


def _whole(
    value: Any, parameter: str, *, default: int | None, low: int = 0, high: int | None = None
) -> int | None:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f" and at most {high}" if high is not None else ""
        raise bad_request(f"Invalid value for '{parameter}': a whole number of at least {low}{bound}.")
    return int(value)


def parse_request(body: dict[str, Any], index: Index) -> SearchRequest:
    search = body.get("search")
    if search is not None and not isinstance(search, str):
        raise bad_request("Invalid value for 'search': a string.")
    mode = str(body.get("searchMode") or "any").lower()
    if mode not in ("any", "all"):
        raise bad_request("Invalid value for 'searchMode': any or all.")
    search_fields = names(body.get("searchFields"), "searchFields")
    searchable = index.searchable_fields()
    for name in search_fields or []:
        if name not in searchable:
            raise bad_request(
                f"Invalid expression: The field '{name}' in searchFields is not a searchable string field of the index."
            )
    select = names(body.get("select"), "select")
    fields = index.fields
    for name in select or []:
        if name != "*" and (name not in fields or not fields[name]["retrievable"]):
            raise bad_request(
                f"Invalid expression: Could not find a retrievable property named '{name}' on type 'search.document'."
            )
    filter_text = body.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise bad_request("Invalid value for 'filter': a string.")
    vector_filter_mode = str(body.get("vectorFilterMode") or "preFilter")
    if vector_filter_mode not in ("preFilter", "postFilter"):
        raise bad_request("Invalid value for 'vectorFilterMode': preFilter or postFilter.")
    return SearchRequest(
        debug_vector=_debug_vector(body.get("debug")),
        search=search,
        search_fields=search_fields,
        mode_all=mode == "all",
        filter=filter_text,
        top=_whole(body.get("top"), "top", default=None, high=MAX_TOP),
        skip=_whole(body.get("skip"), "skip", default=0, high=100_000) or 0,
        select=select,
        count=bool(body.get("count")),
        vector_queries=[_vector_query(query, index) for query in body.get("vectorQueries") or []],
        post_filter=vector_filter_mode == "postFilter",
        order_by=names(body.get("orderby"), "orderby") or [],
    )


def _debug_vector(value: Any) -> bool:
    """Whether `debug` asks for the vector subscores."""
    if value is None:
        return False
    modes = value.split("|") if isinstance(value, str) else None
    if modes is None or any(mode.strip() not in DEBUG_MODES for mode in modes):
        raise bad_request(
            f"Invalid value for 'debug': {value!r}. Use disabled, semantic, vector, queryRewrites, innerHits or "
            "all, several joined with '|'."
        )
    return any(mode.strip() in ("vector", "all") for mode in modes)


def _vector_query(query: Any, index: Index) -> VectorQuery:
    if not isinstance(query, dict):
        raise bad_request("Invalid value for 'vectorQueries': an array of vector queries.")
    kind = query.get("kind")
    if kind != "vector":
        raise bad_request(
            f"The vector query kind '{kind}' is not supported here: send 'vector' with the query's embedding "
            "(this index has no vectorizer).",
        )
    vector = query.get("vector")
    if (
        not isinstance(vector, list)
        or not vector
        or not all(isinstance(value, int | float) for value in vector)
    ):
        raise bad_request("Invalid value for 'vectorQueries.vector': a non-empty array of numbers.")
    fields = names(query.get("fields"), "vectorQueries.fields") or []
    if not fields:
        raise bad_request("Invalid value for 'vectorQueries.fields': name the vector fields to search.")
    for name in fields:
        definition = index.fields.get(name)
        if definition is None or not is_vector(definition):
            raise bad_request(f"The field '{name}' in the vector query is not a vector field of the index.")
        if definition["dimensions"] != len(vector):
            raise bad_request(
                f"The vector query's dimensions ({len(vector)}) do not match the field '{name}' ({definition['dimensions']})."
            )
    k = _whole(query.get("k"), "vectorQueries.k", default=DEFAULT_TOP, low=1, high=MAX_TOP) or DEFAULT_TOP
    weight = query.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise bad_request("Invalid value for 'vectorQueries.weight': a positive number.")
    return VectorQuery([float(value) for value in vector], fields, k, float(weight))


def run(request: SearchRequest, index: Index) -> tuple[list[tuple[str, float]], int, Subscores | None]:
    """The ranked (key, @search.score) of the result up to the page asked for (the whole result
    when it is ordered by a field), the whole result's count, and (`debug` vector) the subscores
    the results were fused from."""
    filter_text = (request.filter or "").strip()
    candidates = (
        index.filtered(filter_text, _filter(filter_text, index)) if filter_text else set(index.documents)
    )
    text_wanted = request.search is not None or not request.vector_queries
    lists: list[tuple[list[tuple[str, float]], float]] = []
    text_scores = None
    if text_wanted:
        # A hybrid query fuses the text side's best HYBRID_TEXT_RECALL only, as Azure does.
        recall = HYBRID_TEXT_RECALL if request.vector_queries else None
        rows = index.filtered_rows(filter_text) if filter_text else None
        text_ranked = _text_ranking(request, index, candidates, rows, recall)
        lists.append((text_ranked, 1.0))
        if request.debug_vector:
            text_scores = dict(text_ranked)
    similar: list[dict[str, dict[str, float]]] = []
    for query in request.vector_queries:
        if request.post_filter or not filter_text:
            ranked, fields = _nearest(query, index, None)
            ranked = [(key, score) for key, score in ranked if key in candidates]
        else:
            ranked, fields = _nearest(query, index, filter_text)
        lists.append((ranked, query.weight))
        similar.append({key: fields[key] for key, _score in ranked})
    if len(lists) == 1:
        ranked, count = lists[0][0], len(lists[0][0])
    else:
        page_end = request.skip + (request.top if request.top is not None else DEFAULT_TOP)
        ranked, count = _fused(lists, None if request.order_by else page_end)
    if request.order_by:
        ranked = _ordered(ranked, request.order_by, index)
    subscores = Subscores(text_scores, similar) if request.debug_vector else None
    return ranked, count, subscores


def _filter(text: str, index: Index) -> CompiledFilter:
    try:
        return compile_filter(text, index.fields)
    except FilterError as error:
        raise invalid_filter(str(error)) from None


def _text_ranking(
    request: SearchRequest,
    index: Index,
    candidates: set[str],
    rows: npt.NDArray[np.bool_] | None,
    recall: int | None,
) -> list[tuple[str, float]]:
    query = parse_simple(request.search, mode_all=request.mode_all)
    fields = request.search_fields or index.searchable_fields()
    return bm25_ranked(query, candidates, rows, index, fields, recall)


def _nearest(
    query: VectorQuery, index: Index, filter_text: str | None
) -> tuple[list[tuple[str, float]], dict[str, dict[str, float]]]:
    """The k nearest documents (of those the filter lets through) by cosine, exhaustively; a
    document's score is its best over the query's fields, 1 / (1 + cosine distance) as Azure
    reports it. Also, for each document found, each field's cosine similarity."""
    best: dict[str, float] = {}
    fields: dict[str, dict[str, float]] = {}
    target = np.asarray(query.vector, dtype=np.float32)
    target = target / (float(np.linalg.norm(target)) or 1.0)
    for name in query.fields:
        keys, matrix = index.matrix(name) if filter_text is None else index.filtered_matrix(filter_text, name)
        if not keys:
            continue
        similarities = matrix @ target
        count = min(query.k, len(keys))
        nearest = np.argpartition(-similarities, count - 1)[:count]
        for position in nearest:
            similarity = float(similarities[position])
            key = keys[int(position)]
            best[key] = max(best.get(key, 0.0), _vector_score(similarity))
            fields.setdefault(key, {})[name] = similarity
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return ranked[: query.k], fields


def _fused(
    lists: list[tuple[list[tuple[str, float]], float]], limit: int | None
) -> tuple[list[tuple[str, float]], int]:
    """Reciprocal Rank Fusion: each list adds weight / (60 + rank) to every document it ranks.
    The best `limit` (all when None), and how many documents the lists ranked."""
    fused: dict[str, float] = {}
    for ranked, weight in lists:
        for rank, (key, _score) in enumerate(ranked, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (RRF_K + rank)
    if limit is not None and limit < len(fused):
        return heapq.nsmallest(limit, fused.items(), key=lambda item: (-item[1], item[0])), len(fused)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0])), len(fused)


def _ordered(ranked: list[tuple[str, float]], order_by: list[str], index: Index) -> list[tuple[str, float]]:
    fields = index.fields
    result = list(ranked)
    for clause in reversed(order_by):
        name, _, direction = clause.strip().partition(" ")
        descending = direction.strip().lower() == "desc"
        if name == "search.score()":
            result.sort(key=lambda item: item[1], reverse=descending)
            continue
        if name not in fields or not fields[name]["sortable"]:
            raise bad_request(
                f"Invalid expression: The field '{name}' is not sortable. Only sortable fields can be used in $orderby."
            )
        present = [item for item in result if index.documents[item[0]].get(name) is not None]
        missing = [item for item in result if index.documents[item[0]].get(name) is None]
        present.sort(key=lambda item: index.documents[item[0]][name], reverse=descending)
        result = present + missing
    return result


def shaped(document: dict[str, Any], select: list[str] | None, index: Index) -> dict[str, Any]:
    """The document's retrievable fields, or those of `select`."""
    fields = index.fields
    wanted = (
        [name for name in select if name != "*"]
        if select and "*" not in select
        else [name for name, definition in fields.items() if definition["retrievable"]]
    )
    return {name: _plain(document.get(name)) for name in wanted}


def _plain(value: Any) -> Any:
    """A value as JSON writes it (the index keeps vectors as float32 arrays)."""
    return value.tolist() if isinstance(value, np.ndarray) else value
