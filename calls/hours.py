"""Hourly rollups of the calls' minutes (`CallHour` from `CallMinute`), and the minutes' retention.

The settlement writes minutes as calls end. Once an hour is over, the beat folds its minutes into
hour rows, so a day or a week on the operations page reads a sixtieth of the rows. Every run folds
the last `REFOLD_HOURS` finished hours again from their minutes (a call settling a moment after
its hour ended still counts) and every hour since the last one folded (a worker that was down
catches up); an hour is replaced whole, so running twice changes nothing. The page reads minutes
for the hours a run may not have folded yet (`minutes_since`).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from calls.models import COUNTERS, HISTOGRAMS, TOKENS, CallHour, CallMinute

REFOLD_HOURS = 2
# A provisioned deployment's busiest minute over the week is read from minutes: keep a week and a day.
MINUTES_KEPT_DAYS = 8
KEY = ("deployment_id", "department_id", "source")


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def minutes_since(now: datetime) -> datetime:
    """From when the page reads minutes rather than hours: the hours a fold may not have reached."""
    return hour_of(now) - timedelta(hours=REFOLD_HOURS - 1)


def call_hours_fold(*, now: datetime | None = None, since: datetime | None = None) -> int:
    """Fold the finished hours not yet folded, and the last `REFOLD_HOURS` again (or every hour from
    `since`, after minutes were rewritten); drop minutes older than `MINUTES_KEPT_DAYS`. Returns the
    number of hour rows written."""
    now = now or timezone.now()
    this_hour = hour_of(now)
    last_folded = CallHour.objects.aggregate(last=Max("hour"))["last"]
    if since is not None:
        start = hour_of(since)
    elif last_folded is None:
        first_minute = CallMinute.objects.aggregate(first=Min("minute"))["first"]
        if first_minute is None:
            return 0
        start = hour_of(first_minute)
    else:
        start = min(last_folded, this_hour - timedelta(hours=REFOLD_HOURS))
    with transaction.atomic():
        minutes = (
            CallMinute.objects.filter(minute__gte=start, minute__lt=this_hour)
            .order_by()
            .values("minute", *KEY, *COUNTERS, *TOKENS, *HISTOGRAMS)
        )
        hours = _folded(minutes.iterator(chunk_size=5000))
        CallHour.objects.filter(hour__gte=start, hour__lt=this_hour).delete()
        CallHour.objects.bulk_create(hours, batch_size=1000)
        CallMinute.objects.filter(minute__lt=now - timedelta(days=MINUTES_KEPT_DAYS)).delete()
    return len(hours)


def _folded(minutes: Iterable[dict[str, Any]]) -> list[CallHour]:
    hours: dict[tuple[Any, ...], CallHour] = {}
    for minute in minutes:
        key = (hour_of(minute["minute"]), *(minute[name] for name in KEY))
        hour = hours.get(key)
        if hour is None:
            hour = hours[key] = CallHour(
                hour=key[0], **{name: minute[name] for name in KEY}, first_token_ms=[], answer_ms=[]
            )
        hour.counts_add(minute)
    return list(hours.values())
