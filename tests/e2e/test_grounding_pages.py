"""A lead's data set in a real browser: she creates it, drops two files on the drop zone (one
good, one refused) and sees each file's progress and answer, the good one queued in the list;
a citation opens the viewer at its page. SCREENSHOT_DIR, when set, keeps a picture of each page."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from grounding.models import DataSet, Document
from org.models import User
from tests.e2e.browser import sign_in
from tests.e2e.test_deployment_gateway import keep_picture
from tests.grounding.documents import pdf_bytes
from tests.grounding.pages_fixtures import (  # noqa: F401  (fixtures)
    documents_storage_fixture,
    upload,
)

GOOD = "# Brand voice\n\nPlain words, short sentences. Say it like a friend would.\n"

DROP_FILES = """([selector, files]) => {
  const transfer = new DataTransfer();
  for (const file of files) {
    transfer.items.add(new File([new Uint8Array(file.bytes)], file.name, { type: file.type }));
  }
  const zone = document.querySelector(selector);
  for (const name of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(name, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}"""


def drop(page: Page, files: list[tuple[str, bytes, str]]) -> None:
    page.evaluate(
        DROP_FILES,
        [
            "[data-drop-zone]",
            [{"name": name, "bytes": list(data), "type": kind} for name, data, kind in files],
        ],
    )


def _lena_creates_the_data_set(page: Page, base_url: str) -> DataSet:
    sign_in(page, base_url, "lena@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data sets").click()
    expect(page.get_by_role("heading", name="Marketing data sets")).to_be_visible()
    page.get_by_role("link", name="New data set").first.click()
    page.get_by_label("Name").fill("Press kit")
    page.get_by_label(re.compile("Description")).fill(
        "Our voice, colours and logos, for the campaign writer."
    )
    page.get_by_label("Data classification").select_option("internal")
    page.get_by_role("button", name="Create data set").click()
    expect(page.get_by_text("“Press kit” is created")).to_be_visible()
    return DataSet.objects.get(name="Press kit")


def test_a_lead_drops_two_files_and_sees_each_ones_answer(browser: Browser, demo_site, documents_storage):
    page = browser.new_page()
    data_set = _lena_creates_the_data_set(page, demo_site)
    expect(page.get_by_text("No documents yet")).to_be_visible()

    drop(
        page,
        [
            ("voice.md", GOOD.encode(), "text/markdown"),
            ("logo.exe", b"MZ\x90\x00program", "application/x-msdownload"),
        ],
    )

    uploads = page.get_by_role("list", name="Uploads")
    good = uploads.get_by_role("listitem").filter(has_text="voice.md")
    refused = uploads.get_by_role("listitem").filter(has_text="logo.exe")
    expect(good).to_contain_text("Queued")
    expect(good).to_contain_text("“voice.md” is added and queued to be read.")
    expect(refused).to_contain_text("Not added")
    expect(refused).to_contain_text("“.exe” files cannot be added")
    # The documents list follows without a reload, and stays live while the document is queued.
    row = page.get_by_role("row", name=re.compile("voice.md"))
    expect(row).to_contain_text("Queued")
    expect(page.get_by_text(re.compile("Live · refreshes every"))).to_be_visible()
    keep_picture(page, "data-set-upload-refused")

    document = Document.objects.get(data_set=data_set)
    assert (document.name, document.state, document.version) == ("voice.md", Document.State.QUEUED, 1)

    # The same file again is unchanged; a changed one is version 2.
    drop(page, [("voice.md", GOOD.encode(), "text/markdown")])
    expect(uploads.get_by_role("listitem").filter(has_text="Unchanged")).to_contain_text(
        "already holds these exact bytes"
    )
    drop(page, [("voice.md", (GOOD + "\nNever shout.\n").encode(), "text/markdown")])
    expect(uploads.get_by_role("listitem").filter(has_text="Version 2 queued")).to_be_visible()
    expect(row.get_by_role("cell").nth(2)).to_have_text("2")

    # Ingestion moves on (written here as its worker would); the page follows on its own.
    Document.objects.filter(pk=document.pk).update(state=Document.State.INDEXED, pages=1, passages=1)
    expect(row).to_contain_text("Indexed", timeout=10_000)
    expect(page.get_by_text(re.compile("Live · refreshes every"))).to_be_hidden(timeout=10_000)
    page.close()


def test_each_file_shows_its_progress_while_it_is_sent(browser: Browser, demo_site, documents_storage):
    context = browser.new_context()
    page = context.new_page()
    _lena_creates_the_data_set(page, demo_site)
    # A slow link, so the upload's progress can be watched.
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": 10_000_000, "uploadThroughput": 200_000},
    )
    big = ("# Handbook\n\n" + "Everyone has twenty-five days of annual leave. " * 40_000).encode()

    drop(page, [("handbook.md", big, "text/markdown"), ("empty.txt", b"", "text/plain")])

    uploads = page.get_by_role("list", name="Uploads")
    sending = uploads.get_by_role("listitem").filter(has_text="handbook.md")
    expect(sending).to_contain_text(re.compile(r"Uploading [1-9]\d?%"), timeout=10_000)
    expect(uploads.get_by_role("listitem").filter(has_text="empty.txt")).to_contain_text(
        "This file is empty (0 bytes)"
    )
    keep_picture(page, "data-set-upload-progress")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(sending).to_contain_text("Queued", timeout=30_000)
    context.close()


@pytest.fixture
def brand_guide_in_several_states(demo_site, documents_storage) -> DataSet:
    from grounding.services import DataSetSpec, data_set_create

    lena = User.objects.get(email="lena@example.com")
    data_set = data_set_create(
        department=lena.memberships.get().department,
        spec=DataSetSpec(
            name="Press kit",
            description="Our voice, colours and logos, for the campaign writer.",
            data_classification="confidential",
            owner=lena,
        ),
        actor=lena,
    )
    now = timezone.now()
    states = [
        (
            "brand-voice.pdf",
            pdf_bytes(["Brand voice", "Plain words, short sentences.", "Say it like a friend would."]),
            "indexed",
            3,
            9,
            "",
        ),
        ("colours.md", b"# Colours\n\nTeal and sand only.\n", "indexed", None, 2, ""),
        ("logo-rules.md", b"# Logos\n\nKeep clear space.\n", "embedding", None, 0, ""),
        ("press-kit.md", b"# Press kit\n\nAsk the press office.\n", "queued", None, 0, ""),
        (
            "scanned-contract.pdf",
            pdf_bytes([""]),
            "failed",
            1,
            0,
            "No text was found in this file. A scanned PDF or a picture of a page needs text "
            "recognition (OCR) before it is uploaded.",
        ),
    ]
    for position, (name, data, state, pages, passages, reason) in enumerate(states):
        document = upload(data_set, name, data, actor=lena)
        Document.objects.filter(pk=document.pk).update(
            state=state,
            pages=pages,
            passages=passages,
            state_reason=reason,
            indexed_at=now if state == "indexed" else None,
            uploaded_at=now - timedelta(hours=position * 5),
        )
    return data_set


def test_the_pages_in_pictures(browser: Browser, demo_site, brand_guide_in_several_states):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, demo_site, "lena@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data sets").click()
    row = page.get_by_role("row", name=re.compile("Press kit"))
    expect(row).to_contain_text("2 indexed")
    expect(row).to_contain_text("2 being read")
    expect(row).to_contain_text("1 failed")
    keep_picture(page, "data-set-list")

    row.get_by_role("link", name="Press kit").click()
    expect(page.get_by_role("row", name=re.compile("scanned-contract.pdf"))).to_contain_text(
        "No text was found"
    )
    keep_picture(page, "data-set-page")

    page.get_by_role("link", name="brand-voice.pdf", exact=True).click()
    expect(page.get_by_role("heading", name="brand-voice.pdf")).to_be_visible()
    page.goto(page.url + "?page=2")
    cited = page.locator("#page-2")
    expect(cited).to_have_class(re.compile("doc-page--cited"))
    expect(cited).to_contain_text("Plain words, short sentences.")
    expect(cited).to_be_in_viewport()
    keep_picture(page, "document-viewer")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download original").click()
    assert download.value.suggested_filename == "brand-voice.pdf"

    page.get_by_role("link", name="← Press kit").click()
    page.get_by_role("link", name="Delete colours.md").click()
    expect(page.get_by_role("heading", name="Delete “colours.md”?")).to_be_visible()
    keep_picture(page, "document-delete")
    page.get_by_role("button", name="Delete document").click()
    expect(page.get_by_text("“colours.md” is being deleted")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("colours.md"))).to_contain_text("Deleting")

    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_text("still holds 5 documents")).to_be_visible()
    expect(page.get_by_role("heading", name="“Press kit” cannot be deleted yet")).to_be_visible()
    keep_picture(page, "data-set-delete-refused")

    page.goto(f"{demo_site}/data-sets/new/")
    page.get_by_role("button", name="Create data set").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    keep_picture(page, "data-set-form-errors")

    # At a phone's width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{demo_site}/data-sets/{brand_guide_in_several_states.pk}/")
    expect(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible()
    keep_picture(page, "data-set-page-phone")
    page.get_by_role("link", name="brand-voice.pdf", exact=True).click()
    expect(page.get_by_role("heading", name="brand-voice.pdf")).to_be_visible()
    keep_picture(page, "document-viewer-phone")
    page.close()
