"""Fixtures for the data set pages' tests (imported by their `*_fixture` names, which
pytest knows by the names given): documents kept in a temporary folder, Marketing with
its landing zone and a data set, and a helper that uploads through the service."""

import pytest
from django.core.files.storage import storages

from grounding.models import DataSet, Document
from grounding.services import DataSetSpec, data_set_create, document_upload
from org.models import Department, User
from provisioning.models import DataClassification
from tests.factories import make_landing_zone


@pytest.fixture(name="documents_storage")
def documents_storage_fixture(settings, tmp_path):
    """The documents storage in a temporary folder. The file field holds the storage it was
    built with, so it is pointed at the new one too (and back afterwards); overriding STORAGES
    resets Django's storage handler."""
    location = tmp_path / "documents"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    field = Document._meta.get_field("file")
    original = field.storage
    field.storage = storages["documents"]
    yield location
    field.storage = original


@pytest.fixture(name="marketing_zone")
def marketing_zone_fixture(marketing):
    return make_landing_zone(name="Marketing zone", slug="marketing", owner_department=marketing)


@pytest.fixture(name="brand_guide")
def brand_guide_fixture(marketing, marketing_lead, marketing_zone, documents_storage) -> DataSet:
    return make_data_set(department=marketing, owner=marketing_lead, name="Brand guide")


def make_data_set(
    *,
    department: Department,
    owner: User,
    name: str = "Brand guide",
    classification: str = DataClassification.INTERNAL,
) -> DataSet:
    return data_set_create(
        department=department,
        spec=DataSetSpec(name=name, description="", data_classification=classification, owner=owner),
        actor=owner,
    )


def upload(data_set: DataSet, name: str, data: bytes, *, actor: User, state: str | None = None) -> Document:
    """A document uploaded through the service; `state` sets where ingestion has taken it."""
    document = document_upload(data_set=data_set, name=name, data=data, actor=actor).document
    if state is not None:
        document.state = state
        document.save(update_fields=["state"])
    return document
