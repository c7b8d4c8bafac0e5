"""The daily record of what each data set stores in its zone's search index."""

import threading
from datetime import date

import pytest
from django.db import connection
from django.utils import timezone

from grounding.models import DataSet, Document
from grounding.storage import search_storage_record
from provisioning.models import SearchService, SearchStorage
from tests.factories import make_department, make_landing_zone

pytestmark = pytest.mark.django_db


@pytest.fixture
def zone(db):
    return make_landing_zone(name="Central")


@pytest.fixture
def service(zone):
    return SearchService.objects.create(landing_zone=zone, name="srch-central", location="swedencentral")


def data_set(zone, department, owner, name):
    return DataSet.objects.create(department=department, name=name, owner=owner, landing_zone=zone)


def document(data_set, name, size, state=Document.State.INDEXED):
    return Document.objects.create(
        data_set=data_set,
        uid=f"{data_set.pk}-{name}",
        name=name,
        kind="md",
        size=size,
        sha256="0" * 64,
        indexed_bytes=size,
        state=state,
        uploaded_at=timezone.now(),
    )


def rows(day):
    found = SearchStorage.objects.filter(day=day)
    return {(row.data_set_id, row.department_id): row.stored_bytes for row in found}


def test_each_data_set_of_the_zone_is_recorded_with_its_department(zone, service, marketing, marketing_lead):
    hr = make_department(name="HR")
    brand = data_set(zone, marketing, marketing_lead, "Brand guide")
    handbook = data_set(zone, hr, marketing_lead, "Handbook")
    elsewhere = data_set(make_landing_zone(), marketing, marketing_lead, "Elsewhere")
    document(brand, "a.md", 100)
    document(brand, "b.md", 50)
    document(brand, "going.md", 70, state=Document.State.DELETING)
    document(handbook, "h.md", 30)
    document(elsewhere, "x.md", 999)

    total = search_storage_record(service=service, day=date(2026, 3, 1))

    assert total == 180
    assert rows(date(2026, 3, 1)) == {(brand.pk, marketing.pk): 150, (handbook.pk, hr.pk): 30}


def test_running_twice_a_day_replaces_the_days_rows_and_a_deleted_data_set_pays_nothing_after(
    zone, service, marketing, marketing_lead
):
    brand = data_set(zone, marketing, marketing_lead, "Brand guide")
    doc = document(brand, "a.md", 100)
    search_storage_record(service=service, day=date(2026, 3, 1))
    search_storage_record(service=service, day=date(2026, 3, 1))
    brand_id = brand.pk
    doc.delete()
    brand.delete()

    search_storage_record(service=service, day=date(2026, 3, 2))

    assert rows(date(2026, 3, 1)) == {(brand_id, marketing.pk): 100}
    assert rows(date(2026, 3, 2)) == {(brand_id, marketing.pk): 0}


@pytest.mark.django_db(transaction=True)
def test_two_documents_finishing_at_once_on_two_workers_both_write_the_day(marketing, marketing_lead):
    zone = make_landing_zone(name="Central")
    service = SearchService.objects.create(landing_zone=zone, name="srch-central", location="swedencentral")
    brand = data_set(zone, marketing, marketing_lead, "Brand guide")
    document(brand, "a.md", 100)
    document(brand, "b.md", 50)
    start = threading.Barrier(2)
    failures: list[Exception] = []

    def record():
        try:
            start.wait()
            search_storage_record(service=service, day=date(2026, 3, 1))
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert rows(date(2026, 3, 1)) == {(brand.pk, marketing.pk): 150}
