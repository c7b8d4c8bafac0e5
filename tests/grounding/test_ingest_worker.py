"""The whole journey on a real Celery worker process: a zone's first document asks for the search
backend, waits while the engine provisions it, then is read, embedded and indexed; another
document that fails does not stop it; deleting one removes it."""

import pytest

from grounding import ingest as ingestion
from grounding.models import Document
from org.models import Membership
from provisioning.models import SearchService
from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION
from tests.factories import make_department, make_landing_zone, make_user
from tests.grounding.backend import make_data_set, make_document
from tests.workers import Worker, database_url, wait_for

HANDBOOK = b"# Leave\n\nEvery parent may take sixteen weeks of paid parental leave.\n"


@pytest.mark.django_db(transaction=True)
def test_a_worker_provisions_the_backend_and_ingests(emulator, broker, settings, documents_folder):
    settings.PROVISIONING_POLL_SECONDS = 0.2
    hr = make_department(name="HR")
    lead = make_user(department=hr, role=Membership.Role.LEAD)
    zone = make_landing_zone(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        owner_department=hr,
        allowed_regions=["swedencentral"],
    )
    data_set = make_data_set(department=hr, owner=lead, zone=zone)
    worker = Worker(
        {
            **broker,
            "DATABASE_URL": database_url(),
            "AZURE_MODE": "emulator",
            "AZURE_EMULATOR_URL": emulator.url,
            "PROVISIONING_POLL_SECONDS": "0.2",
            "DOCUMENTS_DIR": str(documents_folder),
        }
    )
    try:
        worker.start()
        handbook = make_document(data_set=data_set, name="handbook.md", content=HANDBOOK)
        broken = make_document(data_set=data_set, name="broken.docx", content=b"not a word file")
        ingestion.ingestion_start(handbook)
        ingestion.ingestion_start(broken)

        def settled() -> bool:
            return not Document.objects.filter(state__in=ingestion.INGESTING).exists()

        wait_for(settled, seconds=90, what="both documents to settle")
        handbook.refresh_from_db()
        broken.refresh_from_db()
        assert handbook.state == Document.State.INDEXED, handbook.state_reason
        assert handbook.passages >= 1
        assert broken.state == Document.State.FAILED
        assert broken.state_reason
        assert SearchService.objects.get(landing_zone=zone).state == SearchService.State.ACTIVE

        ingestion.removal_start(handbook)
        wait_for(
            lambda: not Document.objects.filter(pk=handbook.pk).exists(),
            seconds=60,
            what="the document's removal",
        )
    finally:
        worker.stop()
