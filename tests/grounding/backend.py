"""The grounding backend for tests: a landing zone on the test emulator's subscription, its search
service and embeddings deployment provisioned through the real engine (the Celery tasks' service
functions called in the test's process, as the task would call them), and documents ingested
the same way.

Registered for the whole suite (tests/conftest.py's `pytest_plugins`): ask for the fixtures by
name, or call `provision_search_backend(zone)` / `ingest(document)` directly.

- `search_zone`: central IT's shared landing zone on the emulator's subscription (run by
  `platform_department`, which runs its shared services).
- `search_backend`: the zone's active `SearchService` (its embeddings deployment active too).
- `documents_folder`: documents' files kept in the test's own folder (a worker process started
  by the test reads them there too when given `DOCUMENTS_DIR` = this folder).
"""

import hashlib
import time
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from grounding import ingest as ingestion
from grounding import retrieval
from grounding.models import DataSet, Document
from org.models import Department, User
from provisioning.azure_errors import TransientAzureError
from provisioning.models import LandingZone, ModelDeployment, SearchService
from provisioning.search import search_backend_for, search_service_provision
from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION, drive_run
from tests.factories import make_department, make_landing_zone


def provision_search_backend(
    zone: LandingZone, *, requested_for: Department | None = None, limit_seconds: float = 60
) -> SearchService:
    """`search_backend_for(zone)`, then its runs driven to their end as the Celery tasks would
    (the embeddings deployment's run by the engine, the service's steps by its own task)."""
    service = search_backend_for(zone, requested_for=requested_for)
    assert service.embeddings_deployment is not None
    deployment = ModelDeployment.objects.get(pk=service.embeddings_deployment.pk)
    if deployment.state == ModelDeployment.State.PROVISIONING:
        drive_run(deployment.pk, limit_seconds=limit_seconds)
    return drive_search_service(service.pk, limit_seconds=limit_seconds)


def drive_search_service(service_id: int, *, limit_seconds: float = 60) -> SearchService:
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            wait = search_service_provision(service_id=service_id)
        except TransientAzureError:
            wait = 0.05
        if wait is None:
            return SearchService.objects.select_related("embeddings_deployment", "landing_zone").get(
                pk=service_id
            )
        time.sleep(min(wait, 0.05))
    raise AssertionError("the search service's provisioning did not finish")


@pytest.fixture(autouse=True)
def _search_services_read_afresh():
    # Retrieval remembers zones' active search services in the process; a test's rows end with
    # its transaction (and the next test's zone may have the same id).
    retrieval.forget_services()


@pytest.fixture
def documents_folder(tmp_path, monkeypatch) -> Path:
    """The documents' storage in the test's own folder. The file field took its storage when the
    model was loaded, so it is replaced there (overriding STORAGES would not reach it)."""
    folder: Path = tmp_path / "documents"
    monkeypatch.setattr(Document._meta.get_field("file"), "storage", FileSystemStorage(location=folder))
    return folder


@pytest.fixture
def platform_department(db) -> Department:
    return make_department(name="Central IT", slug="central-it", cost_center="CC-1000")


@pytest.fixture
def search_zone(db, platform_department) -> LandingZone:
    return make_landing_zone(
        name="Central IT shared",
        slug="central",
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        allowed_regions=["swedencentral"],
    )


@pytest.fixture
def search_backend(emulator, settings, search_zone, platform_department) -> SearchService:
    """The zone's search backend, active, on the test emulator."""
    settings.PROVISIONING_POLL_SECONDS = 0.05
    service = provision_search_backend(search_zone, requested_for=platform_department)
    assert service.state == SearchService.State.ACTIVE, service.status_message
    return service


# Documents -------------------------------------------------------------------------------------


def make_data_set(*, department: Department, owner: User, zone: LandingZone, name: str = "") -> DataSet:
    return DataSet.objects.create(
        department=department,
        name=name or f"{department.name} documents",
        owner=owner,
        landing_zone=zone,
        created_by=owner,
    )


def make_document(
    *, data_set: DataSet, name: str, content: bytes, kind: str = "", uploaded_by: User | None = None
) -> Document:
    """A document's first version as the upload leaves it (queued, file stored)."""
    document = Document(
        data_set=data_set,
        uid=uuid.uuid4().hex,
        name=name,
        kind=kind or name.rsplit(".", 1)[-1].lower(),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        uploaded_by=uploaded_by,
        uploaded_at=timezone.now(),
    )
    document.file.save(name, ContentFile(content), save=False)
    document.save()
    return document


def new_version(document: Document, content: bytes) -> Document:
    document.version += 1
    document.size = len(content)
    document.sha256 = hashlib.sha256(content).hexdigest()
    document.uploaded_at = timezone.now()
    document.file.save(document.name, ContentFile(content), save=False)
    document.save()
    return document


def ingest(document: Document, *, limit_seconds: float = 60) -> Document:
    """Queue the document's current version and run its ingestion as the task would (a run that
    asks to be looked at again is run again), until it is indexed or failed."""
    ingestion.ingestion_start(document)
    token = Document.objects.get(pk=document.pk).run_token
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        wait = ingestion.document_ingest(document.pk, token)
        if wait is None:
            return Document.objects.get(pk=document.pk)
        time.sleep(min(wait, 0.05))
    raise AssertionError("the document's ingestion did not finish")
