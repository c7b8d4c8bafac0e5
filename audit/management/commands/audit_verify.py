from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.models import AuditArchive
from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Check the audit trail's hash chain and name its first broken link: an event changed, "
        "deleted, or re-linked in the database behind the application's back. Exits with status 1 "
        "when the chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since-sequence",
            type=int,
            default=None,
            help="Start at this event (trusting the one before it) instead of at the first one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        archive = AuditArchive.objects.order_by("-last_sequence").first()
        if archive is not None:
            self.stdout.write(
                f"Events 1 to {archive.last_sequence} are archived (last in {archive.path}); "
                f"checking from event {archive.last_sequence + 1}."
            )
        report = audit_chain_verify(since_sequence=options["since_sequence"])
        if report.intact:
            self.stdout.write(self.style.SUCCESS(str(report)))
            return
        self.stdout.write(self.style.ERROR(str(report)))
        raise SystemExit(1)
