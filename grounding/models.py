"""A department's documents behind its assistants.

A data set belongs to one department and has an owner (a lead of it) who decides which
assistants may be grounded on it. Its documents are files kept through Django's storage API
(`STORAGES["documents"]`), read into passages by the ingestion tasks and indexed in the landing
zone's Azure AI Search service. A grounding links an assistant (a model deployment with its
system prompt) to a data set once the owner approved it; retrieval reads only the data sets of
the assistant's active groundings.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import storages
from django.db import models
from django.db.models import Q

from base.text import validate_single_line
from org.models import Department
from provisioning.models import DataClassification, LandingZone, ModelDeployment


@dataclass(frozen=True)
class DocumentFigures:
    by_state: dict[str, int]
    stored_bytes: int
    passages: int

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


def _documents_storage():  # type: ignore[no-untyped-def]
    return storages["documents"]


def document_path(document: "Document", filename: str) -> str:
    """Where a document version's bytes are kept: by data set, document and version, so a new
    version never overwrites the file an older citation opens until it is deleted."""
    return f"data-sets/{document.data_set_id}/{document.uid}/v{document.version}/{filename}"


class DataSet(models.Model):
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="data_sets")
    name = models.CharField(max_length=120, validators=[validate_single_line])
    description = models.TextField(blank=True)
    data_classification = models.CharField(
        max_length=20, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_data_sets",
        help_text="The department's lead who approves grounding assistants on it.",
    )
    landing_zone = models.ForeignKey(
        LandingZone,
        on_delete=models.PROTECT,
        related_name="data_sets",
        help_text="Where its passages are indexed: the department's zone.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["department", "name"], name="data_set_name_unique_in_department")
        ]

    def __str__(self) -> str:
        return self.name

    def document_figures(self) -> "DocumentFigures":
        """Its documents counted by state, with the bytes they take and their passages (the data
        set's page and the API's)."""
        rows = (
            self.documents.order_by()
            .values_list("state")
            .annotate(models.Count("pk"), models.Sum("size"), models.Sum("passages"))
        )
        by_state: dict[str, int] = {}
        stored_bytes = passages = 0
        for state, count, size, state_passages in rows:
            by_state[state] = count
            stored_bytes += size or 0
            passages += state_passages or 0
        return DocumentFigures(by_state=by_state, stored_bytes=stored_bytes, passages=passages)


class Document(models.Model):
    """One file of a data set, at its latest version. Uploading a file of the same name again
    makes a new version: its passages replace the old ones in the index."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        EXTRACTING = "extracting", "Reading"
        EMBEDDING = "embedding", "Embedding"
        INDEXING = "indexing", "Indexing"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"

        @classmethod
        def in_flight(cls) -> list[str]:
            return [cls.QUEUED, cls.EXTRACTING, cls.EMBEDDING, cls.INDEXING, cls.DELETING]

    data_set = models.ForeignKey(DataSet, on_delete=models.PROTECT, related_name="documents")
    # Stable across versions; names the document in the index and in the file's path.
    uid = models.CharField(max_length=32, unique=True, editable=False)
    name = models.CharField(max_length=255, validators=[validate_single_line], help_text="The file's name.")
    version = models.PositiveIntegerField(default=1)
    file = models.FileField(storage=_documents_storage, upload_to=document_path, max_length=500)
    kind = models.CharField(max_length=10, help_text="pdf, docx, pptx, xlsx, md, txt or html.")
    size = models.PositiveBigIntegerField(help_text="Bytes of the uploaded file.")
    sha256 = models.CharField(max_length=64)
    pages = models.PositiveIntegerField(null=True, blank=True, help_text="Pages, slides or sheets read.")
    passages = models.PositiveIntegerField(default=0, help_text="Passages in the index.")
    indexed_bytes = models.PositiveBigIntegerField(
        default=0, help_text="Bytes its passages take in the index (text and vectors): the search cost split."
    )
    embedding_tokens = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED, db_index=True)
    state_reason = models.TextField(blank=True, help_text="Why it failed, in words a lead understands.")
    state_changed_at = models.DateTimeField(auto_now_add=True)
    # Each ingestion run has a token: only the task carrying the current one may advance it, so a
    # duplicate or superseded message (an older version's) does nothing.
    run_token = models.CharField(max_length=32, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="uploaded_documents"
    )
    uploaded_at = models.DateTimeField()
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["data_set", "name"], name="document_name_unique_in_data_set")
        ]

    def __str__(self) -> str:
        return self.name


class GroundingQuerySet(models.QuerySet["Grounding"]):
    def active(self) -> "GroundingQuerySet":
        return self.filter(state=Grounding.State.ACTIVE)

    def current(self) -> "GroundingQuerySet":
        """Active, or asked for and waiting for approval: what an assistant uses or will."""
        return self.filter(state__in=Grounding.CURRENT)


class Grounding(models.Model):
    """An assistant grounded on a data set: asked for by a lead of the assistant's department,
    decided by the data set's owner (and the approvers the classification needs)."""

    class State(models.TextChoices):
        REQUESTED = "requested", "Waiting for approval"
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected"
        REMOVED = "removed", "Removed"

    deployment = models.ForeignKey(ModelDeployment, on_delete=models.PROTECT, related_name="groundings")
    data_set = models.ForeignKey(DataSet, on_delete=models.PROTECT, related_name="groundings")
    state = models.CharField(max_length=10, choices=State.choices, default=State.REQUESTED, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    # Requested or active: a grounding an assistant uses, or will once approved.
    CURRENT = (State.REQUESTED, State.ACTIVE)

    objects = GroundingQuerySet.as_manager()

    class Meta:
        ordering = ["requested_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "data_set"],
                condition=Q(state__in=["requested", "active"]),
                name="one_open_grounding_per_assistant_and_data_set",
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment} on {self.data_set}"
