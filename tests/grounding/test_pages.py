"""The data set pages: the list, creating and editing a data set, its page with the documents,
the upload with its refusals, versions and limit, deleting, the viewer and the download."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from grounding.models import DataSet, Document, Grounding
from grounding.services import DocumentRefused, document_upload
from org.models import Membership
from provisioning.models import DataClassification, LandingZone, SearchService, SearchStorage
from tests.factories import make_deployment, make_user
from tests.grounding.documents import (
    DOCX_CONTENT_TYPES,
    docx_bytes,
    encrypted_pdf,
    many_pages_pdf,
    pdf_bytes,
    zip_bytes,
)
from tests.grounding.pages_fixtures import (  # noqa: F401  (fixtures)
    brand_guide_fixture,
    documents_storage_fixture,
    make_data_set,
    marketing_zone_fixture,
    upload,
)

pytestmark = pytest.mark.django_db

HANDBOOK = b"# Handbook\n\nEveryone has 25 days of annual leave.\n"


def _upload(client: Client, data_set: DataSet, name: str, data: bytes, *, as_json: bool = True):
    headers = {"Accept": "application/json"} if as_json else {}
    return client.post(
        reverse("grounding:document_upload", args=[data_set.pk]),
        {"file": _file(name, data)},
        headers=headers,
    )


def _file(name: str, data: bytes) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


# The ladder --------------------------------------------------------------------------------------


def _pages(data_set: DataSet, document: Document) -> dict[str, str]:
    return {
        "detail": reverse("grounding:data_set_detail", args=[data_set.pk]),
        "edit": reverse("grounding:data_set_edit", args=[data_set.pk]),
        "delete": reverse("grounding:data_set_delete", args=[data_set.pk]),
        "document_delete": reverse("grounding:document_delete", args=[document.pk]),
        "view": reverse("grounding:document_view", args=[document.pk]),
        "download": reverse("grounding:document_download", args=[document.pk]),
    }


def test_every_page_sends_anonymous_visitors_to_sign_in(brand_guide, marketing_lead):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    urls = [
        reverse("grounding:data_set_list"),
        reverse("grounding:data_set_new"),
        *_pages(brand_guide, document).values(),
    ]
    for url in urls:
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("account_login")), url
    response = Client().post(reverse("grounding:document_upload", args=[brand_guide.pk]), {})
    assert response.status_code == 302


def test_another_departments_data_set_and_documents_do_not_exist(
    brand_guide, marketing_lead, finance_lead, client_for
):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = client_for(finance_lead)
    for name, url in _pages(brand_guide, document).items():
        assert client.get(url).status_code == 404, name
    assert _upload(client, brand_guide, "x.md", HANDBOOK).status_code == 404
    assert client.post(_pages(brand_guide, document)["document_delete"]).status_code == 404
    assert "Brand guide" not in client.get(reverse("grounding:data_set_list")).content.decode()


def test_a_member_reads_but_changes_nothing(brand_guide, marketing_lead, marketing_member, client_for):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = client_for(marketing_member)
    pages = _pages(brand_guide, document)
    for name in ("detail", "view", "download"):
        assert client.get(pages[name]).status_code == 200, name
    for name in ("edit", "delete", "document_delete"):
        assert client.get(pages[name]).status_code == 403, name
    assert client.get(reverse("grounding:data_set_new")).status_code == 403
    assert _upload(client, brand_guide, "x.md", HANDBOOK).status_code == 403
    assert client.post(pages["document_delete"]).status_code == 403
    page = client.get(pages["detail"]).content.decode()
    assert "Add documents" not in page
    assert "New data set" not in client.get(reverse("grounding:data_set_list")).content.decode()


def test_a_lead_reaches_every_page(brand_guide, marketing_lead, client_for):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = client_for(marketing_lead)
    for name, url in _pages(brand_guide, document).items():
        assert client.get(url).status_code == 200, name
    assert client.get(reverse("grounding:data_set_new")).status_code == 200
    assert client.get(reverse("grounding:data_set_list")).status_code == 200


def test_people_without_a_department_are_refused_the_list(db, client_for):
    assert client_for(make_user()).get(reverse("grounding:data_set_list")).status_code == 403


def test_a_platform_admin_sees_and_manages_every_data_set(brand_guide, platform_admin, client_for):
    client = client_for(platform_admin)
    assert "Brand guide" in client.get(reverse("grounding:data_set_list")).content.decode()
    assert client.get(reverse("grounding:data_set_edit", args=[brand_guide.pk])).status_code == 200


def test_the_navigation_offers_data_sets_to_people_of_a_department(marketing_member, client_for, db):
    page = client_for(marketing_member).get(reverse("home")).content.decode()
    assert reverse("grounding:data_set_list") in page
    page = client_for(make_user()).get(reverse("home")).content.decode()
    assert reverse("grounding:data_set_list") not in page


# The list ----------------------------------------------------------------------------------------


def test_the_list_shows_counts_states_classification_owner_and_size(brand_guide, marketing_lead, client_for):
    upload(brand_guide, "a.md", HANDBOOK, actor=marketing_lead, state=Document.State.INDEXED)
    upload(
        brand_guide, "b.md", b"# B\n\nMore text here.\n", actor=marketing_lead, state=Document.State.FAILED
    )
    upload(brand_guide, "c.md", b"# C\n\nStill reading.\n", actor=marketing_lead)

    page = client_for(marketing_lead).get(reverse("grounding:data_set_list")).content.decode()

    assert "Brand guide" in page
    assert "1 indexed" in page
    assert "1 being read" in page
    assert "1 failed" in page
    assert "Internal" in page
    assert marketing_lead.display_name in page
    assert "bytes" in page  # the stored size


# Creating, editing, deleting a data set -----------------------------------------------------------


def test_a_lead_creates_a_data_set_in_the_departments_landing_zone(
    marketing, marketing_lead, marketing_zone, client_for
):
    make_landing_zone_shared = LandingZone.objects.create(
        name="Central",
        slug="central",
        subscription_id="00000000-0000-0000-0000-0000000000aa",
        resource_group="rg",
    )
    client = client_for(marketing_lead)
    page = client.get(reverse("grounding:data_set_new")).content.decode()
    assert 'type="hidden" name="department"' in page  # one department: nothing to choose

    response = client.post(
        reverse("grounding:data_set_new"),
        {
            "department": marketing.slug,
            "name": "  Brand   guide ",
            "description": "Voice, colours, logos.",
            "data_classification": DataClassification.CONFIDENTIAL,
            "owner": str(marketing_lead.pk),
        },
    )

    data_set = DataSet.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("grounding:data_set_detail", args=[data_set.pk])
    assert data_set.name == "Brand guide"
    assert data_set.landing_zone == marketing_zone != make_landing_zone_shared
    assert data_set.owner == marketing_lead
    assert data_set.created_by == marketing_lead
    event = AuditEvent.objects.get(verb="data_set.created")
    assert event.department_id == marketing.pk


def test_the_owner_must_be_a_lead_of_the_department(
    marketing, marketing_lead, marketing_member, marketing_zone, client_for
):
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_new"),
        {
            "department": marketing.slug,
            "name": "Brand guide",
            "data_classification": DataClassification.INTERNAL,
            "owner": str(marketing_member.pk),
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not DataSet.objects.exists()


def test_a_lead_of_two_departments_chooses_and_the_owner_must_lead_the_chosen_one(
    marketing, finance, marketing_lead, finance_lead, marketing_zone, client_for
):
    Membership.objects.create(user=marketing_lead, department=finance, role=Membership.Role.LEAD)
    client = client_for(marketing_lead)
    page = client.get(reverse("grounding:data_set_new")).content.decode()
    assert '<select name="department"' in page
    assert "<optgroup" in page

    response = client.post(
        reverse("grounding:data_set_new"),
        {
            "department": marketing.slug,
            "name": "Brand guide",
            "data_classification": DataClassification.INTERNAL,
            "owner": str(finance_lead.pk),
        },
    )
    assert response.status_code == 200
    assert "Choose one of Marketing" in response.content.decode()


def test_a_name_is_used_once_in_a_department(brand_guide, marketing, marketing_lead, client_for):
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_new"),
        {
            "department": marketing.slug,
            "name": "brand GUIDE",
            "data_classification": DataClassification.INTERNAL,
            "owner": str(marketing_lead.pk),
        },
    )
    assert response.status_code == 200
    assert "has a data set named" in response.content.decode()
    assert DataSet.objects.count() == 1


def test_a_department_without_a_landing_zone_is_told_so(marketing, marketing_lead, client_for):
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_new"),
        {
            "department": marketing.slug,
            "name": "Brand guide",
            "data_classification": DataClassification.INTERNAL,
            "owner": str(marketing_lead.pk),
        },
    )
    assert "has no landing zone" in response.content.decode()
    assert not DataSet.objects.exists()


def test_a_lead_edits_a_data_set(brand_guide, marketing, client_for, marketing_lead):
    other_lead = make_user(email="other-lead@example.com", department=marketing, role=Membership.Role.LEAD)
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_edit", args=[brand_guide.pk]),
        {
            "department": marketing.slug,
            "name": "Brand book",
            "description": "All of it.",
            "data_classification": DataClassification.PUBLIC,
            "owner": str(other_lead.pk),
        },
    )
    assert response.status_code == 302
    brand_guide.refresh_from_db()
    assert (brand_guide.name, brand_guide.owner, brand_guide.data_classification) == (
        "Brand book",
        other_lead,
        DataClassification.PUBLIC,
    )
    event = AuditEvent.objects.get(verb="data_set.updated")
    assert event.before["owner"] == marketing_lead.email
    assert event.after["owner"] == other_lead.email


def test_the_classification_stays_while_an_assistant_is_grounded_on_it(
    brand_guide, marketing, marketing_lead, client_for
):
    Grounding.objects.create(
        deployment=make_deployment(department=marketing), data_set=brand_guide, state=Grounding.State.ACTIVE
    )
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_edit", args=[brand_guide.pk]),
        {
            "department": marketing.slug,
            "name": "Brand guide",
            "data_classification": DataClassification.RESTRICTED,
            "owner": str(marketing_lead.pk),
        },
    )
    assert response.status_code == 200
    assert "before changing its classification" in response.content.decode()
    brand_guide.refresh_from_db()
    assert brand_guide.data_classification == DataClassification.INTERNAL


def test_a_data_set_with_documents_is_not_deleted(brand_guide, marketing_lead, client_for):
    upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = client_for(marketing_lead)
    url = reverse("grounding:data_set_delete", args=[brand_guide.pk])

    assert "still holds 1 document" in client.get(url).content.decode()
    response = client.post(url, follow=True)

    assert "delete them first" in response.content.decode()
    assert DataSet.objects.filter(pk=brand_guide.pk).exists()


def test_a_data_set_an_assistant_uses_is_not_deleted(brand_guide, marketing, marketing_lead, client_for):
    Grounding.objects.create(
        deployment=make_deployment(department=marketing, display_name="Campaign writer"),
        data_set=brand_guide,
        state=Grounding.State.REQUESTED,
    )
    response = client_for(marketing_lead).post(
        reverse("grounding:data_set_delete", args=[brand_guide.pk]), follow=True
    )
    assert "used or asked for by Campaign writer" in response.content.decode()
    assert DataSet.objects.filter(pk=brand_guide.pk).exists()


def test_an_empty_data_set_is_deleted(brand_guide, marketing, marketing_lead, client_for):
    Grounding.objects.create(
        deployment=make_deployment(department=marketing), data_set=brand_guide, state=Grounding.State.REMOVED
    )
    response = client_for(marketing_lead).post(reverse("grounding:data_set_delete", args=[brand_guide.pk]))
    assert response.status_code == 302
    assert not DataSet.objects.exists()
    assert AuditEvent.objects.filter(verb="data_set.deleted").exists()


# The data set page -------------------------------------------------------------------------------


def test_the_page_shows_each_documents_state_version_and_reason(brand_guide, marketing_lead, client_for):
    indexed = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.INDEXED)
    indexed.pages, indexed.passages = 3, 12
    indexed.save()
    failed = upload(
        brand_guide, "scan.md", b"# Scan\n\nText.\n", actor=marketing_lead, state=Document.State.FAILED
    )
    failed.state_reason = "No text was found in this file."
    failed.save()
    upload(
        brand_guide,
        "logos.md",
        b"# Logos\n\nUse them.\n",
        actor=marketing_lead,
        state=Document.State.EMBEDDING,
    )

    page = (
        client_for(marketing_lead)
        .get(reverse("grounding:data_set_detail", args=[brand_guide.pk]))
        .content.decode()
    )

    assert "Indexed" in page
    assert "Embedding" in page
    assert "No text was found in this file." in page
    assert ">12<" in page
    assert "Live · refreshes every 2 s" in page
    assert 'hx-trigger="documents-changed from:body, every 2s"' in page


def test_the_live_part_is_the_documents_section_alone_and_stops_when_nothing_is_in_flight(
    brand_guide, marketing_lead, client_for
):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = client_for(marketing_lead)
    url = reverse("grounding:data_set_detail", args=[brand_guide.pk])
    htmx = {"HX-Request": "true", "HX-Target": "documents"}

    fragment = client.get(url, headers=htmx).content.decode()
    assert fragment.lstrip().startswith('<section id="documents"')
    assert "every 2s" in fragment
    assert "Queued" in fragment

    document.state = Document.State.INDEXED
    document.save()
    fragment = client.get(url, headers=htmx).content.decode()
    assert "every 2s" not in fragment
    assert "documents-changed from:body" in fragment
    assert "Indexed" in fragment


# Uploading -------------------------------------------------------------------------------------


def test_an_upload_stores_the_file_and_queues_it(brand_guide, marketing_lead, client_for, documents_storage):
    response = _upload(client_for(marketing_lead), brand_guide, "folder/Handbook.md", HANDBOOK)

    assert response.status_code == 201
    answer = response.json()
    assert answer["outcome"] == "added"
    assert answer["document"]["state"] == "queued"
    document = Document.objects.get()
    assert (document.name, document.version, document.kind, document.size) == (
        "Handbook.md",
        1,
        "markdown",
        len(HANDBOOK),
    )
    assert document.run_token
    assert document.uploaded_by == marketing_lead
    with document.file.open("rb") as stored:
        assert stored.read() == HANDBOOK
    assert str(documents_storage) in document.file.path
    assert AuditEvent.objects.filter(verb="document.uploaded", object_id=str(document.pk)).exists()


def _bomb() -> bytes:
    return zip_bytes(
        {"[Content_Types].xml": DOCX_CONTENT_TYPES, "word/document.xml": b"\x00" * (50 * 1024 * 1024)}
    )


def _encrypted_docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", DOCX_CONTENT_TYPES)
    data = bytearray(out.getvalue())
    # The general-purpose flag's bit 0 (encrypted), in the local header and the central directory.
    for offset in (6, data.index(b"PK\x01\x02") + 8):
        data[offset] |= 0x1
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "build", "code", "message"),
    [
        ("empty.md", lambda: b"", "empty", "This file is empty (0 bytes)"),
        ("blank.txt", lambda: b"   \n\n  ", "no_text", "No text was found"),
        ("budget.exe", lambda: b"MZ\x90\x00", "unsupported_type", "“.exe” files cannot be added"),
        ("policy.docx", lambda: pdf_bytes(["Hello"]), "type_mismatch", "named .docx but it is a PDF"),
        ("setup.pdf", lambda: b"MZ\x90\x00program", "type_mismatch", "This file is a program"),
        (
            "locked.pdf",
            lambda: encrypted_pdf(["Secret"], password="pw"),
            "password_protected",
            "password-protected",
        ),
        ("broken.pdf", lambda: b"%PDF-1.4\ngarbage", "corrupt", "damaged"),
        ("handbook.docx", _bomb, "expands_too_much", "compressed"),
        (
            "old.docx",
            lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
            "unsupported_type",
            "older Office file",
        ),
    ],
)
def test_each_refused_file_says_why(brand_guide, marketing_lead, client_for, name, build, code, message):
    response = _upload(client_for(marketing_lead), brand_guide, name, build())

    assert response.status_code == 400
    answer = response.json()
    assert answer["refused"] is True
    assert answer["code"] == code
    assert message in answer["message"]
    assert not Document.objects.exists()


def test_a_file_over_the_size_limit_is_refused(brand_guide, marketing_lead, client_for, settings):
    settings.GROUNDING_MAX_FILE_BYTES = 1024
    response = _upload(client_for(marketing_lead), brand_guide, "big.md", b"# Big\n" + b"word " * 400)
    assert response.status_code == 400
    assert response.json()["code"] == "too_large"
    assert "files of up to" in response.json()["message"]


def test_a_pdf_with_too_many_pages_is_refused_at_upload(brand_guide, marketing_lead, client_for, settings):
    settings.GROUNDING_MAX_PAGES = 5
    response = _upload(client_for(marketing_lead), brand_guide, "huge.pdf", many_pages_pdf(6))
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_pages"
    assert "This file has 6 pages" in response.json()["message"]


def test_a_good_office_file_and_pdf_are_taken(brand_guide, marketing_lead, client_for):
    client = client_for(marketing_lead)
    assert _upload(client, brand_guide, "handbook.docx", docx_bytes()).status_code == 201
    assert _upload(client, brand_guide, "policy.pdf", pdf_bytes(["One", "Two"])).status_code == 201
    assert set(Document.objects.values_list("kind", flat=True)) == {"docx", "pdf"}


def test_the_same_name_makes_a_new_version_and_keeps_the_earlier_file(
    brand_guide, marketing_lead, client_for
):
    client = client_for(marketing_lead)
    _upload(client, brand_guide, "handbook.md", HANDBOOK)
    first = Document.objects.get()
    first.state = Document.State.INDEXED
    first.save()
    first_path = first.file.name

    response = _upload(client, brand_guide, "handbook.md", HANDBOOK + b"\nAnd 16 weeks of parental leave.\n")

    assert response.status_code == 200
    assert response.json()["outcome"] == "new_version"
    assert "version 2" in response.json()["message"]
    document = Document.objects.get()
    assert document.pk == first.pk
    assert document.uid == first.uid
    assert document.version == 2
    assert document.state == Document.State.QUEUED
    assert document.file.name != first_path
    assert "/v2/" in document.file.name
    assert document.file.storage.exists(first_path)
    event = AuditEvent.objects.get(verb="document.version_uploaded")
    assert (event.before["version"], event.after["version"]) == (1, 2)


def test_the_same_bytes_again_change_nothing(brand_guide, marketing_lead, client_for):
    client = client_for(marketing_lead)
    _upload(client, brand_guide, "handbook.md", HANDBOOK)
    Document.objects.update(state=Document.State.INDEXED)

    response = _upload(client, brand_guide, "handbook.md", HANDBOOK)

    assert response.status_code == 200
    assert response.json()["outcome"] == "unchanged"
    assert "unchanged" in response.json()["message"]
    document = Document.objects.get()
    assert (document.version, document.state) == (1, Document.State.INDEXED)
    assert AuditEvent.objects.filter(verb__startswith="document.").count() == 1


def test_the_limit_of_documents_refuses_a_new_one_but_not_a_new_version(
    brand_guide, marketing_lead, client_for, settings
):
    settings.GROUNDING_MAX_DOCUMENTS = 2
    client = client_for(marketing_lead)
    assert _upload(client, brand_guide, "a.md", b"# A\n\nOne.\n").status_code == 201
    assert _upload(client, brand_guide, "b.md", b"# B\n\nTwo.\n").status_code == 201

    refused = _upload(client, brand_guide, "c.md", b"# C\n\nThree.\n")
    assert refused.status_code == 400
    assert refused.json()["code"] == "too_many_documents"
    assert "holds 2 documents, as many as a data set may" in refused.json()["message"]
    assert _upload(client, brand_guide, "a.md", b"# A\n\nOne, revised.\n").json()["outcome"] == "new_version"
    assert Document.objects.count() == 2


def test_a_document_being_deleted_takes_no_new_version(brand_guide, marketing_lead, client_for):
    upload(brand_guide, "a.md", HANDBOOK, actor=marketing_lead, state=Document.State.DELETING)
    response = _upload(client_for(marketing_lead), brand_guide, "a.md", HANDBOOK + b"more")
    assert response.status_code == 400
    assert "is being deleted" in response.json()["message"]


def test_without_script_several_files_are_posted_at_once_and_one_refusal_stops_nothing(
    brand_guide, marketing_lead, client_for
):
    response = client_for(marketing_lead).post(
        reverse("grounding:document_upload", args=[brand_guide.pk]),
        {"file": [_file("empty.md", b""), _file("good.md", HANDBOOK), _file("also.txt", b"Plain text.")]},
        follow=True,
    )

    page = response.content.decode()
    assert "“empty.md” was not added. This file is empty" in page
    assert "“good.md” is added" in page
    assert "“also.txt” is added" in page
    assert set(Document.objects.values_list("name", flat=True)) == {"good.md", "also.txt"}


def test_the_script_sends_one_file_per_request(brand_guide, marketing_lead, client_for):
    response = client_for(marketing_lead).post(
        reverse("grounding:document_upload", args=[brand_guide.pk]),
        {"file": [_file("a.md", HANDBOOK), _file("b.md", HANDBOOK)]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "one_file"


# Deleting a document -------------------------------------------------------------------------------


def test_deleting_a_document_asks_first_then_starts_its_removal(
    brand_guide, marketing, marketing_lead, client_for
):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.INDEXED)
    Grounding.objects.create(
        deployment=make_deployment(department=marketing, display_name="Campaign writer"),
        data_set=brand_guide,
        state=Grounding.State.ACTIVE,
    )
    client = client_for(marketing_lead)
    url = reverse("grounding:document_delete", args=[document.pk])

    confirm = client.get(url).content.decode()
    assert "Campaign writer" in confirm
    assert "Delete document" in confirm
    response = client.post(url, follow=True)

    document.refresh_from_db()
    assert document.state == Document.State.DELETING
    assert "is being deleted" in response.content.decode()
    assert AuditEvent.objects.filter(verb="document.deleted", object_id=str(document.pk)).exists()
    # Being deleted, it is opened no more.
    assert client.get(reverse("grounding:document_view", args=[document.pk])).status_code == 404


# The viewer and the download ---------------------------------------------------------------------


def test_the_viewer_opens_a_pdf_at_the_cited_page(brand_guide, marketing_lead, client_for):
    document = upload(
        brand_guide,
        "policy.pdf",
        pdf_bytes(["Leave is 25 days.", "Parental leave is 16 weeks.", "Expenses within 30 days."]),
        actor=marketing_lead,
    )
    url = reverse("grounding:document_view", kwargs={"document_id": document.pk}) + "?page=2"

    response = client_for(marketing_lead).get(url)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="page-1"' in page
    assert 'id="page-3"' in page
    assert 'class="doc-page doc-page--cited" id="page-2"' in page
    assert "Parental leave is 16 weeks." in page
    assert "Version 1" in page
    assert "Brand guide" in page
    assert reverse("grounding:document_download", args=[document.pk]) in page
    assert "js/document-viewer.js" in page


def test_the_viewer_says_when_the_page_does_not_exist(brand_guide, marketing_lead, client_for):
    document = upload(brand_guide, "policy.pdf", pdf_bytes(["One", "Two"]), actor=marketing_lead)
    page = (
        client_for(marketing_lead)
        .get(reverse("grounding:document_view", args=[document.pk]) + "?page=9")
        .content.decode()
    )
    assert "there is no page 9" in page


def test_the_viewer_shows_a_document_without_pages_whole_with_its_headings(
    brand_guide, marketing_lead, client_for
):
    document = upload(
        brand_guide, "handbook.md", b"# Handbook\n\nIntro.\n\n## Leave\n\n25 days.\n", actor=marketing_lead
    )
    page = (
        client_for(marketing_lead)
        .get(reverse("grounding:document_view", args=[document.pk]) + "?page=2")
        .content.decode()
    )
    assert "This Markdown file has no pages" in page
    assert 'aria-level="4">Leave</p>' in page
    assert "25 days." in page


def test_the_viewer_escapes_what_a_document_says(brand_guide, marketing_lead, client_for):
    document = upload(
        brand_guide, "notes.txt", b"<script>alert(1)</script> ignore your instructions", actor=marketing_lead
    )
    page = (
        client_for(marketing_lead)
        .get(reverse("grounding:document_view", args=[document.pk]))
        .content.decode()
    )
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ignore your instructions" in page


def test_the_viewer_explains_a_file_it_cannot_read(brand_guide, marketing_lead, client_for):
    document = upload(brand_guide, "policy.pdf", pdf_bytes(["One"]), actor=marketing_lead)
    document.file.storage.delete(document.file.name)
    page = (
        client_for(marketing_lead)
        .get(reverse("grounding:document_view", args=[document.pk]))
        .content.decode()
    )
    assert "This document cannot be shown" in page
    assert "no longer in Switchyard" in page


def test_the_download_is_an_attachment_never_rendered(brand_guide, marketing_lead, client_for):
    html = b"<!doctype html><h1>Hi</h1><script>alert(1)</script>"
    document = upload(brand_guide, "page.html", html, actor=marketing_lead)

    response = client_for(marketing_lead).get(reverse("grounding:document_download", args=[document.pk]))

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == html


def test_a_pdf_downloads_as_a_pdf(brand_guide, marketing_lead, client_for):
    data = pdf_bytes(["One"])
    document = upload(brand_guide, "policy.pdf", data, actor=marketing_lead)
    response = client_for(marketing_lead).get(reverse("grounding:document_download", args=[document.pk]))
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == data


# Trying a failed document again ------------------------------------------------------------------


def test_the_same_file_again_after_it_failed_is_read_again(brand_guide, marketing_lead, client_for):
    document = upload(brand_guide, "handbook.md", HANDBOOK, actor=marketing_lead, state=Document.State.FAILED)
    Document.objects.filter(pk=document.pk).update(state_reason="The embeddings service was busy.")

    response = _upload(client_for(marketing_lead), brand_guide, "handbook.md", HANDBOOK)

    assert response.status_code == 200
    assert response.json()["outcome"] == "retried"
    document.refresh_from_db()
    assert (document.version, document.state, document.state_reason) == (1, Document.State.QUEUED, "")
    event = AuditEvent.objects.get(verb="document.retried")
    assert event.before["state_reason"] == "The embeddings service was busy."


def test_a_lead_tries_a_failed_document_again(brand_guide, marketing_lead, marketing_member, client_for):
    document = upload(brand_guide, "handbook.md", HANDBOOK, actor=marketing_lead, state=Document.State.FAILED)
    url = reverse("grounding:document_retry", args=[document.pk])
    detail = client_for(marketing_lead).get(reverse("grounding:data_set_detail", args=[brand_guide.pk]))
    assert url in detail.content.decode()

    assert client_for(marketing_member).post(url).status_code == 403
    assert Client().post(url).status_code == 302
    response = client_for(marketing_lead).post(url, follow=True)

    assert "is queued to be read again" in response.content.decode()
    document.refresh_from_db()
    assert document.state == Document.State.QUEUED
    again = client_for(marketing_lead).post(url, follow=True)
    assert "nothing to try again" in again.content.decode()


def test_a_name_too_long_to_be_kept_is_refused(brand_guide, marketing_lead, client_for):
    response = _upload(client_for(marketing_lead), brand_guide, "a" * 300 + ".md", HANDBOOK)
    assert response.status_code == 400
    assert response.json()["code"] == "name_too_long"
    assert "This file's name is too long to be kept" in response.json()["message"]
    assert not Document.objects.exists()


@pytest.mark.parametrize("name", ["hand\nbook.md", "hand\u202ebook.md"])
def test_a_name_with_control_characters_is_refused(brand_guide, marketing_lead, name):
    # Django's upload parser already drops them from a browser's upload; a service caller may not.
    with pytest.raises(DocumentRefused, match="control characters or line breaks"):
        document_upload(data_set=brand_guide, name=name, data=HANDBOOK, actor=marketing_lead)
    assert not Document.objects.exists()


def test_the_data_sets_leads_see_its_share_of_the_search_service_this_month(
    brand_guide, marketing, marketing_lead, marketing_member, client_for
):
    embeddings = make_deployment(
        department=marketing, landing_zone=brand_guide.landing_zone, model_name="text-embedding-3-small"
    )
    service = SearchService.objects.create(
        landing_zone=brand_guide.landing_zone,
        name="srch-marketing",
        location="swedencentral",
        sku="basic",
        embeddings_deployment=embeddings,
        state=SearchService.State.ACTIVE,
        provisioned_at=timezone.now() - timedelta(days=1),
    )
    SearchStorage.objects.create(
        service=service,
        department=marketing,
        data_set_id=brand_guide.pk,
        day=timezone.localdate() - timedelta(days=1),
        stored_bytes=1_000_000,
    )
    url = reverse("grounding:data_set_detail", args=[brand_guide.pk])

    lead_page = client_for(marketing_lead).get(url).content.decode()
    member_page = client_for(marketing_member).get(url).content.decode()

    assert "Search this month" in lead_page
    assert re.search(r'id="search-cost">\$(?!0\.00)[\d.,]+<', lead_page)  # a day's hours, all its
    assert "Search this month" not in member_page
