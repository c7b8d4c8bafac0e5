"""The indexes of every search service and their documents: held in memory, where queries read
them, and written through to a SQLite file beside the emulator's state file, so they survive a
restart as the rest of the world does. Vectors are kept as float32, as Azure stores them; a
vector field's matrix is built once per change of the index, so a k-NN query is one product."""

import base64
import functools
import gc
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from provisioning.emulator.search.filters import CompiledFilter
from provisioning.emulator.search.schema import is_vector
from provisioning.emulator.search.text import analyze

Matrix = npt.NDArray[np.float32]
# The types of the filterable fields whose values `Index.values` keeps.
VALUE_TYPES = {"Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean", "Edm.DateTimeOffset"}
FILTERS_KEPT = 256
# Matrices cut to a filter's rows kept at once (each as large as the rows it keeps).
MATRICES_KEPT = 32


@dataclass
class Index:
    """One index: its definition as Azure returns it, its documents by key, and what the queries
    derive from them (each searchable field's term counts; each vector field's matrix)."""

    definition: dict[str, Any]
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    terms: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    tokens: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # Searchable field -> term -> the documents holding it; field -> the sum of its lengths.
    postings: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    total_lengths: dict[str, int] = field(default_factory=dict)
    # Filterable field -> value -> the documents holding it (what `filtered` starts from).
    values: dict[str, dict[Any, set[str]]] = field(default_factory=dict)
    _matrices: dict[str, tuple[list[str], Matrix]] = field(default_factory=dict)
    # A grounded assistant asks with the same filter turn after turn: what a filter lets through
    # (the keys, and per vector field the rows) is kept until the documents change.
    _filtered: dict[str, set[str]] = field(default_factory=dict)
    _submatrices: dict[tuple[str, str], tuple[list[str], Matrix]] = field(default_factory=dict)
    # Full-text scoring in arrays, built as queries need them until the documents change: the
    # documents in a fixed order, each field's lengths, and a term's (rows, counts) in a field.
    _row_keys: list[str] | None = None
    _row_of: dict[str, int] = field(default_factory=dict)
    _key_order: npt.NDArray[np.intp] | None = None
    _masks: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    _lengths: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    _term_rows: dict[tuple[str, str], tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = field(
        default_factory=dict
    )

    @property
    def name(self) -> str:
        return str(self.definition["name"])

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return {item["name"]: item for item in self.definition["fields"]}

    @property
    def key_field(self) -> str:
        return str(next(item["name"] for item in self.definition["fields"] if item.get("key")))

    def searchable_fields(self) -> list[str]:
        return [
            item["name"]
            for item in self.definition["fields"]
            if item.get("searchable") and item["type"] in ("Edm.String", "Collection(Edm.String)")
        ]

    @functools.cached_property
    def vector_fields(self) -> frozenset[str]:
        return frozenset(item["name"] for item in self.definition["fields"] if is_vector(item))

    @functools.cached_property
    def _value_fields(self) -> list[str]:
        return [
            item["name"]
            for item in self.definition["fields"]
            if item.get("filterable") and item["type"] in VALUE_TYPES
        ]

    def analyzed(self, fields: dict[str, Any]) -> dict[str, list[str]]:
        """The words of the searchable fields among `fields`, as the index keeps them."""
        return {name: analyze(_text_of(fields[name])) for name in self.searchable_fields() if name in fields}

    def with_vectors_packed(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields` (checked) with each vector as a float32 array, as the index keeps vectors:
        Azure keeps them as single-precision numbers too, and an array is one buffer to move
        between processes and to write, where a list is 1536 objects."""
        return {
            name: (
                np.asarray(value, dtype=np.float32)
                if isinstance(value, list) and name in self.vector_fields
                else value
            )
            for name, value in fields.items()
        }

    def put(self, document: dict[str, Any], analyzed: dict[str, list[str]] | None = None) -> None:
        """Add or replace the document; `analyzed` has the words of some of its searchable fields
        already (`analyzed`), the others are analysed here."""
        key = str(document[self.key_field])
        self.remove(key)
        self._changed()
        self.documents[key] = document = self.with_vectors_packed(document)
        for name in self._value_fields:
            self.values.setdefault(name, {}).setdefault(document.get(name), set()).add(key)
        known = analyzed or {}
        self.tokens[key] = {
            name: known[name] if name in known else analyze(_text_of(document.get(name)))
            for name in self.searchable_fields()
        }
        self.terms[key] = {name: Counter(tokens) for name, tokens in self.tokens[key].items()}
        for name, counts in self.terms[key].items():
            postings = self.postings.setdefault(name, {})
            for term in counts:
                postings.setdefault(term, set()).add(key)
            self.total_lengths[name] = self.total_lengths.get(name, 0) + len(self.tokens[key][name])

    def remove(self, key: str) -> None:
        document = self.documents.pop(key, None)
        if document is None:
            return
        for name in self._value_fields:
            values = self.values.get(name, {})
            holders = values.get(document.get(name))
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del values[document.get(name)]
        for name, counts in self.terms.pop(key, {}).items():
            postings = self.postings.get(name, {})
            for term in counts:
                holders = postings.get(term)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del postings[term]
            self.total_lengths[name] -= sum(counts.values())
        self.tokens.pop(key, None)
        self._changed()

    def _changed(self) -> None:
        self._matrices.clear()
        self._filtered.clear()
        self._submatrices.clear()
        self._row_keys = None
        self._row_of.clear()
        self._key_order = None
        self._masks.clear()
        self._lengths.clear()
        self._term_rows.clear()

    def row_keys(self) -> list[str]:
        """The documents' keys in the order of the full-text arrays' rows."""
        if self._row_keys is None:
            self._row_keys = list(self.documents)
            self._row_of = {key: row for row, key in enumerate(self._row_keys)}
        return self._row_keys

    def key_order(self) -> npt.NDArray[np.intp]:
        """Each row's place among the keys in sorted order (ties in score are ranked by key)."""
        if self._key_order is None:
            keys = self.row_keys()
            order = np.empty(len(keys), dtype=np.intp)
            order[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
            self._key_order = order
        return self._key_order

    def filtered_rows(self, filter_text: str) -> npt.NDArray[np.bool_]:
        """The rows (of `row_keys`) the filter (already applied by `filtered`) lets through."""
        if filter_text not in self._masks:
            if len(self._masks) >= FILTERS_KEPT:
                self._masks.clear()
            self.row_keys()  # and `_row_of` with them
            row_of = self._row_of
            mask = np.zeros(len(row_of), dtype=bool)
            mask[[row_of[key] for key in self._filtered[filter_text]]] = True
            self._masks[filter_text] = mask
        return self._masks[filter_text]

    def lengths(self, field_name: str) -> npt.NDArray[np.float64]:
        """Each document's length in the field, in tokens, by row."""
        if field_name not in self._lengths:
            self._lengths[field_name] = np.fromiter(
                (len(self.tokens[key].get(field_name, ())) for key in self.row_keys()),
                dtype=np.float64,
                count=len(self.row_keys()),
            )
        return self._lengths[field_name]

    def term_rows(self, field_name: str, term: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """The rows of the documents whose field holds the term, and how often it does in each."""
        if (field_name, term) not in self._term_rows:
            keys = self.row_keys()
            holders = sorted(self._row_of[key] for key in self.postings.get(field_name, {}).get(term, ()))
            self._term_rows[(field_name, term)] = (
                np.asarray(holders, dtype=np.intp),
                np.fromiter(
                    (self.terms[keys[row]][field_name][term] for row in holders),
                    dtype=np.float64,
                    count=len(holders),
                ),
            )
        return self._term_rows[(field_name, term)]

    def filtered(self, filter_text: str, compiled: CompiledFilter) -> set[str]:
        """The keys of the documents the filter lets through (`compiled` is `filter_text`)."""
        if filter_text not in self._filtered:
            if len(self._filtered) >= FILTERS_KEPT:
                self._filtered.clear()
                self._submatrices.clear()
            documents, matches = self.documents, compiled.matches
            self._filtered[filter_text] = {
                key for key in self._holding(compiled.anchor) if matches(documents[key])
            }
        return self._filtered[filter_text]

    def _holding(self, anchor: tuple[str, Any] | None) -> Iterable[str]:
        """The keys of the documents that hold the anchor's value in its field (all the documents'
        when there is no anchor, or its field is not one whose values are kept)."""
        if anchor is None or anchor[0] not in self._value_fields:
            return self.documents.keys()
        name, value = anchor
        return self.values.get(name, {}).get(value, ())

    def filtered_matrix(self, filter_text: str, field_name: str) -> tuple[list[str], Matrix]:
        """The field's matrix cut to the rows the filter (already applied by `filtered`) lets
        through: a query reads only those, not the whole index, from memory."""
        if (filter_text, field_name) not in self._submatrices:
            if len(self._submatrices) >= MATRICES_KEPT:
                self._submatrices.clear()
            allowed = self._filtered[filter_text]
            keys, rows = self.matrix(field_name)
            kept = np.fromiter((key in allowed for key in keys), dtype=bool, count=len(keys))
            self._submatrices[(filter_text, field_name)] = (
                [key for key, keep in zip(keys, kept, strict=True) if keep],
                rows[kept] if len(keys) else rows,
            )
        return self._submatrices[(filter_text, field_name)]

    def matrix(self, field_name: str) -> tuple[list[str], Matrix]:
        """The keys of the documents that have the vector field, and their unit vectors as rows."""
        if field_name not in self._matrices:
            keys = [key for key, document in self.documents.items() if _has_vector(document.get(field_name))]
            rows = np.array([self.documents[key][field_name] for key in keys], dtype=np.float32)
            if keys:
                norms = np.linalg.norm(rows, axis=1, keepdims=True)
                rows = (rows / np.where(norms == 0, 1, norms)).astype(np.float32)
            self._matrices[field_name] = (keys, rows)
        return self._matrices[field_name]

    def stored_bytes(self) -> tuple[int, int]:
        """(storage size, vector index size) in bytes, roughly as Azure counts them."""
        vectors = sum(
            4 * len(document[name])
            for document in self.documents.values()
            for name in self.vector_fields
            if document.get(name) is not None
        )
        text = sum(
            len(json.dumps({k: v for k, v in document.items() if k not in self.vector_fields}))
            for document in self.documents.values()
        )
        return text + vectors, vectors


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(item) for item in value if item is not None)
    return "" if value is None else str(value)


class SearchData:
    """Every service's indexes, by (service name, index name)."""

    def __init__(self, path: Path | None) -> None:
        self.indexes: dict[tuple[str, str], Index] = {}
        # Batches and queries run on worker threads (so the event loop keeps streaming chat answers
        # while a batch of passages is indexed); one at a time, as the loop used to run them.
        self.lock = threading.Lock()
        self._database: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._database = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._database.executescript(
                "CREATE TABLE IF NOT EXISTS indexes (service TEXT, name TEXT, definition TEXT,"
                " PRIMARY KEY (service, name));"
                "CREATE TABLE IF NOT EXISTS documents (service TEXT, idx TEXT, key TEXT, body TEXT,"
                " PRIMARY KEY (service, idx, key));"
            )
            self._load()
        _keep_out_of_collections()

    def _load(self) -> None:
        assert self._database is not None
        for service, name, definition in self._database.execute(
            "SELECT service, name, definition FROM indexes"
        ):
            self.indexes[(service, name)] = Index(json.loads(definition))
        for service, name, body in self._database.execute("SELECT service, idx, body FROM documents"):
            index = self.indexes.get((service, name))
            if index is not None:
                index.put(_decoded(json.loads(body)))

    def index(self, service: str, name: str) -> Index | None:
        return self.indexes.get((service.lower(), name))

    def service_indexes(self, service: str) -> list[Index]:
        return [index for (owner, _), index in sorted(self.indexes.items()) if owner == service.lower()]

    def save_index(self, service: str, definition: dict[str, Any]) -> Index:
        key = (service.lower(), str(definition["name"]))
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = Index(definition)
        else:
            # A field added to the definition: the documents are analyzed anew.
            documents = list(index.documents.values())
            index = self.indexes[key] = Index(definition)
            for document in documents:
                index.put(document)
        self._execute("INSERT OR REPLACE INTO indexes VALUES (?, ?, ?)", [(*key, json.dumps(definition))])
        return index

    def drop_index(self, service: str, name: str) -> bool:
        index = self.indexes.pop((service.lower(), name), None)
        self._execute("DELETE FROM indexes WHERE service = ? AND name = ?", [(service.lower(), name)])
        self._execute("DELETE FROM documents WHERE service = ? AND idx = ?", [(service.lower(), name)])
        return index is not None

    def drop_service(self, service: str) -> None:
        for index in self.service_indexes(service):
            self.drop_index(service, index.name)

    def write_documents(
        self, service: str, index: Index, changed: list[dict[str, Any]], removed: list[str]
    ) -> None:
        """Persist one batch: the documents as they now are, and the keys deleted."""
        self._execute(
            "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",
            [
                (
                    service.lower(),
                    index.name,
                    str(document[index.key_field]),
                    json.dumps(_encoded(document, index.vector_fields)),
                )
                for document in changed
            ],
        )
        self._execute(
            "DELETE FROM documents WHERE service = ? AND idx = ? AND key = ?",
            [(service.lower(), index.name, key) for key in removed],
        )
        _keep_out_of_collections()

    def clear(self) -> None:
        self.indexes.clear()
        self._execute("DELETE FROM indexes", [()])
        self._execute("DELETE FROM documents", [()])

    def _execute(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self._database is None or not rows:
            return
        with self._database:
            self._database.execute("BEGIN")
            self._database.executemany(statement, rows)


def _has_vector(value: Any) -> bool:
    return value is not None and len(value) > 0


def _keep_out_of_collections() -> None:
    """The indexes are the emulator's long-lived heap (10,000 passages: ~125,000 containers, a
    quarter of a second for each full collection, during which no answer streams and no query
    runs; and while passages are being added, the collector would walk them every time the heap
    grew by a quarter). Frozen once written, they are left out of the collector's walks; a
    document removed later is still freed by its reference count (the indexes hold no cycles).
    The young generations are collected first, so little of a request's cyclic garbage is frozen
    with them."""
    gc.collect(1)
    gc.freeze()


# Vectors are written as base64 float32, a quarter of their JSON size.
VECTOR_MARK = "$float32"


def _encoded(document: dict[str, Any], vector_fields: frozenset[str]) -> dict[str, Any]:
    return {
        name: (
            {VECTOR_MARK: base64.b64encode(np.asarray(value, dtype=np.float32).tobytes()).decode()}
            if name in vector_fields and value is not None
            else value
        )
        for name, value in document.items()
    }


def _decoded(document: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (
            np.frombuffer(base64.b64decode(value[VECTOR_MARK]), dtype=np.float32)
            if isinstance(value, dict) and VECTOR_MARK in value
            else value
        )
        for name, value in document.items()
    }
