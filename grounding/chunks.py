"""A document's sections cut into passages of a few hundred tokens: what is embedded, retrieved
and quoted to the model with a citation.

Tokens are counted in `o200k_base` (provisioning/tokenizer.py), the encoding of the chat models
the passages are quoted to; the embeddings models count within a few per cent of it and take
thousands of tokens, far above a passage.

A passage never spans two documents (one call reads one document's sections), two pages (or
slides), two sheets or two heading paths: a citation opens the page its passage is on, so a
passage that began on one page and ran on to the next would send the reader to the wrong one for
half of it, and a short page would be swallowed by its neighbours. It ends at a paragraph break
where one falls in its last quarter, else at a sentence end; only a sentence longer than a
passage is cut between words. The next passage repeats the previous one's last sentences (up to
the overlap) so a thought cut in two is found whole in one of them.

A passage's id is its document's id and version and its position in that version: reading the
same version again gives the same ids (an index update replaces rather than duplicates), and the
cutting is deterministic. The ids use only the characters Azure AI Search allows in a key.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from uuid import UUID

from django.conf import settings

from grounding.extract import Section
from provisioning.tokenizer import o200k_base

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
# A sentence ends at . ! ? (and the ideographic full stop and the full-width ! and ?), or at a
# line break inside a paragraph (list items, table rows and a PDF's lines are read as sentences).
SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")
SEARCH_KEY = re.compile(r"^[A-Za-z0-9_=-]+$")
# A passage ends at a paragraph break rather than a sentence end if that keeps it this full.
PARAGRAPH_CUT_SHARE = 0.75


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    version: int
    position: int
    text: str
    tokens: int
    page: int | None
    last_page: int | None
    sheet: str | None
    heading_path: tuple[str, ...]


@dataclass(frozen=True)
class _Unit:
    """A sentence (or part of an over-long one) and where it is."""

    text: str
    tokens: int
    page: int | None
    starts_paragraph: bool


def count_tokens(text: str) -> int:
    return len(o200k_base().encode_ordinary(text)) if text else 0


def chunk_id(*, document_id: int | str | UUID, version: int, position: int) -> str:
    document = str(document_id)
    if not SEARCH_KEY.match(document):
        raise ValueError(f"A document id for passages uses letters, digits, _ - = only: {document!r}")
    return f"{document}-v{version}-{position}"


def chunk_document(
    sections: Sequence[Section],
    *,
    document_id: int | str | UUID,
    version: int,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
) -> list[Chunk]:
    """One document version's sections as passages, in reading order."""
    budget = chunk_tokens if chunk_tokens is not None else settings.GROUNDING_CHUNK_TOKENS
    overlap = overlap_tokens if overlap_tokens is not None else settings.GROUNDING_CHUNK_OVERLAP_TOKENS
    if budget < 1 or not 0 <= overlap < budget:
        raise ValueError(f"Passages need 0 <= overlap < size: {overlap} and {budget} tokens.")
    chunks: list[Chunk] = []
    for (heading_path, sheet, _page), run in groupby(
        sections, key=lambda section: (section.heading_path, section.sheet, section.page)
    ):
        units = [unit for section in run for unit in _units(section, budget)]
        for texts in _pack(units, budget=budget, overlap=overlap):
            text = _join(texts)
            position = len(chunks)
            pages = [unit.page for unit in texts if unit.page is not None]
            chunks.append(
                Chunk(
                    id=chunk_id(document_id=document_id, version=version, position=position),
                    document_id=str(document_id),
                    version=version,
                    position=position,
                    text=text,
                    tokens=count_tokens(text),
                    page=pages[0] if pages else None,
                    last_page=pages[-1] if pages else None,
                    sheet=sheet,
                    heading_path=heading_path,
                )
            )
    return chunks


def _units(section: Section, budget: int) -> Iterator[_Unit]:
    for paragraph in PARAGRAPH_BREAK.split(section.text):
        first = True
        for sentence in SENTENCE_END.split(paragraph):
            sentence = " ".join(sentence.split())
            if not sentence:
                continue
            for piece in _fit(sentence, budget):
                yield _Unit(text=piece, tokens=count_tokens(piece), page=section.page, starts_paragraph=first)
                first = False


def _fit(sentence: str, budget: int) -> Iterator[str]:
    """The sentence, or its parts cut between words (a word longer than a passage between
    characters) so that each fits a passage."""
    if count_tokens(sentence) <= budget:
        yield sentence
        return
    # The encoding's pre-tokenizer never joins text across a single space, so a run of words
    # costs exactly its first word plus each following word with its space.
    words: list[str] = []
    used = 0
    for word in sentence.split(" "):
        cost = count_tokens(f" {word}" if words else word)
        if not words and cost > budget:
            yield from _cut_word(word, budget)
            continue
        if words and used + cost > budget:
            yield " ".join(words)
            words, used = [], 0
            cost = count_tokens(word)
            if cost > budget:
                yield from _cut_word(word, budget)
                continue
        words.append(word)
        used += cost
    if words:
        yield " ".join(words)


def _cut_word(word: str, budget: int) -> Iterator[str]:
    start = 0
    while start < len(word):
        end = len(word)
        # A token is at least one character, so `budget` characters always fit.
        while count_tokens(word[start:end]) > budget:
            end = start + max(budget, (end - start) // 2)
        yield word[start:end]
        start = end


def _join(units: Sequence[_Unit]) -> str:
    parts: list[str] = []
    for index, unit in enumerate(units):
        if index:
            parts.append("\n\n" if unit.starts_paragraph else " ")
        parts.append(unit.text)
    return "".join(parts)


def _fits(units: Sequence[_Unit], budget: int) -> bool:
    # Each join adds at most a token; the sum is checked exactly only when it is close.
    estimate = sum(unit.tokens for unit in units) + len(units)
    return estimate <= budget or count_tokens(_join(units)) <= budget


def _pack(units: Sequence[_Unit], *, budget: int, overlap: int) -> Iterator[list[_Unit]]:
    """Greedy packing: each passage takes sentences while they fit, then gives back the ones
    after its last paragraph break if that keeps it three-quarters full."""
    current: list[_Unit] = []
    fresh = 0  # how many of `current` are new (not repeated from the previous passage)
    index = 0
    while index < len(units):
        unit = units[index]
        if _fits([*current, unit], budget):
            current.append(unit)
            fresh += 1
            index += 1
            continue
        if fresh == 0:
            # The repeated sentences leave no room for the next one: drop them.
            current = []
            continue
        cut = _paragraph_cut(current, budget=budget, keep_from=len(current) - fresh)
        if cut is not None:
            index -= len(current) - cut
            fresh -= len(current) - cut
            current = current[:cut]
        current, given_back = _within_budget(current, fresh=fresh, budget=budget)
        index -= given_back
        yield current
        current = _tail(current, overlap)
        fresh = 0
    if fresh:
        current, given_back = _within_budget(current, fresh=fresh, budget=budget)
        yield current
        if given_back:
            yield from _pack(units[len(units) - given_back :], budget=budget, overlap=overlap)


def _within_budget(units: list[_Unit], *, fresh: int, budget: int) -> tuple[list[_Unit], int]:
    """The passage counted exactly, giving back its last sentences (or, for one sentence, the
    repeated ones before it) in the rare case that joining them costs more than estimated."""
    given_back = 0
    while count_tokens(_join(units)) > budget:
        if fresh - given_back > 1:
            units = units[:-1]
            given_back += 1
        else:
            units = units[-1:]
    return units, given_back


def _paragraph_cut(units: Sequence[_Unit], *, budget: int, keep_from: int) -> int | None:
    """Where to end the passage at a paragraph break, if one leaves it three-quarters full and
    keeps at least one new sentence."""
    for cut in range(len(units) - 1, keep_from, -1):
        if not units[cut].starts_paragraph:
            continue
        if sum(unit.tokens for unit in units[:cut]) >= PARAGRAPH_CUT_SHARE * budget:
            return cut
        return None
    return None


def _tail(units: Sequence[_Unit], overlap: int) -> list[_Unit]:
    """The last whole sentences of a passage that fit in the overlap."""
    taken: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.tokens + 1 > overlap:
            break
        taken.insert(0, unit)
        total += unit.tokens + 1
    return taken
