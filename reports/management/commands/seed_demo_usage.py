from typing import Any

from django.core.management.base import BaseCommand

from org.demo import refuse_outside_development
from reports.demo import DAYS, seed_usage


class Command(BaseCommand):
    help = (
        f"Add {DAYS} days of demo usage for every demo department (run after seed_demo, which calls "
        "it). Development only (DEBUG=true). Safe to run again: it replaces the demo usage it made "
        "before and no other."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        refuse_outside_development()
        records = seed_usage()
        self.stdout.write(self.style.SUCCESS(f"Demo usage ready: {records} model calls over {DAYS} days."))
