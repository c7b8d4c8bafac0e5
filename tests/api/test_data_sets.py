"""Data sets, documents and groundings through the API: the pages' access rules (the ladder), their
services (the same refusals and audit events), idempotent POSTs and If-Match on a change."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.test.client import encode_multipart
from django.urls import reverse

from approvals.models import ApprovalPolicy, DeploymentRequest
from audit.models import AuditEvent
from grounding.models import DataSet, Document, Grounding
from org.models import Membership
from provisioning.models import ModelDeployment
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.factories import make_deployment, make_landing_zone, make_user
from tests.grounding.documents import encrypted_pdf
from tests.grounding.pages_fixtures import (  # noqa: F401  (fixtures)
    brand_guide_fixture,
    documents_storage_fixture,
    make_data_set,
    marketing_zone_fixture,
    upload,
)

pytestmark = pytest.mark.django_db

HANDBOOK = b"# Handbook\n\nEveryone has 25 days of annual leave.\n"
SETS = "/api/v1/data-sets"


def _as(user) -> Client:
    return bearer(token_for(user))


def _file(name: str, data: bytes) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


def post_json(client: Client, path: str, body: dict[str, object], **headers):
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def patch_json(client: Client, path: str, body: dict[str, object], **headers):
    return client.patch(path, json.dumps(body), content_type="application/json", **headers)


def post_file(client: Client, data_set: DataSet, name: str, data: bytes, **headers):
    return client.post(f"{SETS}/{data_set.pk}/documents", {"file": _file(name, data)}, **headers)


def verbs(*names: str) -> list[str]:
    return list(AuditEvent.objects.filter(verb__in=names).order_by("pk").values_list("verb", flat=True))


@pytest.fixture
def assistant(marketing, marketing_zone) -> ModelDeployment:
    ApprovalPolicy.current()
    return make_deployment(department=marketing, display_name="Brand assistant", landing_zone=marketing_zone)


@pytest.fixture
def second_lead(marketing):
    return make_user(email="second-lead@example.com", department=marketing, role=Membership.Role.LEAD)


# The ladder --------------------------------------------------------------------------------------


def _reads(data_set: DataSet, document: Document, assistant: ModelDeployment) -> list[str]:
    return [
        SETS,
        f"{SETS}/{data_set.pk}",
        f"{SETS}/{data_set.pk}/documents",
        f"/api/v1/documents/{document.pk}",
        f"/api/v1/deployments/{assistant.pk}/groundings",
    ]


def _writes(
    client: Client, data_set: DataSet, document: Document, assistant: ModelDeployment, lead
) -> list[Callable[[], Any]]:
    grounding = Grounding.objects.create(deployment=assistant, data_set=data_set, requested_by=lead)
    return [
        lambda: post_json(
            client,
            SETS,
            {
                "department": "marketing",
                "name": "New",
                "data_classification": "internal",
                "owner": lead.email,
            },
        ),
        lambda: patch_json(client, f"{SETS}/{data_set.pk}", {"description": "Changed"}),
        lambda: client.delete(f"{SETS}/{data_set.pk}"),
        lambda: post_file(client, data_set, "new.md", HANDBOOK),
        lambda: client.post(f"/api/v1/documents/{document.pk}/retry"),
        lambda: client.delete(f"/api/v1/documents/{document.pk}"),
        lambda: post_json(
            client,
            f"/api/v1/deployments/{assistant.pk}/groundings",
            {"data_set": data_set.pk, "purpose": "x"},
        ),
        lambda: client.delete(f"/api/v1/deployments/{assistant.pk}/groundings/{grounding.pk}"),
    ]


def test_anonymous_gets_a_401_everywhere(anonymous, brand_guide, marketing_lead, assistant):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    for path in _reads(brand_guide, document, assistant):
        assert_problem(anonymous.get(path), 401)
    for call in _writes(anonymous, brand_guide, document, assistant, marketing_lead):
        assert_problem(call(), 401)
    assert verbs("data_set.updated", "data_set.deleted", "document.deleted") == []


def test_another_department_finds_nothing(api_as, brand_guide, marketing_lead, finance_lead, assistant):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = api_as(finance_lead)

    assert client.get(SETS).json()["items"] == []
    for path in _reads(brand_guide, document, assistant)[1:]:
        assert_problem(client.get(path), 404)
    writes = _writes(client, brand_guide, document, assistant, marketing_lead)
    # Creating names a department Finance's lead does not lead: refused on the field.
    assert assert_problem(writes[0](), 400)["errors"]["department"]
    for call in writes[1:]:
        assert_problem(call(), 404)


def test_a_member_reads_but_changes_nothing(api_as, brand_guide, marketing_lead, marketing_member, assistant):
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    client = api_as(marketing_member)

    *data_set_reads, groundings = _reads(brand_guide, document, assistant)
    for path in data_set_reads:
        assert client.get(path).status_code == 200, path
    # The deployment pages, its groundings among them, are for leads.
    assert_problem(client.get(groundings), 403)
    assert client.get(f"{SETS}/{brand_guide.pk}").json()["you_may_manage"] is False
    for call in _writes(client, brand_guide, document, assistant, marketing_lead):
        assert_problem(call(), 403)
    assert DataSet.objects.count() == 1
    assert Document.objects.get().state == Document.State.QUEUED


def test_someone_in_no_department_gets_a_403_for_the_list(db):
    assert_problem(_as(make_user(email="loner@example.com")).get(SETS), 403)


@pytest.mark.parametrize("who", ["marketing_lead", "platform_admin"])
def test_a_lead_or_an_admin_does_each_thing(request, brand_guide, marketing_lead, assistant, who):
    client = _as(request.getfixturevalue(who))
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.FAILED)
    statuses = [
        call().status_code for call in _writes(client, brand_guide, document, assistant, marketing_lead)
    ]
    # The data set still holds documents: its deletion is refused (400) with the page's reason.
    assert statuses == [201, 200, 400, 201, 200, 200, 400, 200]


def test_unknown_ids_are_a_404(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    assert_problem(client.get(f"{SETS}/{brand_guide.pk + 99}"), 404)
    assert_problem(client.get("/api/v1/documents/99"), 404)
    assert_problem(client.get(f"{SETS}/{2**63}"), 422)


# Data sets ---------------------------------------------------------------------------------------


def test_a_lead_creates_a_data_set_as_the_page_does(marketing, marketing_lead, second_lead, marketing_zone):
    client = _as(marketing_lead)
    body = {
        "department": "marketing",
        "name": "  Employee   handbook ",
        "description": "Leave and travel",
        "data_classification": "confidential",
        "owner": second_lead.email.upper(),
    }
    response = post_json(client, SETS, body)

    assert response.status_code == 201, response.content
    created = response.json()
    data_set = DataSet.objects.get()
    assert response["Location"] == f"{SETS}/{data_set.pk}"
    assert created["name"] == "Employee handbook"
    assert created["owner"] == second_lead.email
    assert created["department"] == {"slug": "marketing", "name": "Marketing"}
    assert created["document_count"] == 0
    assert response["ETag"] == client.get(response["Location"])["ETag"]
    event = AuditEvent.objects.get(verb="data_set.created")
    assert event.actor == marketing_lead
    assert event.after["owner"] == second_lead.email


def test_what_the_form_and_the_service_refuse_comes_back_by_field(
    brand_guide, marketing_lead, marketing_member
):
    client = _as(marketing_lead)
    base = {"department": "marketing", "name": "Other", "data_classification": "internal"}

    not_a_lead = assert_problem(post_json(client, SETS, {**base, "owner": marketing_member.email}), 400)
    assert marketing_member.email in not_a_lead["errors"]["owner"][0]
    nobody = assert_problem(post_json(client, SETS, {**base, "owner": "nobody@example.com"}), 400)
    assert nobody["errors"]["owner"]
    taken = post_json(client, SETS, {**base, "name": "brand GUIDE", "owner": marketing_lead.email})
    assert "already" in assert_problem(taken, 400)["errors"]["__all__"][0]
    assert_problem(post_json(client, SETS, {**base, "owner": marketing_lead.email, "colour": "red"}), 422)
    assert_problem(post_json(client, SETS, {**base, "owner": "x", "data_classification": "secret"}), 422)
    assert DataSet.objects.count() == 1


def test_a_replayed_create_makes_one_data_set(marketing_lead, marketing_zone):
    client = _as(marketing_lead)
    body = {
        "department": "marketing",
        "name": "FAQ",
        "data_classification": "public",
        "owner": marketing_lead.email,
    }

    first = post_json(client, SETS, body, HTTP_IDEMPOTENCY_KEY="faq-1")
    again = post_json(client, SETS, body, HTTP_IDEMPOTENCY_KEY="faq-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert DataSet.objects.count() == 1
    assert verbs("data_set.created") == ["data_set.created"]
    assert_problem(post_json(client, SETS, {**body, "name": "Other"}, HTTP_IDEMPOTENCY_KEY="faq-1"), 409)


def test_a_change_with_if_match_is_made_only_on_the_version_read(brand_guide, marketing_lead, second_lead):
    client = _as(marketing_lead)
    path = f"{SETS}/{brand_guide.pk}"
    etag = client.get(path)["ETag"]

    changed = patch_json(
        client, path, {"owner": second_lead.email, "description": "Voice"}, HTTP_IF_MATCH=etag
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["owner"], changed.json()["description"]) == (second_lead.email, "Voice")
    assert changed["ETag"] != etag

    stale = assert_problem(patch_json(client, path, {"name": "Tone"}, HTTP_IF_MATCH=etag), 412)
    assert "read it again" in stale["detail"].lower()
    assert DataSet.objects.get().name == "Brand guide"
    assert patch_json(client, path, {"name": "Tone"}, HTTP_IF_MATCH=changed["ETag"]).status_code == 200
    assert verbs("data_set.updated") == ["data_set.updated", "data_set.updated"]


def test_the_etag_does_not_change_with_the_documents(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    etag = client.get(f"{SETS}/{brand_guide.pk}")["ETag"]
    upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)
    detail = client.get(f"{SETS}/{brand_guide.pk}")
    assert detail["ETag"] == etag
    assert detail.json()["documents_by_state"]["queued"] == 1
    assert detail.json()["stored_bytes"] == len(HANDBOOK)


def test_the_classification_stays_while_an_assistant_uses_it(brand_guide, marketing_lead, assistant):
    Grounding.objects.create(deployment=assistant, data_set=brand_guide, requested_by=marketing_lead)
    client = _as(marketing_lead)

    refused = assert_problem(
        patch_json(client, f"{SETS}/{brand_guide.pk}", {"data_classification": "public"}), 400
    )
    assert "classification" in refused["detail"]
    detail = client.get(f"{SETS}/{brand_guide.pk}").json()
    assert [g["state"] for g in detail["groundings"]] == ["requested"]


def test_deleting_is_refused_with_the_pages_reason_then_done(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead)

    refused = assert_problem(client.delete(f"{SETS}/{brand_guide.pk}"), 400)
    assert "still holds 1 document" in refused["detail"]
    document.delete()
    assert client.delete(f"{SETS}/{brand_guide.pk}").status_code == 204
    assert not DataSet.objects.exists()
    assert verbs("data_set.deleted") == ["data_set.deleted"]


def test_the_list_filters_sorts_and_pages(marketing, finance, marketing_lead, marketing_zone, platform_admin):
    make_data_set(department=marketing, owner=marketing_lead, name="B", classification="public")
    make_data_set(department=marketing, owner=marketing_lead, name="A")
    make_data_set(department=marketing, owner=marketing_lead, name="C")
    client = _as(marketing_lead)

    first = client.get(f"{SETS}?limit=2&sort=-name").json()
    assert [item["name"] for item in first["items"]] == ["C", "B"]
    rest = client.get(f"{SETS}?limit=2&sort=-name&cursor={first['next_cursor']}").json()
    assert [item["name"] for item in rest["items"]] == ["A"]
    assert_problem(client.get(f"{SETS}?limit=2&sort=name&cursor={first['next_cursor']}"), 400)
    public = client.get(SETS, {"classification": "public"}).json()["items"]
    assert [item["name"] for item in public] == ["B"]
    assert _as(platform_admin).get(SETS, {"department": "finance"}).json()["items"] == []


# Documents ---------------------------------------------------------------------------------------


def test_uploading_adds_then_makes_a_new_version_as_the_page_does(brand_guide, marketing_lead):
    client = _as(marketing_lead)

    added = post_file(client, brand_guide, "voice.md", HANDBOOK)
    assert added.status_code == 201, added.content
    body = added.json()
    assert body["outcome"] == "added"
    assert (body["document"]["version"], body["document"]["state"]) == (1, "queued")
    assert body["document"]["uploaded_by"] == marketing_lead.email
    assert added["Location"] == f"/api/v1/documents/{body['document']['id']}"

    again = post_file(client, brand_guide, "voice.md", HANDBOOK)
    assert (again.status_code, again.json()["outcome"]) == (200, "unchanged")
    newer = post_file(client, brand_guide, "voice.md", HANDBOOK + b"\nAnd Fridays off.\n")
    assert (newer.status_code, newer.json()["outcome"]) == (200, "new_version")
    assert newer.json()["document"]["version"] == 2
    assert verbs("document.uploaded", "document.version_uploaded") == [
        "document.uploaded",
        "document.version_uploaded",
    ]
    listed = client.get(f"{SETS}/{brand_guide.pk}/documents").json()["items"]
    assert [(item["name"], item["version"]) for item in listed] == [("voice.md", 2)]


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("empty.md", b"", "empty"),
        ("notes.exe", b"MZ\x90\x00", ""),
        ("locked.pdf", encrypted_pdf(["Secret"], password="pw"), "password"),
    ],
)
def test_a_file_the_page_refuses_is_a_400_naming_its_reason(brand_guide, marketing_lead, name, data, words):
    refused = assert_problem(post_file(_as(marketing_lead), brand_guide, name, data), 400)
    assert refused["errors"]["file"]
    assert words in refused["errors"]["file"][0]
    assert name in refused["detail"]
    assert not Document.objects.exists()


def test_no_file_is_a_422(brand_guide, marketing_lead):
    assert_problem(_as(marketing_lead).post(f"{SETS}/{brand_guide.pk}/documents", {}), 422)


def test_a_replayed_upload_adds_once(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    first = post_file(client, brand_guide, "voice.md", HANDBOOK, HTTP_IDEMPOTENCY_KEY="up-1")
    again = post_file(client, brand_guide, "voice.md", HANDBOOK, HTTP_IDEMPOTENCY_KEY="up-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert verbs("document.uploaded") == ["document.uploaded"]


def test_retrying_a_failed_document_queues_it_once(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.FAILED)
    path = f"/api/v1/documents/{document.pk}/retry"

    first = client.post(path, HTTP_IDEMPOTENCY_KEY="retry-1")
    again = client.post(path, HTTP_IDEMPOTENCY_KEY="retry-1")

    assert first.status_code == 200, first.content
    assert first.json()["state"] == "queued"
    assert again["Idempotent-Replayed"] == "true"
    assert verbs("document.retried") == ["document.retried"]
    # A document that did not fail is left as it is.
    assert client.post(path).json()["state"] == "queued"
    assert verbs("document.retried") == ["document.retried"]


def test_deleting_a_document_starts_its_removal(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    document = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.INDEXED)

    deleted = client.delete(f"/api/v1/documents/{document.pk}")

    assert deleted.status_code == 200, deleted.content
    assert deleted.json()["state"] == "deleting"
    assert client.get(f"/api/v1/documents/{document.pk}").json()["state"] == "deleting"
    assert client.get(f"{SETS}/{brand_guide.pk}/documents", {"state": "deleting"}).json()["items"]
    assert client.delete(f"/api/v1/documents/{document.pk}").status_code == 200
    assert verbs("document.deleted") == ["document.deleted"]


# Groundings --------------------------------------------------------------------------------------


def test_asking_opens_the_approval_as_the_page_does(brand_guide, marketing_lead, second_lead, assistant):
    brand_guide.owner = second_lead
    brand_guide.save()
    client = _as(marketing_lead)
    path = f"/api/v1/deployments/{assistant.pk}/groundings"
    body = {"data_set": brand_guide.pk, "purpose": "Answers about our tone of voice"}

    first = post_json(client, path, body, HTTP_IDEMPOTENCY_KEY="ground-1")
    again = post_json(client, path, body, HTTP_IDEMPOTENCY_KEY="ground-1")

    assert first.status_code == 201, first.content
    answer = first.json()
    grounding = Grounding.objects.get()
    assert (answer["id"], answer["state"], answer["data_set"]) == (grounding.pk, "requested", brand_guide.pk)
    request = DeploymentRequest.objects.get(grounding=grounding)
    assert answer["approval_request"] == request.pk
    assert request.kind == "grounding"
    assert again.json() == answer
    assert again["Idempotent-Replayed"] == "true"
    assert verbs("grounding.requested") == ["grounding.requested"]
    assert AuditEvent.objects.get(verb="grounding.requested").note == body["purpose"]

    # Asked for already: refused on `data_set`, nothing more opened.
    refused = assert_problem(post_json(client, path, body), 400)
    assert refused["errors"]["data_set"]
    listed = client.get(path).json()
    assert [item["id"] for item in listed["items"]] == [grounding.pk]
    assert DeploymentRequest.objects.count() == 1


def test_another_departments_data_set_is_refused(brand_guide, finance, assistant, marketing_lead):
    other = make_user(email="fin@example.com", department=finance, role=Membership.Role.LEAD)
    make_landing_zone(name="Finance zone", slug="finance", owner_department=finance)
    theirs = make_data_set(department=finance, owner=other, name="Ledger")
    path = f"/api/v1/deployments/{assistant.pk}/groundings"
    refused = post_json(_as(marketing_lead), path, {"data_set": theirs.pk, "purpose": "x"})
    assert assert_problem(refused, 400)["errors"]["data_set"]
    assert not Grounding.objects.exists()


def test_removing_withdraws_the_question_and_is_audited(brand_guide, marketing_lead, second_lead, assistant):
    brand_guide.owner = second_lead
    brand_guide.save()
    client = _as(marketing_lead)
    path = f"/api/v1/deployments/{assistant.pk}/groundings"
    created = post_json(client, path, {"data_set": brand_guide.pk, "purpose": "Tone"}).json()

    removed = client.delete(f"{path}/{created['id']}")

    assert removed.status_code == 200, removed.content
    assert removed.json()["state"] == "removed"
    assert DeploymentRequest.objects.get().state == "cancelled"
    assert verbs("grounding.withdrawn", "grounding.removed") == ["grounding.withdrawn"]
    assert_problem(client.delete(f"{path}/{created['id']}"), 400)
    other = make_deployment(department=brand_guide.department, display_name="Other")
    assert_problem(client.delete(f"/api/v1/deployments/{other.pk}/groundings/{created['id']}"), 404)


def _multipart(client: Client, data_set: DataSet, name: str, data: bytes, boundary: str, **headers):
    body = encode_multipart(boundary, {"file": _file(name, data)})
    content_type = f"multipart/form-data; boundary={boundary}"
    return client.post(f"{SETS}/{data_set.pk}/documents", body, content_type=content_type, **headers)


def test_an_upload_sent_again_with_another_boundary_is_replayed(brand_guide, marketing_lead):
    client = _as(marketing_lead)
    first = _multipart(
        client, brand_guide, "voice.md", HANDBOOK, "first-boundary", HTTP_IDEMPOTENCY_KEY="b-1"
    )
    again = _multipart(
        client, brand_guide, "voice.md", HANDBOOK, "other-boundary", HTTP_IDEMPOTENCY_KEY="b-1"
    )
    other = _multipart(client, brand_guide, "tone.md", HANDBOOK, "first-boundary", HTTP_IDEMPOTENCY_KEY="b-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert_problem(other, 409)
    assert Document.objects.count() == 1


def test_a_file_over_the_in_memory_limit_is_uploaded(settings, brand_guide, marketing_lead):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    data = HANDBOOK * 100

    response = post_file(_as(marketing_lead), brand_guide, "voice.md", data, HTTP_IDEMPOTENCY_KEY="big-1")

    assert response.status_code == 201, response.content
    assert Document.objects.get().size == len(data)


def test_the_answers_match_the_document(anonymous, brand_guide, marketing_lead, second_lead, assistant):
    document = anonymous.get("/api/v1/openapi.json").json()
    client = _as(marketing_lead)
    failed = upload(brand_guide, "voice.md", HANDBOOK, actor=marketing_lead, state=Document.State.FAILED)
    one = f"{SETS}/{{data_set_id}}"
    documents = f"{one}/documents"
    groundings = "/api/v1/deployments/{deployment_id}/groundings"
    new_set = {
        "department": "marketing",
        "name": "FAQ",
        "data_classification": "public",
        "owner": second_lead.email,
    }
    calls = [
        (lambda: client.get(SETS), SETS, "get"),
        (lambda: client.get(f"{SETS}/{brand_guide.pk}"), one, "get"),
        (lambda: post_json(client, SETS, new_set), SETS, "post"),
        (lambda: post_json(client, SETS, new_set), SETS, "post"),
        (lambda: patch_json(client, f"{SETS}/{brand_guide.pk}", {"name": "Tone"}), one, "patch"),
        (lambda: client.delete(f"{SETS}/{brand_guide.pk}"), one, "delete"),
        (lambda: client.get(f"{SETS}/{brand_guide.pk}/documents"), documents, "get"),
        (lambda: post_file(client, brand_guide, "new.md", HANDBOOK), documents, "post"),
        (lambda: post_file(client, brand_guide, "new.md", HANDBOOK), documents, "post"),
        (lambda: post_file(client, brand_guide, "empty.md", b""), documents, "post"),
        (lambda: client.get(f"/api/v1/documents/{failed.pk}"), "/api/v1/documents/{document_id}", "get"),
        (
            lambda: client.post(f"/api/v1/documents/{failed.pk}/retry"),
            "/api/v1/documents/{document_id}/retry",
            "post",
        ),
        (
            lambda: client.delete(f"/api/v1/documents/{failed.pk}"),
            "/api/v1/documents/{document_id}",
            "delete",
        ),
        (lambda: client.get(f"/api/v1/deployments/{assistant.pk}/groundings"), groundings, "get"),
        (
            lambda: post_json(
                client,
                f"/api/v1/deployments/{assistant.pk}/groundings",
                {"data_set": brand_guide.pk, "purpose": "x"},
            ),
            groundings,
            "post",
        ),
        (lambda: anonymous.get(SETS), SETS, "get"),
    ]
    statuses = set()
    for make_call, path, method in calls:
        response = make_call()
        _validate(document, path, method, response)
        statuses.add(response.status_code)
    assert statuses == {200, 201, 400, 401}
    grounding = Grounding.objects.get()
    removed = client.delete(f"/api/v1/deployments/{assistant.pk}/groundings/{grounding.pk}")
    _validate(document, "/api/v1/deployments/{deployment_id}/groundings/{grounding_id}", "delete", removed)
    assert removed.status_code == 200


def _trail(since: int) -> list[tuple[str, str, list[str], list[str]]]:
    """The audit events after `since`: verb, department, and which fields they record."""
    return [
        (event.verb, str(event.department_id), sorted(event.before or {}), sorted(event.after or {}))
        for event in AuditEvent.objects.filter(pk__gt=since).order_by("pk")
        if event.verb.startswith(("data_set.", "document."))
    ]


def _last_event() -> int:
    last = AuditEvent.objects.order_by("-pk").first()
    return last.pk if last is not None else 0


def test_the_audit_events_are_those_the_pages_make(
    marketing, marketing_lead, second_lead, marketing_zone, documents_storage
):
    page = Client()
    page.force_login(marketing_lead)
    start = _last_event()
    form = {"department": "marketing", "name": "By page", "data_classification": "internal"}
    page.post(reverse("grounding:data_set_new"), {**form, "description": "", "owner": marketing_lead.pk})
    by_page = DataSet.objects.get(name="By page")
    page.post(
        reverse("grounding:data_set_edit", args=[by_page.pk]),
        {**form, "description": "Changed", "owner": second_lead.pk},
    )
    page.post(reverse("grounding:document_upload", args=[by_page.pk]), {"file": _file("a.md", HANDBOOK)})
    page.post(
        reverse("grounding:document_upload", args=[by_page.pk]), {"file": _file("a.md", HANDBOOK + b"2")}
    )
    document = Document.objects.get(data_set=by_page)
    Document.objects.filter(pk=document.pk).update(state=Document.State.FAILED)
    page.post(reverse("grounding:document_retry", args=[document.pk]))
    page.post(reverse("grounding:document_delete", args=[document.pk]))
    Document.objects.filter(pk=document.pk).delete()
    page.post(reverse("grounding:data_set_delete", args=[by_page.pk]))
    pages_trail = _trail(start)
    assert not DataSet.objects.exists()

    api = _as(marketing_lead)
    start = _last_event()
    created = post_json(api, SETS, {**form, "name": "By API", "owner": marketing_lead.email}).json()
    path = f"{SETS}/{created['id']}"
    patch_json(api, path, {"description": "Changed", "owner": second_lead.email})
    api.post(f"{path}/documents", {"file": _file("a.md", HANDBOOK)})
    api_document = api.post(f"{path}/documents", {"file": _file("a.md", HANDBOOK + b"2")}).json()["document"]
    Document.objects.filter(pk=api_document["id"]).update(state=Document.State.FAILED)
    api.post(f"/api/v1/documents/{api_document['id']}/retry")
    api.delete(f"/api/v1/documents/{api_document['id']}")
    Document.objects.filter(pk=api_document["id"]).delete()
    assert api.delete(path).status_code == 204

    assert _trail(start) == pages_trail
    assert [verb for verb, *_ in pages_trail] == [
        "data_set.created",
        "data_set.updated",
        "document.uploaded",
        "document.version_uploaded",
        "document.retried",
        "document.deleted",
        "data_set.deleted",
    ]
