"""Data sets and their documents as leads change them: create, edit and delete a data set; upload
a document (a new one, a new version, or the same bytes again), delete one.

Each service locks what it changes, refuses with a message a lead understands, records an audit
event, and hands the document to ingestion (`ingest.ingestion_start`, `ingest.removal_start`),
which enqueue their tasks once the transaction commits.
"""

import hashlib
import unicodedata
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils import timezone

from audit.services import audit_record
from grounding import extract, ingest
from grounding.files import (
    TEXT_KINDS,
    CheckedFile,
    CorruptFile,
    DocumentKind,
    FileRefused,
    Limits,
    check_file,
    display_name,
)
from grounding.models import DataSet, Document
from org.models import Department, Membership, User
from provisioning.models import LandingZone


class DataSetRefused(Exception):
    """The change is not allowed as things stand; the message says why and what to do."""


class DocumentRefused(Exception):
    """An upload or deletion refused for a reason about the data set, not the file's bytes
    (those are `FileRefused`): the limit of documents, a document being deleted."""

    code = "refused"

    def __init__(self, message: str, *, code: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class DataSetSpec:
    """What a lead sets on a data set."""

    name: str
    description: str
    data_classification: str
    owner: User


class UploadOutcome(StrEnum):
    ADDED = "added"
    NEW_VERSION = "new_version"
    UNCHANGED = "unchanged"
    RETRIED = "retried"


@dataclass(frozen=True)
class UploadResult:
    document: Document
    outcome: UploadOutcome

    @property
    def message(self) -> str:
        name = self.document.name
        if self.outcome is UploadOutcome.UNCHANGED:
            return f"“{name}” is unchanged: version {self.document.version} already holds these exact bytes."
        if self.outcome is UploadOutcome.RETRIED:
            return f"“{name}” could not be read before: it is queued to be read again."
        if self.outcome is UploadOutcome.NEW_VERSION:
            return f"“{name}” is now version {self.document.version}: it replaces the earlier one once read."
        return f"“{name}” is added and queued to be read."


def _data_set_snapshot(data_set: DataSet) -> dict[str, Any]:
    return {
        "name": data_set.name,
        "description": data_set.description,
        "data_classification": data_set.data_classification,
        "owner": data_set.owner.email,
        "department": data_set.department.name,
        "landing_zone": data_set.landing_zone.slug,
    }


def _document_snapshot(document: Document) -> dict[str, Any]:
    return {
        "data_set": document.data_set.name,
        "name": document.name,
        "version": document.version,
        "kind": document.kind,
        "size": document.size,
        "sha256": document.sha256,
        "state": document.state,
    }


def _refuse_owner_unless_lead(owner: User, department: Department) -> None:
    if not Membership.objects.filter(user=owner, department=department, role=Membership.Role.LEAD).exists():
        raise DataSetRefused(
            f"{owner.display_name} does not lead {department.name}: a data set's owner is one of its leads."
        )


def _refuse_taken_name(department: Department, name: str, *, other_than: DataSet | None = None) -> None:
    taken = DataSet.objects.filter(department=department, name__iexact=name)
    if other_than is not None:
        taken = taken.exclude(pk=other_than.pk)
    if taken.exists():
        raise DataSetRefused(f"{department.name} has a data set named “{name}” already: choose another name.")


# Data sets ------------------------------------------------------------------------------------


def data_set_create(*, department: Department, spec: DataSetSpec, actor: User) -> DataSet:
    """A new, empty data set of the department, indexed in the department's landing zone."""
    landing_zone = LandingZone.for_department(department)
    if landing_zone is None:
        raise DataSetRefused(
            f"{department.name} has no landing zone to index documents in yet: a platform admin sets one up."
        )
    _refuse_owner_unless_lead(spec.owner, department)
    with transaction.atomic():
        # The department's row is the lock under which its data set names are checked.
        Department.objects.select_for_update().filter(pk=department.pk).first()
        _refuse_taken_name(department, spec.name)
        data_set = DataSet(
            department=department,
            name=spec.name,
            description=spec.description,
            data_classification=spec.data_classification,
            owner=spec.owner,
            landing_zone=landing_zone,
            created_by=actor,
        )
        try:
            with transaction.atomic():
                data_set.save()
        except IntegrityError:
            raise DataSetRefused(
                f"{department.name} has a data set named “{spec.name}” already: choose another name."
            ) from None
        audit_record(
            actor=actor,
            verb="data_set.created",
            target=data_set,
            department=department,
            after=_data_set_snapshot(data_set),
        )
    return data_set


def data_set_update(*, data_set: DataSet, spec: DataSetSpec, actor: User) -> DataSet:
    """The data set's name, description, classification and owner changed. Its classification
    stays while an assistant is grounded on it (or asks to be): the approvals given were for the
    classification they saw."""
    with transaction.atomic():
        locked = DataSet.objects.select_for_update().select_related("department", "owner", "landing_zone")
        locked_set = locked.get(pk=data_set.pk)
        department = locked_set.department
        _refuse_owner_unless_lead(spec.owner, department)
        _refuse_taken_name(department, spec.name, other_than=locked_set)
        if spec.data_classification != locked_set.data_classification:
            open_groundings = locked_set.groundings.current().count()
            if open_groundings:
                assistants = f"{open_groundings} assistant{'s' if open_groundings != 1 else ''}"
                raise DataSetRefused(
                    f"“{locked_set.name}” serves {assistants} (or is asked for by them), approved for its "
                    "present classification: remove it from them before changing its classification."
                )
        before = _data_set_snapshot(locked_set)
        locked_set.name = spec.name
        locked_set.description = spec.description
        locked_set.data_classification = spec.data_classification
        locked_set.owner = spec.owner
        if _data_set_snapshot(locked_set) == before:
            return locked_set
        locked_set.save()
        audit_record(
            actor=actor,
            verb="data_set.updated",
            target=locked_set,
            department=department,
            before=before,
            after=_data_set_snapshot(locked_set),
        )
    return locked_set


def data_set_deletion_refusal(data_set: DataSet) -> str:
    """Why the data set cannot be deleted now ("" if it can): only an empty data set that no
    assistant uses or asks for is deleted."""
    documents = data_set.documents.count()
    deleting = data_set.documents.filter(state=Document.State.DELETING).count()
    if documents and documents == deleting:
        return (
            f"“{data_set.name}”'s last document{'s are' if documents != 1 else ' is'} still being deleted: "
            "delete the data set once the list is empty."
        )
    if documents:
        return (
            f"“{data_set.name}” still holds {documents} document{'s' if documents != 1 else ''}: "
            "delete them first (their passages leave the index with them), then the data set."
        )
    open_groundings = data_set.groundings.current().select_related("deployment")
    if names := ", ".join(sorted({grounding.deployment.display_name for grounding in open_groundings})):
        return f"“{data_set.name}” is used or asked for by {names}: remove it from those assistants first."
    return ""


def data_set_delete(*, data_set: DataSet, actor: User) -> None:
    """Deletes an empty data set no assistant uses; its ended groundings (removed, rejected) go
    with it, their history staying in the audit trail."""
    with transaction.atomic():
        locked = DataSet.objects.select_for_update().select_related("department", "owner", "landing_zone")
        locked_set = locked.get(pk=data_set.pk)
        refusal = data_set_deletion_refusal(locked_set)
        if refusal:
            raise DataSetRefused(refusal)
        before = _data_set_snapshot(locked_set)
        audit_record(
            actor=actor,
            verb="data_set.deleted",
            target=locked_set,
            department=locked_set.department,
            before=before,
        )
        try:
            with transaction.atomic():
                locked_set.groundings.all().delete()
                locked_set.delete()
        except (ProtectedError, RestrictedError):
            raise DataSetRefused(
                f"“{locked_set.name}” is still referred to by an approval request: it is kept for the record."
            ) from None


# Documents ------------------------------------------------------------------------------------


def check_upload(*, name: str, data: bytes, limits: Limits | None = None) -> CheckedFile:
    """Every check that can be made on an uploaded file's bytes while its uploader waits, so a
    refusal is shown at once: what `files.check_file` checks, then for a PDF whether it opens
    without a password and how many pages it has, and for a text file whether it holds any text.
    Reading the whole of a PDF or an Office file is left to ingestion."""
    limits = limits or Limits.from_settings()
    checked = check_file(name=name, data=data, limits=limits)
    if checked.kind is DocumentKind.PDF:
        # The PDF reader checks the password and the page count before it reads the first page,
        # which is as far as it is taken here.
        pages = extract.READERS[DocumentKind.PDF](data, limits)
        try:
            next(iter(pages), None)
        except FileRefused:
            raise
        except Exception as exc:
            raise CorruptFile(
                "This PDF is damaged and cannot be read: open it, save a new copy (or print it to PDF) "
                "and upload that."
            ) from exc
    elif checked.kind in TEXT_KINDS:
        extract.extract_sections(checked, data, limits=limits)
    return checked


# A file's name is a folder entry in the storage: most file systems stop at 255 bytes.
MAX_NAME_BYTES = 200


def _refuse_bad_name(name: str) -> None:
    if len(name.encode()) > MAX_NAME_BYTES:
        raise DocumentRefused(
            f"This file's name is too long to be kept: shorten it to about {MAX_NAME_BYTES // 2} characters "
            "and upload it again.",
            code="name_too_long",
        )
    if any(unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp") for character in name):
        raise DocumentRefused(
            "This file's name holds control characters or line breaks: rename it and upload it again.",
            code="bad_name",
        )


def document_upload(*, data_set: DataSet, name: str, data: bytes, actor: User) -> UploadResult:
    """Adds the file to the data set: a new document, or a new version of the document of the
    same name (the same bytes again change nothing). Raises `FileRefused` for a file Switchyard
    will not read and `DocumentRefused` when the data set cannot take it."""
    _refuse_bad_name(display_name(name))
    checked = check_upload(name=display_name(name), data=data)
    sha256 = hashlib.sha256(data).hexdigest()
    with _StoredFiles() as files, transaction.atomic():
        # The data set's row is the lock under which its documents are counted and named.
        locked_set = DataSet.objects.select_for_update().select_related("department").get(pk=data_set.pk)
        existing = Document.objects.select_for_update().filter(data_set=locked_set, name=checked.name).first()
        before = None
        if existing is None:
            document = _document_add(locked_set, checked, sha256=sha256)
            outcome = UploadOutcome.ADDED
        elif existing.state == Document.State.DELETING:
            raise DocumentRefused(
                f"“{existing.name}” is being deleted: upload it again once it has left the list.",
                code="being_deleted",
            )
        elif existing.sha256 == sha256:
            existing.data_set = locked_set
            if existing.state != Document.State.FAILED:
                return UploadResult(existing, UploadOutcome.UNCHANGED)
            # The same file again after it failed is the lead asking to try once more.
            _document_retry(existing, actor=actor)
            return UploadResult(existing, UploadOutcome.RETRIED)
        else:
            existing.data_set = locked_set
            before = _document_snapshot(existing)
            document = _document_new_version(existing, checked, sha256=sha256)
            outcome = UploadOutcome.NEW_VERSION
        document.uploaded_by = actor
        document.uploaded_at = timezone.now()
        files.store(document, checked.name, data)
        audit_record(
            actor=actor,
            verb="document.uploaded" if outcome is UploadOutcome.ADDED else "document.version_uploaded",
            target=document,
            department=locked_set.department,
            before=before,
            after=_document_snapshot(document),
        )
        ingest.ingestion_start(document)
    return UploadResult(document, outcome)


def _document_add(data_set: DataSet, checked: CheckedFile, *, sha256: str) -> Document:
    limit = settings.GROUNDING_MAX_DOCUMENTS
    if data_set.documents.count() >= limit:
        raise DocumentRefused(
            f"“{data_set.name}” holds {limit:,} documents, as many as a data set may: delete documents it "
            "no longer needs, or start another data set.",
            code="too_many_documents",
        )
    return Document(
        data_set=data_set,
        uid=uuid.uuid4().hex,
        name=checked.name,
        version=1,
        kind=checked.kind.value,
        size=checked.size,
        sha256=sha256,
        pages=checked.pages,
    )


def _document_new_version(document: Document, checked: CheckedFile, *, sha256: str) -> Document:
    """The document at its next version. The earlier version's file stays where it is (each
    version has its own path), so its passages and the citations that open it last until
    ingestion replaces them."""
    document.version += 1
    document.kind = checked.kind.value
    document.size = checked.size
    document.sha256 = sha256
    document.pages = checked.pages
    return document


class _StoredFiles:
    """The files stored in a transaction, deleted again if it does not commit (an audit event or
    a row that fails): a file of no document would be kept and paid for forever."""

    def __init__(self) -> None:
        self.stored: list[tuple[Any, str]] = []

    def store(self, document: Document, filename: str, data: bytes) -> None:
        document.file.save(filename, ContentFile(data), save=False)
        self.stored.append((document.file.storage, document.file.name))
        document.save()

    def __enter__(self) -> "_StoredFiles":
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            return
        for storage, name in self.stored:
            storage.delete(name)


def document_retry(*, document: Document, actor: User) -> Document:
    """Reads a failed document again (its failure may have passed: a busy service, a limit
    since raised). Any other state is left as it is."""
    with transaction.atomic():
        locked = (
            Document.objects.select_for_update().select_related("data_set__department").get(pk=document.pk)
        )
        if locked.state != Document.State.FAILED:
            return locked
        _document_retry(locked, actor=actor)
    return locked


def _document_retry(document: Document, *, actor: User) -> None:
    before = {**_document_snapshot(document), "state_reason": document.state_reason}
    ingest.ingestion_start(document)
    audit_record(
        actor=actor,
        verb="document.retried",
        target=document,
        department=document.data_set.department,
        before=before,
        after=_document_snapshot(document),
    )


def document_delete(*, document: Document, actor: User) -> Document:
    """Starts the document's removal: its passages leave the index and its files the storage,
    then its row (ingest.document_remove). Deleting one already being deleted does nothing."""
    with transaction.atomic():
        locked = (
            Document.objects.select_for_update().select_related("data_set__department").get(pk=document.pk)
        )
        if locked.state == Document.State.DELETING:
            return locked
        before = _document_snapshot(locked)
        ingest.removal_start(locked)
        audit_record(
            actor=actor,
            verb="document.deleted",
            target=locked,
            department=locked.data_set.department,
            before=before,
            after=_document_snapshot(locked),
        )
    return locked
