"""What each data set holds in its zone's search index, written day by day (`SearchStorage`):
the search service's hours are split across data sets, and so departments, by it."""

from datetime import date

from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from grounding.models import DataSet, Document
from provisioning.models import SearchService, SearchStorage


def search_storage_record(*, service: SearchService, day: date | None = None) -> int:
    """Writes the day's row for every data set of the service's zone (idempotent: the day's rows
    are replaced); a data set gone since the last row gets a zero, so it stops paying. Returns
    the bytes stored in all."""
    day = day or timezone.localdate()
    with transaction.atomic():
        # One writer of a service's day at a time (documents finishing on two workers both write
        # it), and the sizes read under the lock: the last writer writes the latest.
        SearchService.objects.select_for_update().filter(pk=service.pk).first()
        sizes = dict(
            Document.objects.filter(data_set__landing_zone_id=service.landing_zone_id)
            .exclude(state=Document.State.DELETING)
            .order_by()
            .values_list("data_set_id")
            .annotate(Sum("indexed_bytes"))
        )
        departments = dict(
            DataSet.objects.filter(landing_zone_id=service.landing_zone_id).values_list("pk", "department_id")
        )
        last = SearchStorage.objects.filter(service=service, day__lt=day).aggregate(Max("day"))["day__max"]
        earlier = dict(
            SearchStorage.objects.filter(service=service, day=last, stored_bytes__gt=0).values_list(
                "data_set_id", "department_id"
            )
        )
        SearchStorage.objects.filter(service=service, day=day).delete()
        rows = [
            SearchStorage(
                service=service,
                data_set_id=data_set_id,
                department_id=department_id,
                day=day,
                stored_bytes=int(sizes.get(data_set_id) or 0),
            )
            for data_set_id, department_id in (earlier | departments).items()
        ]
        SearchStorage.objects.bulk_create(rows)
    return sum(row.stored_bytes for row in rows)


def search_storage_record_all(day: date | None = None) -> None:
    """Every running search service's day (the beat's daily run)."""
    for service in SearchService.objects.filter(state=SearchService.State.ACTIVE):
        search_storage_record(service=service, day=day)
