"""Full-text search as Azure's simple query syntax and BM25 similarity do it, well enough for
retrieval to rank as on Azure: the standard analyzer's words (lower-cased runs of letters and
digits), terms, quoted phrases, `+` required and `-` excluded terms, `*` for every document, and
BM25 (k1 = 1.2, b = 0.75) summed over the searchable fields."""

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

WORD = re.compile(r"[^\W_]+", re.UNICODE)
K1 = 1.2
B = 0.75


def analyze(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class TextQuery:
    """A simple-syntax query: optional terms and phrases, required ones, excluded ones."""

    optional: list[tuple[str, ...]] = field(default_factory=list)
    required: list[tuple[str, ...]] = field(default_factory=list)
    excluded: list[tuple[str, ...]] = field(default_factory=list)
    match_all: bool = False

    @property
    def scored(self) -> list[tuple[str, ...]]:
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


def _phrase_count(tokens: list[str], phrase: tuple[str, ...]) -> int:
    width = len(phrase)
    return sum(
        1 for start in range(len(tokens) - width + 1) if tuple(tokens[start : start + width]) == phrase
    )


@dataclass
class FieldStats:
    """What BM25 needs of one field over the candidate documents."""

    average_length: float
    document_frequency: Counter[tuple[str, ...]]
    documents: int


def bm25_scores(
    query: TextQuery,
    candidates: Iterable[str],
    population: list[str],
    field_terms: dict[str, dict[str, Counter[str]]],
    field_tokens: dict[str, dict[str, list[str]]],
    fields: list[str],
) -> dict[str, float]:
    """The BM25 score of each candidate document that matches `query` (key -> score); the
    statistics (document frequencies, average lengths) are those of the whole index, as Azure's."""
    keys = list(candidates)
    if query.match_all:
        return {
            key: 1.0
            for key in keys
            if not any(
                _in_document(key, phrase, field_terms, field_tokens, fields) for phrase in query.excluded
            )
        }
    stats = {name: _field_stats(name, population, query, field_terms, field_tokens) for name in fields}
    scores: dict[str, float] = {}
    for key in keys:
        if any(_in_document(key, phrase, field_terms, field_tokens, fields) for phrase in query.excluded):
            continue
        if not all(_in_document(key, phrase, field_terms, field_tokens, fields) for phrase in query.required):
            continue
        score = 0.0
        matched = False
        for name in fields:
            counts = field_terms.get(key, {}).get(name)
            if not counts:
                continue
            length = sum(counts.values())
            field_stats = stats[name]
            for phrase in query.scored:
                frequency = _frequency(key, name, phrase, field_terms, field_tokens)
                if not frequency:
                    continue
                matched = True
                found_in = field_stats.document_frequency[phrase]
                idf = math.log(1 + (field_stats.documents - found_in + 0.5) / (found_in + 0.5))
                norm = K1 * (1 - B + B * length / (field_stats.average_length or 1))
                score += idf * frequency * (K1 + 1) / (frequency + norm)
        if matched:
            scores[key] = score
    return scores


def _frequency(
    key: str,
    name: str,
    phrase: tuple[str, ...],
    field_terms: dict[str, dict[str, Counter[str]]],
    field_tokens: dict[str, dict[str, list[str]]],
) -> int:
    counts = field_terms.get(key, {}).get(name) or Counter()
    if len(phrase) == 1:
        return counts[phrase[0]]
    if not all(counts[term] for term in phrase):
        return 0
    return _phrase_count(field_tokens[key][name], phrase)


def _in_document(
    key: str,
    phrase: tuple[str, ...],
    field_terms: dict[str, dict[str, Counter[str]]],
    field_tokens: dict[str, dict[str, list[str]]],
    fields: list[str],
) -> bool:
    return any(_frequency(key, name, phrase, field_terms, field_tokens) for name in fields)


def _field_stats(
    name: str,
    keys: list[str],
    query: TextQuery,
    field_terms: dict[str, dict[str, Counter[str]]],
    field_tokens: dict[str, dict[str, list[str]]],
) -> FieldStats:
    lengths = [sum((field_terms.get(key, {}).get(name) or Counter()).values()) for key in keys]
    frequency: Counter[tuple[str, ...]] = Counter()
    for phrase in query.scored:
        frequency[phrase] = sum(1 for key in keys if _frequency(key, name, phrase, field_terms, field_tokens))
    return FieldStats(sum(lengths) / len(lengths) if lengths else 0.0, frequency, len(keys))
