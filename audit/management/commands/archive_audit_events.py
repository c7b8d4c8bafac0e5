from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.retention import AuditArchiveRefused, audit_events_archive, retention_cutoff


class Command(BaseCommand):
    help = (
        "Move the audit events older than AUDIT_RETENTION_YEARS to a JSON Lines file under "
        "AUDIT_ARCHIVE_DIR and record the archive (the scheduler does this daily). Nothing happens "
        "when retention is 0 (keep forever) or no event is that old."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        cutoff = retention_cutoff(now)
        if cutoff is None:
            self.stdout.write("Retention is off (AUDIT_RETENTION_YEARS=0): every event stays.")
            return
        try:
            archive = audit_events_archive(now=now)
        except AuditArchiveRefused as refused:
            raise CommandError(str(refused)) from refused
        if archive is None:
            self.stdout.write(f"Nothing to archive: no event is older than {cutoff:%Y-%m-%d}.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Archived {archive.events} events (sequence {archive.first_sequence} to "
                f"{archive.last_sequence}, older than {settings.AUDIT_RETENTION_YEARS} years) "
                f"to {archive.path}, SHA-256 {archive.file_sha256}."
            )
        )
