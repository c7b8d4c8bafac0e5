"""What an uploaded file really is, and whether Switchyard may read it, before a parser reads it.

The type comes from the bytes, never from the name alone: `%PDF-` starts a PDF; an Office file is
a zip whose `[Content_Types].xml` names the main part of a Word, PowerPoint or Excel document;
anything else must be UTF-8 text (Markdown, plain text or HTML, told apart by the name). A file
whose bytes and name disagree is refused, so a program renamed `.docx` is never handed to a
parser.

An Office file is checked as a zip before any parser opens it: the central directory's declared
sizes, compression ratios and entry count, then every part is streamed in bounded reads (Python's
zipfile never returns more than a part's declared size, and a part that holds more fails its
checksum), so a zip bomb is refused without being expanded. Office XML never carries a document
type declaration, so a part with one (the way to an entity-expansion bomb) is refused too.

Each refusal is a `FileRefused` with a `code` for the program and a message a department lead
understands.
"""

import io
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath, PureWindowsPath
from typing import BinaryIO

from django.conf import settings

MIB = 1024 * 1024
# Apache POI's zip-bomb rule: a part smaller than this may be compressed at any ratio.
RATIO_GRACE_BYTES = 100 * 1024
READ_BLOCK_BYTES = MIB
# [Content_Types].xml of a real Office file is a few kilobytes.
CONTENT_TYPES_MAX_BYTES = MIB


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


KIND_LABELS = {
    DocumentKind.PDF: "a PDF",
    DocumentKind.DOCX: "a Word document (.docx)",
    DocumentKind.PPTX: "a PowerPoint presentation (.pptx)",
    DocumentKind.XLSX: "an Excel workbook (.xlsx)",
    DocumentKind.MARKDOWN: "a Markdown file",
    DocumentKind.TEXT: "a text file",
    DocumentKind.HTML: "an HTML page",
}

KIND_BY_EXTENSION = {
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
    ".pptx": DocumentKind.PPTX,
    ".xlsx": DocumentKind.XLSX,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
}
TEXT_KINDS = frozenset({DocumentKind.MARKDOWN, DocumentKind.TEXT, DocumentKind.HTML})
ZIP_KINDS = frozenset({DocumentKind.DOCX, DocumentKind.PPTX, DocumentKind.XLSX})

# The content type of each Office format's main part, as [Content_Types].xml names it.
OFFICE_MAIN_PARTS = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DocumentKind.DOCX,
    b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": DocumentKind.PPTX,
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": DocumentKind.XLSX,
}
# The parts that count as pages: slides of a presentation, sheets of a workbook.
PAGE_PARTS = {DocumentKind.PPTX: "ppt/slides/slide", DocumentKind.XLSX: "xl/worksheets/sheet"}

ACCEPTED = "PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), Markdown (.md), text (.txt) and HTML"

# Signatures of files that are certainly not documents Switchyard reads.
PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
# Word 97-2003, Excel 97-2003 and PowerPoint 97-2003 files, and password-protected Office files
# (Office wraps an encrypted .docx in this older container).
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PROGRAM_MAGICS = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"#!")
UTF8_BOM = b"\xef\xbb\xbf"


class FileRefused(Exception):
    """A file Switchyard will not read; `message` tells the person who uploaded it why."""

    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmptyFile(FileRefused):
    code = "empty"


class FileTooLarge(FileRefused):
    code = "too_large"


class UnsupportedType(FileRefused):
    code = "unsupported_type"


class TypeMismatch(FileRefused):
    """The file's bytes say one type and its name another."""

    code = "type_mismatch"


class PasswordProtected(FileRefused):
    code = "password_protected"


class CorruptFile(FileRefused):
    code = "corrupt"


class TooManyPages(FileRefused):
    code = "too_many_pages"


class ExpandsTooMuch(FileRefused):
    """A zip bomb, or an Office file too large once opened."""

    code = "expands_too_much"


class TooManyRows(FileRefused):
    code = "too_many_rows"


class NoText(FileRefused):
    code = "no_text"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_pages: int
    max_expanded_bytes: int
    max_compression_ratio: int
    max_zip_entries: int
    max_sheet_rows: int

    @classmethod
    def from_settings(cls) -> "Limits":
        # Read at each call, so a changed setting (and a test's override) applies at once.
        return cls(
            max_file_bytes=settings.GROUNDING_MAX_FILE_BYTES,
            max_pages=settings.GROUNDING_MAX_PAGES,
            max_expanded_bytes=settings.GROUNDING_MAX_EXPANDED_BYTES,
            max_compression_ratio=settings.GROUNDING_MAX_COMPRESSION_RATIO,
            max_zip_entries=settings.GROUNDING_MAX_ZIP_ENTRIES,
            max_sheet_rows=settings.GROUNDING_MAX_SHEET_ROWS,
        )


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed every check made on its bytes: what it is and how large."""

    name: str
    kind: DocumentKind
    size: int
    # Slides or sheets counted from an Office file's parts; PDFs are counted when opened.
    pages: int | None = None


def read_upload(stream: BinaryIO, *, limits: Limits | None = None) -> bytes:
    """The bytes of an uploaded or stored file, read no further than the size limit allows."""
    limits = limits or Limits.from_settings()
    data = stream.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise FileTooLarge(_too_large_message(None, limits))
    return data


def check_file(*, name: str, data: bytes, limits: Limits | None = None) -> CheckedFile:
    """What the file is, refusing one that is empty, too large, not a type Switchyard reads,
    named for another type than it is, or an Office file that is not a sound zip."""
    limits = limits or Limits.from_settings()
    name = display_name(name)
    if not data:
        raise EmptyFile("This file is empty (0 bytes): check that it was saved properly and upload it again.")
    if len(data) > limits.max_file_bytes:
        raise FileTooLarge(_too_large_message(len(data), limits))
    named = _kind_from_name(name)
    actual = _kind_from_bytes(data, named=named)
    if actual is not named and not (actual in TEXT_KINDS and named in TEXT_KINDS):
        raise TypeMismatch(
            f"This file is named {PurePosixPath(name).suffix.lower()} but it is {actual.label}: "
            "save it in the format its name says (or rename it) and upload it again."
        )
    pages = _check_office_zip(data, kind=named, limits=limits) if named in ZIP_KINDS else None
    return CheckedFile(name=name, kind=named, size=len(data), pages=pages)


def display_name(name: str) -> str:
    """The file's own name, without any folders a browser or a client sent with it."""
    return PureWindowsPath(PurePosixPath(name).name).name.strip() or "unnamed"


def refuse_pages(pages: int, *, kind: DocumentKind, limits: Limits) -> None:
    """Refuses a document with more pages (slides, sheets) than a data set takes."""
    if pages <= limits.max_pages:
        return
    noun, what = {
        DocumentKind.PDF: ("pages", "a PDF"),
        DocumentKind.PPTX: ("slides", "a presentation"),
        DocumentKind.XLSX: ("sheets", "a workbook"),
    }.get(kind, ("pages", "a document"))
    raise TooManyPages(
        f"This file has {pages:,} {noun}; {what} of up to {limits.max_pages:,} {noun} can be added. "
        "Split it into parts and upload them one by one."
    )


def _too_large_message(size: int | None, limits: Limits) -> str:
    limit = f"{limits.max_file_bytes / MIB:,.0f} MB"
    size_text = f"{size / MIB:,.1f} MB" if size is not None else f"larger than {limit}"
    return (
        f"This file is {size_text}; files of up to {limit} can be added. "
        "Split it or save a smaller copy (for example with images compressed) and upload that."
    )


def _kind_from_name(name: str) -> DocumentKind:
    suffix = PurePosixPath(name).suffix.lower()
    kind = KIND_BY_EXTENSION.get(suffix)
    if kind is None:
        what = f"“{suffix}” files" if suffix else "files without an extension such as .pdf or .docx"
        raise UnsupportedType(f"Switchyard reads {ACCEPTED} files; {what} cannot be added.")
    return kind


def _kind_from_bytes(data: bytes, *, named: DocumentKind) -> DocumentKind:
    if data.startswith(PDF_MAGIC):
        return DocumentKind.PDF
    if data.startswith(ZIP_MAGIC):
        return _office_kind(data)
    if data.startswith(OLE_MAGIC):
        raise UnsupportedType(
            "This is an older Office file (.doc, .xls, .ppt) or a password-protected Office document: "
            "open it, save it as .docx, .pptx or .xlsx without a password, and upload it again."
        )
    if data.startswith(PROGRAM_MAGICS):
        raise TypeMismatch(
            f"This file is a program, not a document, although its name says {named.label}: it was not read."
        )
    if _is_utf8_text(data):
        return named if named in TEXT_KINDS else DocumentKind.TEXT
    if named in TEXT_KINDS:
        raise UnsupportedType(
            "This file is not UTF-8 text: save it as UTF-8 (most editors offer this under “Save as”) "
            "and upload it again."
        )
    raise TypeMismatch(
        f"This file's contents are not {named.label}, although its name says so: it was not read."
    )


def _is_utf8_text(data: bytes) -> bool:
    body = data.removeprefix(UTF8_BOM)
    # A NUL never appears in text people write; it marks a binary file (or UTF-16).
    if b"\x00" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_text(data: bytes) -> str:
    """A text file's contents (checked as UTF-8 by `check_file`), without a byte-order mark."""
    return data.removeprefix(UTF8_BOM).decode("utf-8")


def _open_zip(data: bytes) -> zipfile.ZipFile:
    """The zip's central directory, read without expanding anything."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise CorruptFile(
            "This file looks like an Office document but is damaged and cannot be opened: "
            "open it in Office, save a new copy and upload that."
        ) from exc


def _office_kind(data: bytes) -> DocumentKind:
    with _open_zip(data) as archive:
        try:
            info = archive.getinfo("[Content_Types].xml")
        except KeyError:
            info = None
        if info is None or info.file_size > CONTENT_TYPES_MAX_BYTES:
            raise UnsupportedType(
                "This is a zip archive, not a Word, PowerPoint or Excel document. "
                f"Switchyard reads {ACCEPTED} files."
            )
        content_types = _read_bounded(archive, info, limit=CONTENT_TYPES_MAX_BYTES)
    for content_type, kind in OFFICE_MAIN_PARTS.items():
        if content_type in content_types:
            return kind
    raise UnsupportedType(
        "This Office file is not a plain Word, PowerPoint or Excel document (it may hold macros or be a "
        "template): save it as .docx, .pptx or .xlsx and upload it again."
    )


def _check_office_zip(data: bytes, *, kind: DocumentKind, limits: Limits) -> int | None:
    with _open_zip(data) as archive:
        entries = archive.infolist()
        if len(entries) > limits.max_zip_entries:
            raise ExpandsTooMuch(
                f"This file is made of {len(entries):,} parts, far more than a real Office document: "
                "it may be damaged or built to overload readers, so it was not read."
            )
        declared = sum(entry.file_size for entry in entries)
        if declared > limits.max_expanded_bytes:
            raise ExpandsTooMuch(_expands_message(limits))
        for entry in entries:
            if entry.flag_bits & 0x1:
                raise PasswordProtected(
                    "This Office file is password-protected: remove the password and upload it again."
                )
            ratio = entry.file_size / max(entry.compress_size, 1)
            if entry.file_size > RATIO_GRACE_BYTES and ratio > limits.max_compression_ratio:
                raise ExpandsTooMuch(
                    f"Part of this file is compressed {ratio:,.0f} to 1, far more than a real Office "
                    "document: "
                    "it may be damaged or built to overload readers, so it was not read."
                )
        expanded = 0
        for entry in entries:
            expanded += _stream_part(
                archive, entry, limit=limits.max_expanded_bytes - expanded, limits=limits
            )
    prefix = PAGE_PARTS.get(kind)
    if prefix is None:
        return None
    pages = sum(
        1 for entry in entries if entry.filename.startswith(prefix) and entry.filename.endswith(".xml")
    )
    refuse_pages(pages, kind=kind, limits=limits)
    return pages


def _expands_message(limits: Limits) -> str:
    return (
        f"This file expands to more than {limits.max_expanded_bytes / MIB:,.0f} MB when opened, more than "
        "Switchyard reads: it may be damaged or built to overload readers. Save a smaller copy and upload it."
    )


def _stream_part(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, *, limit: int, limits: Limits) -> int:
    """Reads one part in bounded blocks (checking its checksum), never holding it whole; returns
    its size. An XML part is searched for a document type declaration on the way."""
    is_xml = entry.filename.endswith((".xml", ".rels"))
    size = 0
    tail = b""
    try:
        with archive.open(entry) as part:
            while block := part.read(READ_BLOCK_BYTES):
                size += len(block)
                if size > limit:
                    raise ExpandsTooMuch(_expands_message(limits))
                if is_xml:
                    window = tail + block
                    if b"<!DOCTYPE" in window or b"<!ENTITY" in window:
                        raise CorruptFile(
                            "This Office file holds XML that a real Office document never does: "
                            "it may be built to overload readers, so it was not read."
                        )
                    tail = window[-16:]
    except FileRefused:
        raise
    except Exception as exc:
        # A bad checksum, a truncated part, an unknown compression method, a broken deflate
        # stream: zipfile and zlib raise a handful of unrelated types for them.
        raise _damaged() from exc
    return size


def _damaged() -> CorruptFile:
    return CorruptFile(
        "This Office file is damaged and cannot be read: open it in Office, save a new copy and upload that."
    )


def _read_bounded(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, *, limit: int) -> bytes:
    try:
        with archive.open(entry) as part:
            data = part.read(limit + 1)
    except Exception as exc:
        raise _damaged() from exc
    if len(data) > limit:
        raise _damaged()
    return data
