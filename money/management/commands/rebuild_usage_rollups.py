import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max, Min
from django.utils import timezone

from money.models import UsageRecord
from money.usage import usage_rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the daily usage rollups (per department, deployment and person) from the usage "
        "records: a backfill after an import, or a repair. Without dates: every day with usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="first_day", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="last_day", type=date.fromisoformat, help="YYYY-MM-DD")

    def handle(self, *args: Any, first_day: date | None, last_day: date | None, **options: Any) -> None:
        span = UsageRecord.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
        if span["first"] is None and (first_day is None or last_day is None):
            self.stdout.write("No usage records: nothing to roll up.")
            return
        first_day = first_day or timezone.localdate(span["first"])
        last_day = last_day or timezone.localdate(span["last"])
        if last_day < first_day:
            raise CommandError("--to is before --from.")
        started = time.monotonic()
        rows = 0
        # A month at a time keeps each transaction (and its table lock) short.
        day = first_day
        while day <= last_day:
            chunk_end = min(
                last_day, (day.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            )
            rows += usage_rollups_rebuild(first_day=day, last_day=chunk_end)
            day = chunk_end + timedelta(days=1)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled up {first_day} to {last_day}: {rows} rows in {time.monotonic() - started:.1f} s."
            )
        )
