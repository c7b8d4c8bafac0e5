"""Text with its place: an uploaded file read into sections a citation can point at.

A section is text with the page (PDF) or slide (PPTX) it is on, counted from 1, or the sheet
(XLSX) it comes from, and the headings above it (DOCX, PPTX titles, Markdown, HTML). A Word
document has no pages until Word lays it out, so its sections have none.

The parsers: pypdf, python-docx, python-pptx and openpyxl, chosen to keep the weight modest.
pypdf and openpyxl are pure Python; python-docx and python-pptx are pure Python over lxml (and
python-pptx over Pillow and XlsxWriter), which install as self-contained wheels. None needs a
system library, a converter such as LibreOffice or Tika, a Java runtime or a network call; all
four are long-lived, widely used and still released. pypdf bounds the streams it decompresses;
the Office files reach their parsers only after grounding/files.py has checked them as zips.

What is read: a PDF's text page by page (a scanned page has none: no OCR here); a Word
document's body paragraphs and tables (not its headers, footers, footnotes, comments, text boxes
or content controls); every shape's text, tables and the speaker notes of a slide; the cell
values of a workbook (formulas as last calculated). HTML headings follow h1-h6, a Word
document's its Title and Heading 1-9 styles, Markdown's its `#` lines.

What a document says is text to quote, never an instruction: nothing here executes or follows
anything in a file (an HTML page's scripts and styles are dropped, not run).
"""

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from docx import Document
from docx.table import Table
from openpyxl import load_workbook
from pptx import Presentation
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.shapes.shapetree import GroupShapes, SlideShapes
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PdfReadError
from pypdf.generic import DictionaryObject

from grounding.files import (
    CheckedFile,
    CorruptFile,
    DocumentKind,
    FileRefused,
    Limits,
    NoText,
    PasswordProtected,
    TooManyRows,
    check_file,
    decode_text,
    refuse_pages,
)


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text and where it is."""

    text: str
    page: int | None = None
    sheet: str | None = None
    heading_path: tuple[str, ...] = ()


def read_document(*, name: str, data: bytes, limits: Limits | None = None) -> list[Section]:
    """The document's text as sections in reading order, after `check_file`; a file that cannot
    be read raises a `FileRefused` saying why."""
    limits = limits or Limits.from_settings()
    checked = check_file(name=name, data=data, limits=limits)
    return extract_sections(checked, data, limits=limits)


def extract_sections(checked: CheckedFile, data: bytes, *, limits: Limits) -> list[Section]:
    reader = READERS[checked.kind]
    try:
        sections = [section for section in reader(data, limits) if section.text]
    except FileRefused:
        raise
    except Exception as exc:
        # The parsers raise many unrelated types on a damaged file (their own, lxml's, KeyError...).
        raise CorruptFile(
            f"This file is damaged and cannot be read as {checked.kind.label}: "
            "open it, save a new copy and upload that."
        ) from exc
    if not sections:
        raise NoText(
            "No text was found in this file. A scanned PDF or a picture of a page needs text recognition "
            "(OCR) before it is uploaded."
        )
    return sections


# Headings are tracked as a stack of (level, text); a heading closes every one at its level or below.
HeadingStack = list[tuple[int, str]]


def _enter_heading(stack: HeadingStack, level: int, text: str) -> None:
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, text))


def _path(stack: HeadingStack) -> tuple[str, ...]:
    return tuple(text for _level, text in stack)


def _clean(text: str) -> str:
    lines = (line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# PDF -----------------------------------------------------------------------------------------


def _read_pdf(data: bytes, limits: Limits) -> Iterator[Section]:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except PdfReadError as exc:
        raise CorruptFile(
            "This PDF is damaged and cannot be read: open it, save a new copy (or print it to PDF) "
            "and upload that."
        ) from exc
    # A PDF that only restricts printing or copying opens without a password, and so is read here
    # too; one that asks for a password to open is refused.
    if encrypted and not _opens_without_password(reader):
        raise PasswordProtected("This PDF is password-protected: remove the password and upload it again.")
    # The page tree's declared count first: a 10,000-page PDF is refused before its pages are walked.
    refuse_pages(_declared_pages(reader), kind=DocumentKind.PDF, limits=limits)
    pages = reader.pages
    refuse_pages(len(pages), kind=DocumentKind.PDF, limits=limits)
    for number, page in enumerate(pages, start=1):
        yield Section(text=_clean(page.extract_text()), page=number)


def _opens_without_password(reader: PdfReader) -> bool:
    try:
        return reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except (PdfReadError, DependencyError, NotImplementedError):
        return False


def _declared_pages(reader: PdfReader) -> int:
    """The page count the PDF's page tree states (0 if it states none): read without walking it."""
    page_tree = reader.root_object.get("/Pages")
    page_tree = page_tree.get_object() if page_tree is not None else None
    count = page_tree.get("/Count") if isinstance(page_tree, DictionaryObject) else None
    return count if isinstance(count, int) else 0


# DOCX ----------------------------------------------------------------------------------------

DOCX_HEADING = re.compile(r"^Heading ([1-9])$")


def _read_docx(data: bytes, limits: Limits) -> Iterator[Section]:
    document = Document(io.BytesIO(data))
    headings: HeadingStack = []
    paragraphs: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            paragraphs.append(_docx_table_text(block))
            continue
        text = block.text.strip()
        level = _docx_heading_level(block.style.name if block.style is not None else None)
        if level is None:
            paragraphs.append(text)
            continue
        if paragraphs:
            yield Section(text=_clean("\n\n".join(paragraphs)), heading_path=_path(headings))
        paragraphs = [text]
        if text:
            _enter_heading(headings, level, text)
    if paragraphs:
        yield Section(text=_clean("\n\n".join(paragraphs)), heading_path=_path(headings))


def _docx_heading_level(style_name: str | None) -> int | None:
    if style_name == "Title":
        return 0
    match = DOCX_HEADING.match(style_name or "")
    return int(match.group(1)) if match else None


def _docx_table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: list[object] = []
        for cell in row.cells:
            # A merged cell appears once for every grid column it spans.
            if any(cell._tc is other for other in seen):
                continue
            seen.append(cell._tc)
            cells.append(" ".join(cell.text.split()))
        rows.append(" | ".join(cells))
    return "\n".join(rows)


# PPTX ----------------------------------------------------------------------------------------


def _read_pptx(data: bytes, limits: Limits) -> Iterator[Section]:
    presentation = Presentation(io.BytesIO(data))
    slides = presentation.slides
    refuse_pages(len(slides), kind=DocumentKind.PPTX, limits=limits)
    for number, slide in enumerate(slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        texts = [title] if title else []
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            texts.extend(_shape_texts(shape))
        if slide.has_notes_slide:
            notes_frame = slide.notes_slide.notes_text_frame
            notes = notes_frame.text.strip() if notes_frame is not None else ""
            if notes:
                texts.append(f"Notes: {notes}")
        yield Section(
            text=_clean("\n\n".join(text for text in texts if text)),
            page=number,
            heading_path=(title,) if title else (),
        )


def _shapes(shapes: SlideShapes | GroupShapes) -> Iterator[BaseShape]:
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _shape_texts(shape: BaseShape) -> list[str]:
    if shape.has_text_frame:
        return [shape.text_frame.text.strip()]  # type: ignore[attr-defined]
    if isinstance(shape, GraphicFrame) and shape.has_table:
        return [
            "\n".join(
                " | ".join(" ".join(cell.text.split()) for cell in row.cells) for row in shape.table.rows
            )
        ]
    return []


# XLSX ----------------------------------------------------------------------------------------


def _read_xlsx(data: bytes, limits: Limits) -> Iterator[Section]:
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        refuse_pages(len(workbook.sheetnames), kind=DocumentKind.XLSX, limits=limits)
        rows_read = 0
        for sheet in workbook.worksheets:
            if not hasattr(sheet, "reset_dimensions"):
                continue  # a chart sheet holds no cells
            # The sheet's declared size is not trusted: rows are padded only to their own last cell.
            sheet.reset_dimensions()
            lines = []
            for row in sheet.iter_rows(values_only=True):
                rows_read += 1
                if rows_read > limits.max_sheet_rows:
                    raise TooManyRows(
                        f"This workbook has more than {limits.max_sheet_rows:,} rows; workbooks of up to "
                        f"{limits.max_sheet_rows:,} rows (all sheets together) can be added. "
                        "Remove the rows an assistant does not need, or split the workbook."
                    )
                cells = ["" if value is None else " ".join(str(value).split()) for value in row]
                line = "\t".join(cells).rstrip("\t")
                if line:
                    lines.append(line)
            yield Section(text="\n".join(lines), sheet=sheet.title)
    finally:
        workbook.close()


# Markdown and plain text ---------------------------------------------------------------------

MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
MARKDOWN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _read_markdown(data: bytes, limits: Limits) -> Iterator[Section]:
    headings: HeadingStack = []
    lines: list[str] = []
    fence: str | None = None
    for line in decode_text(data).splitlines():
        fence_match = MARKDOWN_FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0]
            elif marker[0] == fence:
                fence = None
        heading = MARKDOWN_HEADING.match(line) if fence is None else None
        if heading is None:
            lines.append(line)
            continue
        yield Section(text=_clean("\n".join(lines)), heading_path=_path(headings))
        text = heading.group(2).strip()
        _enter_heading(headings, len(heading.group(1)), text)
        lines = [text]
    yield Section(text=_clean("\n".join(lines)), heading_path=_path(headings))


def _read_text(data: bytes, limits: Limits) -> Iterator[Section]:
    yield Section(text=_clean(decode_text(data)))


# HTML ----------------------------------------------------------------------------------------


class _HtmlText(HTMLParser):
    """An HTML page's visible text with its h1-h6 headings; scripts, styles and other parts a
    reader does not see are dropped unread."""

    SKIPPED = frozenset(
        {"script", "style", "template", "noscript", "svg", "math", "title", "iframe", "object"}
    )
    BLOCKS = frozenset(
        {
            "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
            "header", "footer", "nav", "aside", "main", "blockquote", "pre", "hr", "figure", "figcaption",
            "h1", "h2", "h3", "h4", "h5", "h6", "form", "fieldset", "address", "details", "summary",
        }
    )  # fmt: skip
    HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._headings: HeadingStack = []
        self._parts: list[str] = []
        self._skipping = 0
        self._heading_level: int | None = None
        self._heading_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.HEADINGS and not self._skipping:
            self._close_section()
            self._heading_level = self.HEADINGS[tag]
            self._heading_parts = []
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")
        elif tag in ("td", "th"):
            self._parts.append(" | ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.HEADINGS and self._heading_level is not None:
            text = " ".join("".join(self._heading_parts).split())
            if text:
                _enter_heading(self._headings, self._heading_level, text)
                self._parts.append(text + "\n\n")
            self._heading_level = None
        elif tag in self.BLOCKS:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._heading_level is not None:
            self._heading_parts.append(data)
        else:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        if self._heading_level is not None:
            # A heading left open to the end of the page is text, not a heading of nothing.
            self._parts.extend(self._heading_parts)
        self._close_section()

    def _close_section(self) -> None:
        paragraphs = (" ".join(part.split()) for part in "".join(self._parts).split("\n\n"))
        text = "\n\n".join(paragraph for paragraph in paragraphs if paragraph)
        if text:
            self.sections.append(Section(text=text, heading_path=_path(self._headings)))
        self._parts = []


def _read_html(data: bytes, limits: Limits) -> Iterator[Section]:
    parser = _HtmlText()
    parser.feed(decode_text(data))
    parser.close()
    yield from parser.sections


READERS = {
    DocumentKind.PDF: _read_pdf,
    DocumentKind.DOCX: _read_docx,
    DocumentKind.PPTX: _read_pptx,
    DocumentKind.XLSX: _read_xlsx,
    DocumentKind.MARKDOWN: _read_markdown,
    DocumentKind.TEXT: _read_text,
    DocumentKind.HTML: _read_html,
}
