"""Full-text search as Azure's simple query syntax and BM25 similarity do it, well enough for
retrieval to rank as on Azure: the standard analyzer's words (lower-cased runs of letters and
digits), terms, quoted phrases, `+` required and `-` excluded terms, `*` for every document, and
BM25 (k1 = 1.2, b = 0.75) summed over the searchable fields, with the statistics (document
frequencies, average field lengths) of the whole index, read from its postings."""

import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

WORD = re.compile(r"[^\W_]+", re.UNICODE)
K1 = 1.2
B = 0.75

Phrase = tuple[str, ...]


def analyze(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class TextQuery:
    """A simple-syntax query: optional terms and phrases, required ones, excluded ones."""

    optional: list[Phrase] = field(default_factory=list)
    required: list[Phrase] = field(default_factory=list)
    excluded: list[Phrase] = field(default_factory=list)
    match_all: bool = False

    @property
    def scored(self) -> list[Phrase]:
        return self.optional + self.required


QUERY_PART = re.compile(r'([+-]?)(?:"([^"]*)"|(\S+))')


def parse_simple(search: str | None, *, mode_all: bool) -> TextQuery:
    """`search` in the simple syntax; searchMode=all makes every plain term required."""
    if search is None or not search.strip() or search.strip() == "*":
        return TextQuery(match_all=True)
    query = TextQuery()
    for operator, phrase, word in QUERY_PART.findall(search):
        terms = tuple(analyze(phrase if phrase else word))
        if not terms:
            continue
        if operator == "-":
            query.excluded.append(terms)
        elif operator == "+" or mode_all:
            query.required.append(terms)
        else:
            query.optional.append(terms)
    if not query.scored and query.excluded:
        return TextQuery(excluded=query.excluded, match_all=True)
    return query


class Indexed(Protocol):
    """What scoring reads of an index (store.Index)."""

    documents: dict[str, dict[str, object]]
    terms: dict[str, dict[str, Counter[str]]]
    tokens: dict[str, dict[str, list[str]]]
    postings: dict[str, dict[str, set[str]]]
    total_lengths: dict[str, int]

    def row_keys(self) -> list[str]: ...

    def key_order(self) -> npt.NDArray[np.intp]: ...

    def lengths(self, field_name: str) -> npt.NDArray[np.float64]: ...

    def term_rows(
        self, field_name: str, term: str
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]: ...


def _phrase_count(tokens: list[str], phrase: Phrase) -> int:
    width = len(phrase)
    return sum(
        1 for start in range(len(tokens) - width + 1) if tuple(tokens[start : start + width]) == phrase
    )


def _occurrences(index: Indexed, name: str, phrase: Phrase) -> dict[str, int]:
    """How often the phrase occurs in the field, by document (documents without it left out)."""
    postings = index.postings.get(name, {})
    holders = [postings.get(term, set()) for term in phrase]
    common = set.intersection(*holders) if holders else set()
    if len(phrase) == 1:
        return {key: index.terms[key][name][phrase[0]] for key in common}
    counts = {key: _phrase_count(index.tokens[key][name], phrase) for key in common}
    return {key: count for key, count in counts.items() if count}


def bm25_ranked(
    query: TextQuery,
    allowed: set[str],
    allowed_rows: npt.NDArray[np.bool_] | None,
    index: Indexed,
    fields: list[str],
    limit: int | None,
) -> list[tuple[str, float]]:
    """The allowed documents that match `query`, best BM25 score first (ties by key), at most
    `limit` of them. `allowed_rows` is `allowed` as a mask over the index's rows (None: every row)."""
    if (
        query.optional
        and not (query.required or query.excluded or query.match_all)
        and all(len(phrase) == 1 for phrase in query.optional)
    ):
        return _bm25_terms(query.optional, allowed_rows, index, fields, limit)
    scores = _bm25_scores(query, allowed, index, fields)
    if limit is not None and len(scores) > limit:
        return heapq.nsmallest(limit, scores.items(), key=lambda item: (-item[1], item[0]))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _bm25_scores(query: TextQuery, allowed: set[str], index: Indexed, fields: list[str]) -> dict[str, float]:
    """The BM25 score of each allowed document that matches `query` (key -> score)."""
    found = {
        (phrase, name): _occurrences(index, name, phrase)
        for phrase in {*query.scored, *query.excluded}
        for name in fields
    }

    def holders(phrase: Phrase) -> set[str]:
        return set().union(*(found[(phrase, name)] for name in fields)) if fields else set()

    excluded = set().union(*(holders(phrase) for phrase in query.excluded)) if query.excluded else set()
    if query.match_all:
        return {key: 1.0 for key in allowed - excluded}
    matching = set().union(*(holders(phrase) for phrase in query.scored)) & allowed
    for phrase in query.required:
        matching &= holders(phrase)
    matching -= excluded
    documents = len(index.documents) or 1
    scores = dict.fromkeys(matching, 0.0)
    for name in fields:
        average = index.total_lengths.get(name, 0) / documents or 1.0
        for phrase in query.scored:
            occurrences = found[(phrase, name)]
            idf = math.log(1 + (documents - len(occurrences) + 0.5) / (len(occurrences) + 0.5))
            for key in matching & occurrences.keys():
                frequency = occurrences[key]
                length = len(index.tokens[key][name])
                norm = K1 * (1 - B + B * length / average)
                scores[key] += idf * frequency * (K1 + 1) / (frequency + norm)
    return scores


def _bm25_terms(
    phrases: list[Phrase],
    allowed_rows: npt.NDArray[np.bool_] | None,
    index: Indexed,
    fields: list[str],
    limit: int | None,
) -> list[tuple[str, float]]:
    """BM25 for a query of plain terms (what a question is), ranked in arrays over every document:
    the same figures and order as the general path, at the speed a retrieval per chat turn needs."""
    keys = index.row_keys()
    documents = len(keys) or 1
    scores = np.zeros(len(keys))
    for name in fields:
        lengths = index.lengths(name)
        norms = K1 * (1 - B + B * lengths / (index.total_lengths.get(name, 0) / documents or 1.0))
        for (term,) in phrases:
            rows, frequencies = index.term_rows(name, term)
            if not len(rows):
                continue
            idf = math.log(1 + (documents - len(rows) + 0.5) / (len(rows) + 0.5))
            scores[rows] += idf * frequencies * (K1 + 1) / (frequencies + norms[rows])
    if allowed_rows is not None:
        scores[~allowed_rows] = 0.0
    matched = np.flatnonzero(scores > 0)
    if limit is not None and len(matched) > limit:
        # The `limit` best, and any tied with the last of them: the ties are then ordered by key.
        last = np.partition(scores[matched], len(matched) - limit)[len(matched) - limit]
        matched = matched[scores[matched] >= last]
    best = matched[np.lexsort((index.key_order()[matched], -scores[matched]))][:limit]
    return [(keys[row], float(scores[row])) for row in best]
