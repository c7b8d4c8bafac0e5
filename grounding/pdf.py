"""A plain PDF of text pages (Helvetica, one line per line of text), written by hand: the demo's
handbook and the benchmark's generated documents are real PDFs read page by page like any upload,
and pypdf, which reads them, does not lay out text."""

import io
import textwrap

LINE_CHARACTERS = 90
LINES_PER_PAGE = 50


def text_pdf(pages: list[str]) -> bytes:
    """One PDF page per item; each is wrapped to lines of at most LINE_CHARACTERS (a blank line
    ends a paragraph) and cut at LINES_PER_PAGE."""
    objects: list[bytes] = []
    page_count = len(pages)
    # 1: catalog, 2: page tree, 3: font, then a page and its contents for each page.
    kids = " ".join(f"{4 + 2 * index} 0 R" for index in range(page_count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for index, text in enumerate(pages):
        shown = " T* ".join(f"({_escaped(line)}) Tj" for line in _lines(text))
        stream = f"BT /F1 11 Tf 14 TL 72 740 Td {shown} ET".encode("cp1252", errors="replace")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * index} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return pdf_file(objects)


def _lines(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, LINE_CHARACTERS) or [""]
    return lines[:LINES_PER_PAGE]


def _escaped(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_file(objects: list[bytes]) -> bytes:
    """The objects (numbered from 1, the first the catalog) as a PDF file with its cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()
