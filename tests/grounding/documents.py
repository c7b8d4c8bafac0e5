"""Documents built in the tests with the libraries Switchyard reads them with (and PDFs written
by hand, as pypdf does not lay out text)."""

import io
import zipfile

from docx import Document
from openpyxl import Workbook
from pptx import Presentation
from pptx.util import Inches
from pypdf import PdfReader, PdfWriter

from grounding.pdf import pdf_file, text_pdf


def pdf_bytes(pages: list[str]) -> bytes:
    """A PDF with one line of Helvetica text per page."""
    return text_pdf(pages)


def many_pages_pdf(page_count: int) -> bytes:
    """A PDF of many blank pages sharing one page object's settings."""
    kids = " ".join(f"{3 + index} 0 R" for index in range(page_count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode(),
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * page_count
    return pdf_file(objects)


def encrypted_pdf(pages: list[str], *, password: str, owner_password: str | None = None) -> bytes:
    """A PDF that asks for `password` to open (none: it opens freely, the owner's restricts it)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password=password, owner_password=owner_password or password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes() -> bytes:
    document = Document()
    document.add_heading("Employee handbook", level=0)
    document.add_paragraph("Welcome to the company.")
    document.add_heading("Leave", level=1)
    document.add_paragraph("Everyone has 25 days of annual leave.")
    document.add_heading("Parental leave", level=2)
    document.add_paragraph("Parents take up to 16 weeks of paid parental leave.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Weeks"
    table.cell(0, 1).text = "Pay"
    table.cell(1, 0).text = "16"
    table.cell(1, 1).text = "Full"
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Submit receipts within 30 days.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    presentation = Presentation()
    for title, body, notes in (
        ("Brand voice", "Plain words, short sentences.", "Say it like a friend would."),
        ("Colours", "Teal and sand only.", ""),
    ):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
    box.text_frame.text = "A slide without a title."
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def xlsx_bytes(rows: int = 3) -> bytes:
    workbook = Workbook()
    budget = workbook.active
    budget.title = "Budget"
    budget.append(["Item", "Amount"])
    for index in range(rows - 1):
        budget.append([f"Line {index + 1}", 100 * (index + 1)])
    notes = workbook.create_sheet("Notes")
    notes.append(["Approved by finance"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


DOCX_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
