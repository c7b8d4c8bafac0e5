from typing import Any

from django.core.management.base import BaseCommand

from org.directory_sync import directory_sync, run_summary
from org.models import DirectorySyncRun


class Command(BaseCommand):
    help = (
        "Sync with Microsoft Entra ID now, as the scheduler does every ENTRA_SYNC_EVERY_SECONDS: "
        "memberships and platform roles follow the directory; leavers are deactivated and signed "
        "out. Exits with status 1 when the sync failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        run = directory_sync(trigger=DirectorySyncRun.Trigger.SCHEDULE)
        if run.outcome == DirectorySyncRun.Outcome.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(f"Synced with Microsoft Entra ID: {run_summary(run)}."))
            return
        self.stdout.write(self.style.ERROR(f"The sync failed: {run.error}"))
        raise SystemExit(1)
