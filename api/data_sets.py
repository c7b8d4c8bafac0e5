"""A department's data sets, their documents and the assistants grounded on them, as the data set
pages and an assistant's "Grounded on" section handle them.

Reading asks the pages' access rules (`grounding.access`): a department's members and leads see its
data sets and their documents (platform admins every one), another department's do not exist (404);
changing is for its leads and platform admins (a member gets a 403). Every change goes through the
pages' services (`grounding.services`, `grounding.grounding_services`), so it is checked, refused
and audited as it is there; asking for a grounding opens the approval request the owner decides."""

from datetime import datetime
from typing import Any, BinaryIO, Literal, cast

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile

from api.conditional import etag_of, require_match
from api.pagination import Page, PageParams, page_of
from api.params import Id, user_of
from api.problems import FieldErrors, Problem, refused
from api.schemas import Input, utc
from approvals.access import get_grounding_for_removal
from approvals.models import DeploymentRequest
from grounding import access
from grounding.files import FileRefused, read_upload
from grounding.forms import DataSetForm
from grounding.grounding_services import (
    PURPOSE_LENGTH,
    GroundingRefused,
    assistant_groundings,
    data_sets_for_grounding,
    grounding_remove,
    grounding_request,
    may_ground,
    not_yours_to_ground,
)
from grounding.models import DataSet, Document, Grounding
from grounding.services import (
    DataSetRefused,
    DocumentRefused,
    UploadOutcome,
    data_set_create,
    data_set_delete,
    data_set_update,
    document_delete,
    document_retry,
    document_upload,
)
from org.models import Department, Membership, User
from provisioning.access import get_deployment_for

router = Router(tags=["data sets"])

Classification = Literal["public", "internal", "confidential", "restricted"]
DocumentState = Literal["queued", "extracting", "embedding", "indexing", "indexed", "failed", "deleting"]
GroundingState = Literal["requested", "active", "rejected", "removed"]
DataSetSort = Literal["name", "-name", "created_at", "-created_at"]
DocumentSort = Literal["name", "-name", "uploaded_at", "-uploaded_at", "size", "-size"]
NAME_LENGTH = 120
DESCRIPTION_LENGTH = 2000
EMAIL_LENGTH = 254
SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"
CLASSIFICATION_TEXT = (
    "What its documents hold. Confidential and restricted data need a security approval before an "
    "assistant is grounded on them."
)
STATE_TEXT = (
    "`queued`, `extracting` (being read), `embedding`, `indexing`: on its way into the index; "
    "`indexed`: assistants answer from it; `failed`: `state_reason` says why; `deleting`."
)


class DepartmentRef(Schema):
    slug: str
    name: str


class DataSetOut(Schema):
    id: int
    department: DepartmentRef
    name: str
    description: str
    data_classification: Classification = Field(..., description=CLASSIFICATION_TEXT)
    owner: str = Field(..., description="The email of the lead who approves the assistants grounded on it.")
    created_at: datetime
    you_may_manage: bool = Field(..., description="Whether you may change it and its documents.")


class DocumentCountsOut(Schema):
    queued: int
    extracting: int
    embedding: int
    indexing: int
    indexed: int
    failed: int
    deleting: int


class GroundingSummaryOut(Schema):
    id: int
    deployment: int = Field(..., description="The assistant (/api/v1/deployments/{id}).")
    deployment_name: str
    department: DepartmentRef = Field(..., description="The assistant's department.")
    state: Literal["requested", "active"]


class DataSetDetailOut(DataSetOut):
    document_count: int
    documents_by_state: DocumentCountsOut
    stored_bytes: int = Field(..., description="The bytes of its documents' files.")
    passages: int = Field(..., description="Its passages in the search index.")
    groundings: list[GroundingSummaryOut] = Field(
        ..., description="The assistants that answer from it, or wait for its owner's approval."
    )


class DataSetSettings(Schema):
    """What a change can change: the `ETag` versions this, not the documents' progress."""

    name: str
    description: str
    data_classification: str
    owner: str


class DataSetIn(Input):
    department: str = Field(
        ..., max_length=60, pattern=SLUG_PATTERN, description="The slug of a department you lead."
    )
    name: str = Field(..., max_length=NAME_LENGTH, description="e.g. “Employee handbook”; unique in it.")
    description: str = Field(
        "",
        max_length=DESCRIPTION_LENGTH,
        description="What it holds and what it is for: the owner reads it when an assistant asks for it.",
    )
    data_classification: Classification = Field(..., description=CLASSIFICATION_TEXT)
    owner: str = Field(
        ...,
        max_length=EMAIL_LENGTH,
        description="The email of one of the department's leads, who approves the assistants grounded on it.",
    )


class DataSetPatch(Input):
    """A field left out (or null) stays as it is."""

    name: str | None = Field(None, max_length=NAME_LENGTH)
    description: str | None = Field(None, max_length=DESCRIPTION_LENGTH)
    data_classification: Classification | None = Field(
        None,
        description="Stays while an assistant is grounded on it or asks to be: remove it from them first.",
    )
    owner: str | None = Field(None, max_length=EMAIL_LENGTH, description="The email of one of its leads.")


class DataSetFilters(Schema):
    department: str | None = Field(
        None, max_length=60, pattern=SLUG_PATTERN, description="Only this department's (its slug)."
    )
    classification: Classification | None = Field(None, description="Only those of this classification.")
    sort: DataSetSort = "name"


class DocumentOut(Schema):
    id: int
    data_set: int
    name: str = Field(..., description="The file's name; a file of the same name makes a new version.")
    kind: str = Field(..., description="pdf, docx, pptx, xlsx, markdown, text or html.")
    state: DocumentState = Field(..., description=STATE_TEXT)
    state_reason: str = Field(..., description="Why it failed, in words a lead understands; empty otherwise.")
    version: int
    pages: int | None = Field(..., description="Pages, slides or sheets read; null for a file without pages.")
    passages: int = Field(..., description="Its passages in the search index.")
    size: int = Field(..., description="Bytes of the uploaded file.")
    uploaded_at: datetime
    uploaded_by: str | None = Field(..., description="Who uploaded this version (email).")
    indexed_at: datetime | None


class UploadOut(Schema):
    outcome: Literal["added", "new_version", "unchanged", "retried"] = Field(
        ...,
        description="`added` (201): a new document; `new_version`: a file of that name was there, this is "
        "its next version; `unchanged`: the same bytes as its present version, nothing changed; "
        "`retried`: the same bytes as a version that failed, read again.",
    )
    message: str = Field(..., description="What the page says about it.")
    document: DocumentOut


class DocumentFilters(Schema):
    state: DocumentState | None = Field(None, description="Only the documents in this state.")
    sort: DocumentSort = "name"


class GroundingOut(Schema):
    id: int
    deployment: int = Field(..., description="The assistant.")
    data_set: int
    data_set_name: str
    department: DepartmentRef = Field(..., description="The data set's department.")
    state: GroundingState = Field(
        ...,
        description="`requested`: waits for the data set's owner (and the approvers its classification "
        "needs); `active`: the assistant answers from it; `rejected`; `removed`.",
    )
    requested_by: str | None = Field(..., description="Email; null for Switchyard itself.")
    requested_at: datetime
    decided_at: datetime | None
    removed_at: datetime | None
    approval_request: int | None = Field(
        ..., description="The request that decides it (/api/v1/requests/{id}), of kind `grounding`."
    )


class GroundingsOut(Schema):
    deployment: int
    items: list[GroundingOut]


class GroundingIn(Input):
    data_set: int = Field(..., ge=1, le=2**63 - 1, description="The data set's id.")
    purpose: str = Field(
        ...,
        min_length=1,
        max_length=PURPOSE_LENGTH,
        description="What the assistant answers from this data set: its owner reads it when deciding.",
    )


# Data sets ---------------------------------------------------------------------------------------


def _department_ref(department: Department) -> DepartmentRef:
    return DepartmentRef(slug=department.slug, name=department.name)


def _data_set_fields(data_set: DataSet, user: User) -> dict[str, Any]:
    return {
        "id": data_set.pk,
        "department": _department_ref(data_set.department),
        "name": data_set.name,
        "description": data_set.description,
        "data_classification": data_set.data_classification,
        "owner": data_set.owner.email,
        "created_at": utc(data_set.created_at),
        "you_may_manage": access.may_manage(user, data_set),
    }


def _settings(data_set: DataSet) -> DataSetSettings:
    return DataSetSettings(
        name=data_set.name,
        description=data_set.description,
        data_classification=data_set.data_classification,
        owner=data_set.owner.email,
    )


def _detail(data_set: DataSet, user: User, response: HttpResponse) -> DataSetDetailOut:
    figures = data_set.document_figures()
    groundings = data_set.groundings.current().select_related("deployment__department").order_by("pk")
    response["ETag"] = etag_of(_settings(data_set))
    return DataSetDetailOut(
        **_data_set_fields(data_set, user),
        document_count=figures.total,
        documents_by_state=DocumentCountsOut(
            **{state: figures.by_state.get(state, 0) for state in Document.State.values}
        ),
        stored_bytes=figures.stored_bytes,
        passages=figures.passages,
        groundings=[
            GroundingSummaryOut(
                id=grounding.pk,
                deployment=grounding.deployment_id,
                deployment_name=grounding.deployment.display_name,
                department=_department_ref(grounding.deployment.department),
                state=grounding.state,  # type: ignore[arg-type]
            )
            for grounding in groundings
        ],
    )


def _fresh(data_set_id: int, user: User) -> DataSet:
    return access.data_set_for_reader(user, data_set_id)


def _form_refused(form: DataSetForm) -> Problem:
    errors: FieldErrors = {
        field: [str(message) for message in messages] for field, messages in form.errors.items()
    }
    fields = ", ".join(sorted(errors))
    return refused(
        f"The data set cannot be saved as sent: {fields}. `errors` says what is wrong with each.", errors
    )


def _data_set_refused(refusal: DataSetRefused) -> Problem:
    return refused(str(refusal), {"__all__": [str(refusal)]})


def _owner_choice(email: str | None, department: Department | None) -> str:
    """The form's owner choice for an email: the id of the department's lead of that email, or the
    email as sent, which the form then refuses as a choice it does not offer."""
    if not email or department is None or "\x00" in email:
        # PostgreSQL refuses a NUL in a string with an error, not a miss.
        return email or ""
    lead = Membership.objects.filter(
        department=department, role=Membership.Role.LEAD, user__email__iexact=email.strip()
    ).first()
    return str(lead.user_id) if lead is not None else email


@router.get("/data-sets", response=Page[DataSetOut], summary="Data sets")
def list_data_sets(
    request: HttpRequest, filters: Query[DataSetFilters], page: Query[PageParams]
) -> dict[str, object]:
    """The data sets of your departments (every one for platform admins), as the data set list
    shows them. Someone in no department gets a 403. By name unless `sort` says otherwise."""
    user = user_of(request)
    data_sets = access.data_sets_visible_to(user).select_related("department", "owner")
    if filters.department:
        data_sets = data_sets.filter(department__slug=filters.department)
    if filters.classification:
        data_sets = data_sets.filter(data_classification=filters.classification)
    chunk = page_of(
        data_sets,
        order=filters.sort,
        list_name=f"data-sets?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    items = [DataSetOut(**_data_set_fields(data_set, user)) for data_set in chunk.rows]
    return {"items": items, "next_cursor": chunk.next_cursor}


@router.get(
    "/data-sets/{data_set_id}", response=DataSetDetailOut, summary="One data set", url_name="data_set"
)
def get_data_set(request: HttpRequest, data_set_id: Id, response: HttpResponse) -> DataSetDetailOut:
    """The data set with its documents counted by state, the bytes they take, their passages in
    the index, and the assistants that answer from it or wait for its owner. The `ETag` versions
    what a change can change (name, description, classification, owner): send it as `If-Match`."""
    user = user_of(request)
    return _detail(access.data_set_for_reader(user, data_set_id), user, response)


@router.post("/data-sets", response={201: DataSetDetailOut}, summary="Create a data set")
def create_data_set(request: HttpRequest, payload: DataSetIn, response: HttpResponse) -> Status[Any]:
    """A new, empty data set of a department you lead (any, for platform admins), indexed in the
    department's landing zone, checked as the page's form checks it: the owner is one of the
    department's leads, the name is not taken in it. A member who leads no department gets a 403;
    a department you may not create one for is refused on `department`. Audited as
    `data_set.created`. Add documents with `POST /data-sets/{id}/documents`."""
    user = user_of(request)
    departments = access.departments_for_new_data_set(user)
    department = departments.filter(slug=payload.department).first()
    form = DataSetForm(
        {
            "department": payload.department,
            "name": payload.name,
            "description": payload.description,
            "data_classification": payload.data_classification,
            "owner": _owner_choice(payload.owner, department),
        },
        departments=departments,
        actor=user,
    )
    if not form.is_valid():
        raise _form_refused(form)
    try:
        data_set = data_set_create(department=form.department_chosen, spec=form.spec(), actor=user)
    except DataSetRefused as refusal:
        raise _data_set_refused(refusal) from None
    response["Location"] = reverse("api-v1:data_set", args=[data_set.pk])
    return Status(201, _detail(_fresh(data_set.pk, user), user, response))


@router.patch("/data-sets/{data_set_id}", response=DataSetDetailOut, summary="Change a data set")
def change_data_set(
    request: HttpRequest, data_set_id: Id, payload: DataSetPatch, response: HttpResponse
) -> DataSetDetailOut:
    """Its name, description, classification and owner, as on the edit page, for its department's
    leads and platform admins; fields left out stay as they are. Its classification stays while
    an assistant is grounded on it or asks to be (a 400 says so). Audited as `data_set.updated`
    when something changed. With `If-Match`, made only if it is still as read (else 412)."""
    user = user_of(request)
    found = access.data_set_for_lead(user, data_set_id)
    # The version is checked under the lock the change takes: nothing changes in between.
    with transaction.atomic():
        data_set = (
            DataSet.objects.select_for_update(of=("self",))
            .select_related("department", "owner", "landing_zone")
            .get(pk=found.pk)
        )
        require_match(request, _settings(data_set))
        sent = payload.model_dump(exclude_none=True)
        form = DataSetForm(
            {
                "department": data_set.department.slug,
                "name": sent.get("name", data_set.name),
                "description": sent.get("description", data_set.description),
                "data_classification": sent.get("data_classification", data_set.data_classification),
                "owner": _owner_choice(sent["owner"], data_set.department)
                if "owner" in sent
                else str(data_set.owner_id),
            },
            actor=user,
            data_set=data_set,
        )
        if not form.is_valid():
            raise _form_refused(form)
        try:
            data_set_update(data_set=data_set, spec=form.spec(), actor=user)
        except DataSetRefused as refusal:
            raise _data_set_refused(refusal) from None
    return _detail(_fresh(data_set.pk, user), user, response)


@router.delete("/data-sets/{data_set_id}", response={204: None}, summary="Delete a data set")
def delete_data_set(request: HttpRequest, data_set_id: Id) -> Status[None]:
    """Deletes an empty data set no assistant uses or asks for, as the delete page does, for its
    department's leads and platform admins; anything else is refused (400) with the page's
    reason: delete its documents first, take it off its assistants. Audited as
    `data_set.deleted`."""
    user = user_of(request)
    data_set = access.data_set_for_lead(user, data_set_id)
    try:
        data_set_delete(data_set=data_set, actor=user)
    except DataSetRefused as refusal:
        raise _data_set_refused(refusal) from None
    return Status(204, None)


# Documents ---------------------------------------------------------------------------------------


def _document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.pk,
        data_set=document.data_set_id,
        name=document.name,
        kind=document.kind,
        state=document.state,  # type: ignore[arg-type]
        state_reason=document.state_reason,
        version=document.version,
        pages=document.pages,
        passages=document.passages,
        size=document.size,
        uploaded_at=utc(document.uploaded_at),
        uploaded_by=document.uploaded_by.email if document.uploaded_by else None,
        indexed_at=utc(document.indexed_at) if document.indexed_at else None,
    )


def _fresh_document(document: Document) -> Document:
    return Document.objects.select_related("uploaded_by").get(pk=document.pk)


@router.get("/data-sets/{data_set_id}/documents", response=Page[DocumentOut], summary="Its documents")
def list_documents(
    request: HttpRequest, data_set_id: Id, filters: Query[DocumentFilters], page: Query[PageParams]
) -> dict[str, object]:
    """The data set's documents at their latest version, as its page lists them, those being
    deleted included. By name unless `sort` says otherwise."""
    data_set = access.data_set_for_reader(user_of(request), data_set_id)
    documents = data_set.documents.select_related("uploaded_by")
    if filters.state:
        documents = documents.filter(state=filters.state)
    chunk = page_of(
        documents,
        order=filters.sort,
        list_name=f"data-sets/{data_set.pk}/documents?{filters.model_dump_json()}",
        cursor=page.cursor,
        limit=page.limit,
    )
    return {"items": [_document_out(document) for document in chunk.rows], "next_cursor": chunk.next_cursor}


@router.get("/documents/{document_id}", response=DocumentOut, summary="One document", url_name="document")
def get_document(request: HttpRequest, document_id: Id) -> DocumentOut:
    """A document of a data set you may see, with its state and how far it is read."""
    return _document_out(access.document_for_data_set_reader(user_of(request), document_id))


@router.post(
    "/data-sets/{data_set_id}/documents",
    response={200: UploadOut, 201: UploadOut},
    summary="Upload a document",
)
def upload_document(
    request: HttpRequest, data_set_id: Id, file: File[UploadedFile], response: HttpResponse
) -> Status[UploadOut]:
    """One file, as `multipart/form-data` in the field `file`, for the data set's leads and
    platform admins, checked as the upload page checks it: a file Switchyard will not read (empty,
    too large, not a PDF, Word, PowerPoint, Excel, Markdown, text or HTML file, named for another
    type, protected by a password, damaged, too many pages) or one the data set cannot take (too
    many documents, a document of that name being deleted) is refused (400) with the reason on
    `file`. A file named like a document of the data set becomes its new version (200,
    `new_version`); the same bytes again change nothing (200, `unchanged`), or are read again after
    a failure (200, `retried`); a new document is a 201 (`added`). It is then read and indexed in
    the background: follow its `state` with `GET /documents/{id}`. Audited as `document.uploaded`
    or `document.version_uploaded`."""
    user = user_of(request)
    data_set = access.data_set_for_lead(user, data_set_id)
    name = file.name or "unnamed"
    try:
        data = read_upload(cast(BinaryIO, file))
        result = document_upload(data_set=data_set, name=name, data=data, actor=user)
    except (FileRefused, DocumentRefused) as refusal:
        raise refused(
            f"“{name}” was not added. {refusal.message}", {"file": [refusal.message]}, title="File refused"
        ) from None
    document = _fresh_document(result.document)
    answer = UploadOut(outcome=result.outcome.value, message=result.message, document=_document_out(document))
    if result.outcome is UploadOutcome.ADDED:
        response["Location"] = reverse("api-v1:document", args=[document.pk])
        return Status(201, answer)
    return Status(200, answer)


@router.post("/documents/{document_id}/retry", response=DocumentOut, summary="Read a failed document again")
def retry_document(request: HttpRequest, document_id: Id) -> DocumentOut:
    """A document that failed is queued to be read again (its failure may have passed: a busy
    service, a limit since raised), as its page's button does; audited as `document.retried`. A
    document in any other state is left as it is: the answer shows its state."""
    user = user_of(request)
    document = access.document_for_lead(user, document_id)
    document_retry(document=document, actor=user)
    return _document_out(_fresh_document(document))


@router.delete("/documents/{document_id}", response=DocumentOut, summary="Delete a document")
def delete_document(request: HttpRequest, document_id: Id) -> DocumentOut:
    """Starts the document's deletion, for its data set's leads and platform admins: it is
    `deleting` while its passages leave the index (assistants stop citing it) and its files the
    storage, then it is gone. Deleting one being deleted changes nothing. Audited as
    `document.deleted`."""
    user = user_of(request)
    document = access.document_for_lead(user, document_id)
    document_delete(document=document, actor=user)
    return _document_out(_fresh_document(document))


# Groundings --------------------------------------------------------------------------------------


def _groundings_out(groundings: list[Grounding]) -> list[GroundingOut]:
    requests: dict[int, int] = {}
    for row in DeploymentRequest.objects.filter(grounding__in=groundings).order_by("pk"):
        if row.grounding_id is not None:
            requests[row.grounding_id] = row.pk
    return [
        GroundingOut(
            id=grounding.pk,
            deployment=grounding.deployment_id,
            data_set=grounding.data_set_id,
            data_set_name=grounding.data_set.name,
            department=_department_ref(grounding.data_set.department),
            state=grounding.state,  # type: ignore[arg-type]
            requested_by=grounding.requested_by.email if grounding.requested_by else None,
            requested_at=utc(grounding.requested_at),
            decided_at=utc(grounding.decided_at) if grounding.decided_at else None,
            removed_at=utc(grounding.removed_at) if grounding.removed_at else None,
            approval_request=requests.get(grounding.pk),
        )
        for grounding in groundings
    ]


def _grounding(grounding_id: int) -> Grounding:
    return Grounding.objects.select_related("data_set__department", "requested_by").get(pk=grounding_id)


def _grounding_refused(refusal: GroundingRefused, field: str = "__all__") -> Problem:
    return refused(str(refusal), {field: [str(refusal)]}, title="Grounding refused")


@router.get("/deployments/{deployment_id}/groundings", response=GroundingsOut, summary="Its groundings")
def list_groundings(request: HttpRequest, deployment_id: Id) -> GroundingsOut:
    """The data sets the assistant answers from (`active`) and those waiting for their owner's
    approval (`requested`), as its page's "Grounded on" section shows them, for anyone who may see
    the deployment; by department and data set name."""
    deployment = get_deployment_for(user_of(request), deployment_id)
    groundings = list(assistant_groundings(deployment))
    return GroundingsOut(deployment=deployment.pk, items=_groundings_out(groundings))


@router.post(
    "/deployments/{deployment_id}/groundings", response={201: GroundingOut}, summary="Ground it on a data set"
)
def create_grounding(request: HttpRequest, deployment_id: Id, payload: GroundingIn) -> Status[GroundingOut]:
    """Ask for the assistant to answer from a data set, for its department's leads and platform
    admins: a department's assistant from its own department's data sets, a shared one from any.
    It opens the approval request (`approval_request`, kind `grounding`) that the data set's
    owner (and the approvers its classification needs) decide, as the assistant's page does; it is
    `active` at once when the policy approves it by itself (you own the data set). A data set you
    may not choose, or one it already uses or waits for, is refused on `data_set`. Audited as
    `grounding.requested`."""
    user = user_of(request)
    deployment = get_deployment_for(user, deployment_id)
    if not may_ground(user, deployment):
        raise Problem(403, not_yours_to_ground(deployment))
    data_set = data_sets_for_grounding(deployment, user).filter(pk=payload.data_set).first()
    if data_set is None:
        message = (
            f"Not a data set {deployment.display_name} may be grounded on: one of "
            f"{'any department' if deployment.scope == 'shared' else deployment.department.name}'s data sets "
            "it does not use or wait for yet."
        )
        raise refused(message, {"data_set": [message]}, title="Grounding refused")
    try:
        grounding = grounding_request(
            deployment=deployment, data_set=data_set, purpose=payload.purpose, actor=user
        )
    except GroundingRefused as refusal:
        raise _grounding_refused(refusal) from None
    return Status(201, _groundings_out([_grounding(grounding.pk)])[0])


@router.delete(
    "/deployments/{deployment_id}/groundings/{grounding_id}",
    response=GroundingOut,
    summary="Take a data set off it",
)
def delete_grounding(request: HttpRequest, deployment_id: Id, grounding_id: Id) -> GroundingOut:
    """The assistant stops answering from the data set from its next turn (an `active`
    grounding), or the question is withdrawn with its approval request (a `requested` one), as
    the page's Remove does. For the assistant's department leads, the data set's owner and
    platform admins; a grounding already ended is refused (400). Audited as `grounding.removed`
    or `grounding.withdrawn`."""
    user = user_of(request)
    grounding = get_grounding_for_removal(user, grounding_id)
    if grounding.deployment_id != deployment_id:
        raise Problem(404, "No such grounding of this deployment.")
    try:
        grounding_remove(grounding=grounding, actor=user)
    except GroundingRefused as refusal:
        raise _grounding_refused(refusal) from None
    return _groundings_out([_grounding(grounding.pk)])[0]
