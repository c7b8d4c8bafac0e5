"""What a file is and whether it may be read: each refusal is a named type with a reason."""

import io

import pytest

from grounding.extract import read_document
from grounding.files import (
    CorruptFile,
    DocumentKind,
    EmptyFile,
    ExpandsTooMuch,
    FileTooLarge,
    PasswordProtected,
    TooManyPages,
    TypeMismatch,
    UnsupportedType,
    check_file,
    read_upload,
)
from tests.grounding.documents import (
    DOCX_CONTENT_TYPES,
    docx_bytes,
    encrypted_pdf,
    many_pages_pdf,
    pdf_bytes,
    pptx_bytes,
    xlsx_bytes,
    zip_bytes,
)


@pytest.mark.parametrize(
    ("name", "build", "kind"),
    [
        ("policy.pdf", lambda: pdf_bytes(["Hello"]), DocumentKind.PDF),
        ("Handbook.DOCX", docx_bytes, DocumentKind.DOCX),
        ("brand.pptx", pptx_bytes, DocumentKind.PPTX),
        ("budget.xlsx", xlsx_bytes, DocumentKind.XLSX),
        ("notes.md", lambda: b"# Notes\nText", DocumentKind.MARKDOWN),
        ("notes.txt", lambda: "Caf\u00e9".encode(), DocumentKind.TEXT),
        ("page.html", lambda: b"<!doctype html><p>Hi</p>", DocumentKind.HTML),
    ],
)
def test_each_type_is_told_from_its_bytes(name, build, kind):
    checked = check_file(name=f"C:\\Users\\lena\\{name}", data=build())

    assert checked.kind is kind
    assert checked.name == name


def test_a_presentation_counts_its_slides_from_the_zip():
    assert check_file(name="brand.pptx", data=pptx_bytes()).pages == 3


def test_an_empty_file_is_refused():
    with pytest.raises(EmptyFile, match="empty"):
        check_file(name="notes.txt", data=b"")


def test_a_file_over_the_size_limit_is_refused(settings):
    settings.GROUNDING_MAX_FILE_BYTES = 1024

    with pytest.raises(FileTooLarge, match="up to"):
        check_file(name="notes.txt", data=b"a" * 1025)
    with pytest.raises(FileTooLarge):
        read_upload(io.BytesIO(b"a" * 5000))
    assert read_upload(io.BytesIO(b"a" * 1024)) == b"a" * 1024


def test_a_pdf_that_is_a_zip_is_refused():
    with pytest.raises(TypeMismatch, match=r"named \.pdf but it is a Word document"):
        check_file(name="report.pdf", data=docx_bytes())


def test_a_program_renamed_docx_is_refused():
    program = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200

    with pytest.raises(TypeMismatch, match="a program, not a document"):
        check_file(name="invoice.docx", data=program)


def test_text_named_as_a_pdf_is_refused():
    with pytest.raises(TypeMismatch, match="it is a text file"):
        check_file(name="report.pdf", data=b"just some words")


def test_an_unknown_extension_and_a_plain_zip_are_refused():
    with pytest.raises(UnsupportedType, match=r"“\.exe” files cannot be added"):
        check_file(name="setup.exe", data=b"MZ")
    with pytest.raises(UnsupportedType, match="zip archive"):
        check_file(name="archive.docx", data=zip_bytes({"a.txt": b"hello"}))


def test_binary_text_file_is_refused():
    with pytest.raises(UnsupportedType, match="not UTF-8"):
        check_file(name="notes.txt", data="Caf\u00e9".encode("latin-1"))


def test_a_zip_bomb_disguised_as_a_docx_is_refused_from_its_directory():
    bomb = zip_bytes(
        {"[Content_Types].xml": DOCX_CONTENT_TYPES, "word/document.xml": b"\x00" * (50 * 1024 * 1024)}
    )
    assert len(bomb) < 100_000

    with pytest.raises(ExpandsTooMuch, match=r"compressed .* to 1"):
        check_file(name="handbook.docx", data=bomb)


def test_an_office_file_expanding_past_the_limit_is_refused(settings):
    settings.GROUNDING_MAX_EXPANDED_BYTES = 10_000

    with pytest.raises(ExpandsTooMuch, match="expands to more than"):
        check_file(name="handbook.docx", data=docx_bytes())


def test_a_part_larger_than_it_declares_is_refused_as_damaged():
    honest = zip_bytes({"[Content_Types].xml": DOCX_CONTENT_TYPES, "word/document.xml": b"<w/>" * 1000})
    # The central directory says the part expands to 4 bytes; it expands to 4,000.
    lying = honest.replace((4000).to_bytes(4, "little"), (4).to_bytes(4, "little"))
    assert lying != honest

    with pytest.raises(CorruptFile, match="damaged"):
        check_file(name="handbook.docx", data=lying)


def test_xml_with_a_document_type_declaration_is_refused():
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><w>&lol;</w>'
    bomb = zip_bytes({"[Content_Types].xml": DOCX_CONTENT_TYPES, "word/document.xml": laughs})

    with pytest.raises(CorruptFile, match="never does"):
        check_file(name="handbook.docx", data=bomb)


def test_an_encrypted_pdf_is_refused():
    with pytest.raises(PasswordProtected, match="This PDF is password-protected: remove the password"):
        read_document(name="salaries.pdf", data=encrypted_pdf(["Salaries"], password="payroll-2026"))


def test_a_pdf_that_only_restricts_printing_is_read():
    restricted = encrypted_pdf(["Brand rules"], password="", owner_password="owner-2026")

    assert [section.text for section in read_document(name="rules.pdf", data=restricted)] == ["Brand rules"]


def test_a_corrupt_pdf_is_refused():
    with pytest.raises(CorruptFile, match="damaged"):
        read_document(name="broken.pdf", data=b"%PDF-1.7\n" + bytes(range(256)) * 40)


def test_a_corrupt_docx_is_refused():
    broken = zip_bytes({"[Content_Types].xml": DOCX_CONTENT_TYPES, "word/document.xml": b"<not xml"})

    with pytest.raises(CorruptFile, match="damaged"):
        read_document(name="handbook.docx", data=broken)


def test_a_ten_thousand_page_pdf_is_refused_before_extracting():
    with pytest.raises(TooManyPages, match="10,000 pages; a PDF of up to 2,000 pages"):
        read_document(name="archive.pdf", data=many_pages_pdf(10_000))


def test_the_page_limit_is_a_setting(settings):
    settings.GROUNDING_MAX_PAGES = 2

    with pytest.raises(TooManyPages, match="3 pages"):
        read_document(name="policy.pdf", data=pdf_bytes(["one", "two", "three"]))
    with pytest.raises(TooManyPages, match="3 slides"):
        check_file(name="brand.pptx", data=pptx_bytes())


def test_a_password_protected_or_old_office_file_is_refused():
    wrapped = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600

    with pytest.raises(UnsupportedType, match="password-protected Office document"):
        check_file(name="salaries.xlsx", data=wrapped)
