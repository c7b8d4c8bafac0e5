"""Passages: a few hundred tokens, overlapping, cut at paragraph and sentence ends, with their
page and headings, never across documents, with ids that stay the same when read again."""

import itertools

import pytest

from grounding.chunks import chunk_document, chunk_id, count_tokens
from grounding.extract import Section, read_document
from tests.grounding.documents import pdf_bytes


def sentences(count: int, *, topic: str = "leave") -> str:
    return " ".join(
        f"Sentence {index} explains the {topic} rule number {index} in plain words." for index in range(count)
    )


def test_passages_keep_to_the_size_and_overlap():
    document = [Section(text=sentences(200), page=1)]

    chunks = chunk_document(document, document_id=7, version=1, chunk_tokens=120, overlap_tokens=30)

    assert len(chunks) > 10
    assert all(chunk.tokens <= 120 for chunk in chunks)
    assert all(chunk.tokens == count_tokens(chunk.text) for chunk in chunks)
    # Full passages, not crumbs: each but the last is more than half the size.
    assert all(chunk.tokens > 60 for chunk in chunks[:-1])
    for previous, following in itertools.pairwise(chunks):
        # The next passage starts with the previous one's last whole sentences, within the overlap.
        opening = [f"{sentence}." for sentence in following.text.removesuffix(".").split(". ")]
        repeated = max(n for n in range(len(opening)) if previous.text.endswith(" ".join(opening[:n])))
        assert repeated >= 1
        assert count_tokens(" ".join(opening[:repeated])) <= 30
    # Every sentence is in some passage, whole.
    text = " ".join(chunk.text for chunk in chunks)
    assert all(f"Sentence {index} explains" in text for index in range(200))


def test_the_default_size_comes_from_settings(settings):
    settings.GROUNDING_CHUNK_TOKENS = 50
    settings.GROUNDING_CHUNK_OVERLAP_TOKENS = 0

    chunks = chunk_document([Section(text=sentences(40))], document_id=1, version=1)

    assert all(chunk.tokens <= 50 for chunk in chunks)
    assert not any(
        chunk.text.split(". ")[0] in previous.text for previous, chunk in itertools.pairwise(chunks)
    )


def test_passages_end_at_paragraph_breaks_when_they_can():
    paragraphs = "\n\n".join(sentences(4, topic=f"topic{index}") for index in range(10))

    chunks = chunk_document(
        [Section(text=paragraphs)], document_id=1, version=1, chunk_tokens=150, overlap_tokens=0
    )

    for chunk in chunks:
        assert chunk.text.startswith("Sentence 0 ")
        assert chunk.text.endswith("number 3 in plain words.")


def test_an_over_long_sentence_is_cut_between_words():
    run_on = " ".join(f"word{index}" for index in range(500))

    chunks = chunk_document(
        [Section(text=run_on)], document_id=1, version=1, chunk_tokens=100, overlap_tokens=10
    )

    assert all(chunk.tokens <= 100 for chunk in chunks)
    assert "word0 " in chunks[0].text
    assert chunks[-1].text.endswith("word499")
    assert not any(" " in chunk.text and chunk.text.split(" ")[0].startswith("ord") for chunk in chunks)


def test_a_word_longer_than_a_passage_is_cut():
    blob = "A" * 3000

    chunks = chunk_document([Section(text=blob)], document_id=1, version=1, chunk_tokens=50, overlap_tokens=0)

    assert all(chunk.tokens <= 50 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == blob


def test_a_passage_stays_on_its_page_so_a_citation_opens_the_right_one():
    pages = [Section(text=sentences(12, topic=f"page{number}"), page=number) for number in range(1, 6)]

    chunks = chunk_document(pages, document_id=3, version=2, chunk_tokens=200, overlap_tokens=40)

    for chunk in chunks:
        assert chunk.page == chunk.last_page
        assert f"the page{chunk.page} " in chunk.text
        assert all(f"the page{other} " not in chunk.text for other in range(1, 6) if other != chunk.page)
    assert [chunk.page for chunk in chunks] == sorted(chunk.page for chunk in chunks)
    assert {chunk.page for chunk in chunks} == {1, 2, 3, 4, 5}


def test_pages_of_a_real_pdf_reach_the_passages():
    data = pdf_bytes(["Leave is 25 days.", "Parental leave is 16 weeks.", "Expenses need receipts."])

    chunks = chunk_document(
        read_document(name="policy.pdf", data=data),
        document_id=9,
        version=1,
        chunk_tokens=8,
        overlap_tokens=0,
    )

    assert [(chunk.page, chunk.text) for chunk in chunks] == [
        (1, "Leave is 25 days."),
        (2, "Parental leave is 16 weeks."),
        (3, "Expenses need receipts."),
    ]


def test_headings_and_sheets_are_never_crossed():
    sections = [
        Section(text="Short intro.", heading_path=("Handbook",)),
        Section(text="Leave text.", heading_path=("Handbook", "Leave")),
        Section(text="Row one", sheet="Budget"),
        Section(text="Row two", sheet="Notes"),
    ]

    chunks = chunk_document(sections, document_id=1, version=1)

    assert [(chunk.text, chunk.heading_path, chunk.sheet) for chunk in chunks] == [
        ("Short intro.", ("Handbook",), None),
        ("Leave text.", ("Handbook", "Leave"), None),
        ("Row one", (), "Budget"),
        ("Row two", (), "Notes"),
    ]


def test_passages_never_cross_documents():
    first = chunk_document(
        [Section(text=sentences(30, topic="alpha"))], document_id=1, version=1, chunk_tokens=100
    )
    second = chunk_document(
        [Section(text=sentences(30, topic="beta"))], document_id=2, version=1, chunk_tokens=100
    )

    assert all("beta" not in chunk.text and chunk.document_id == "1" for chunk in first)
    assert all("alpha" not in chunk.text and chunk.document_id == "2" for chunk in second)
    assert not {chunk.id for chunk in first} & {chunk.id for chunk in second}


def test_ids_are_stable_and_follow_the_version():
    sections = [Section(text=sentences(60), page=1)]

    once = chunk_document(sections, document_id="b5f1c0de-1", version=3, chunk_tokens=100)
    again = chunk_document(sections, document_id="b5f1c0de-1", version=3, chunk_tokens=100)
    next_version = chunk_document(sections, document_id="b5f1c0de-1", version=4, chunk_tokens=100)

    assert once == again
    assert [chunk.id for chunk in once] == [f"b5f1c0de-1-v3-{position}" for position in range(len(once))]
    assert [chunk.position for chunk in once] == list(range(len(once)))
    assert not {chunk.id for chunk in once} & {chunk.id for chunk in next_version}


def test_an_id_uses_only_characters_azure_ai_search_allows_in_a_key():
    with pytest.raises(ValueError, match="letters, digits"):
        chunk_id(document_id="a/b", version=1, position=0)
