"""A document's text as the viewer shows it: read from the stored file, page by page (slide by
slide, sheet by sheet), and remembered per document version so a citation opens quickly.

The viewer shows the text Switchyard read, the same text its passages were cut from, rather than
the file itself: nothing in an uploaded file (an HTML page's scripts, a PDF's actions) ever runs
inside Switchyard, and the original is offered only as a download.
"""

from dataclasses import dataclass, field

from django.core.cache import cache

from grounding.extract import Section, read_document
from grounding.files import DocumentKind, FileRefused
from grounding.models import Document

# Pages shown at once around the page asked for: a 2,000-page PDF is not one web page.
WINDOW_PAGES = 60
WINDOW_BEFORE = 10
CACHE_SECONDS = 24 * 60 * 60

PAGE_NOUNS = {DocumentKind.PPTX: "Slide", DocumentKind.PDF: "Page"}


class DocumentUnreadable(Exception):
    """The stored file cannot be read into text; the message says why."""


@dataclass
class Block:
    """One page, slide or sheet of a document (or the whole of a document without pages)."""

    anchor: str
    label: str
    number: int | None = None
    paragraphs: list[tuple[str, int, str]] = field(default_factory=list)  # (heading, level, text)


@dataclass
class DocumentText:
    blocks: list[Block]
    paged: bool
    page_count: int

    def window(self, page: int | None) -> tuple[list[Block], int, int]:
        """The blocks to show for a citation of `page`, and the first and last page shown."""
        if not self.paged or self.page_count <= WINDOW_PAGES:
            return self.blocks, 1, self.page_count
        start = max(1, min((page or 1) - WINDOW_BEFORE, self.page_count - WINDOW_PAGES + 1))
        end = start + WINDOW_PAGES - 1
        return [block for block in self.blocks if start <= (block.number or 0) <= end], start, end


def _cache_key(document: Document) -> str:
    return f"grounding:document-text:{document.uid}:v{document.version}:{document.sha256[:16]}"


def document_sections(document: Document) -> list[Section]:
    """The document's sections, read once per version and remembered."""
    key = _cache_key(document)
    sections: list[Section] | None = cache.get(key)
    if sections is not None:
        return sections
    try:
        with document.file.open("rb") as stored:
            data = stored.read()
    except (FileNotFoundError, OSError) as exc:
        raise DocumentUnreadable(
            "The file of this version is no longer in Switchyard's storage: upload it again."
        ) from exc
    try:
        sections = read_document(name=document.name, data=data)
    except FileRefused as refusal:
        raise DocumentUnreadable(refusal.message) from refusal
    cache.set(key, sections, CACHE_SECONDS)
    return sections


def document_text(document: Document) -> DocumentText:
    sections = document_sections(document)
    try:
        noun = PAGE_NOUNS.get(DocumentKind(document.kind), "Page")
    except ValueError:
        noun = "Page"
    blocks: list[Block] = []
    by_anchor: dict[str, Block] = {}
    sheets: list[str] = []
    previous_heading: tuple[str, ...] = ()
    for section in sections:
        if section.page is not None:
            anchor, label, number = f"page-{section.page}", f"{noun} {section.page}", section.page
        elif section.sheet is not None:
            if section.sheet not in sheets:
                sheets.append(section.sheet)
            number = sheets.index(section.sheet) + 1
            anchor, label = f"sheet-{number}", f"Sheet “{section.sheet}”"
        else:
            anchor, label, number = "text", "", None
        block = by_anchor.get(anchor)
        if block is None:
            block = by_anchor[anchor] = Block(anchor=anchor, label=label, number=number)
            blocks.append(block)
            previous_heading = ()
        heading = ""
        level = 0
        if section.heading_path and section.heading_path != previous_heading and section.page is None:
            heading = section.heading_path[-1]
            level = min(len(section.heading_path), 4)
        previous_heading = section.heading_path
        block.paragraphs.append((heading, level, section.text))
    paged = any(block.anchor.startswith("page-") for block in blocks)
    if not paged:
        return DocumentText(blocks=blocks, paged=False, page_count=0)
    # A page without text (a picture, a scan) has no section; it is shown, empty, in its place.
    numbered = {block.number: block for block in blocks if block.number is not None}
    page_count = max(max(numbered), document.pages or 0)
    pages = [
        numbered.get(number) or Block(anchor=f"page-{number}", label=f"{noun} {number}", number=number)
        for number in range(1, page_count + 1)
    ]
    return DocumentText(blocks=pages, paged=True, page_count=page_count)
