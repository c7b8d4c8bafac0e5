"""The retention rule: events older than `AUDIT_RETENTION_YEARS` leave the database for a JSON
Lines file under `AUDIT_ARCHIVE_DIR`, and an `AuditArchive` row records which ones, where, and
the file's SHA-256. This is the one place the application removes audit events.

Events leave as a run at the start of the chain (oldest sequence first), so the chain in the
database still starts from a known point: the archive's last hash, which `audit_verify` takes up.
A run that would archive a broken stretch refuses: archiving it would hide the break."""

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditArchive, AuditEvent
from audit.services import audit_record
from audit.verify import CHECKED_FIELDS, ChainBreak, ChainLinks, chain_rows, chain_start, missing_break

# Every field of an event, as the file keeps it: the id, then what the chain checks.
ARCHIVED_FIELDS = ("id", *CHECKED_FIELDS)


class AuditArchiveRefused(Exception):
    """The events due for archiving do not form an intact chain."""

    def __init__(self, broken: ChainBreak) -> None:
        super().__init__(f"Nothing archived: {broken}. Run audit_verify and investigate first.")
        self.broken = broken


def retention_cutoff(now: datetime) -> datetime | None:
    """The moment before which events are archived; None when they are kept forever."""
    years: int = settings.AUDIT_RETENTION_YEARS
    if years <= 0:
        return None
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February, in a year without one
        return now.replace(year=now.year - years, day=28)


def audit_events_archive(*, now: datetime | None = None) -> AuditArchive | None:
    """Archive every event older than the retention period (none when retention is off or no
    event is that old). Safe to run twice at once: the second waits on the oldest event's lock
    and then finds it gone."""
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return None
    with transaction.atomic():
        due = _due_events(cutoff)
        if due is None:
            return None
        after, previous_hash, up_to = due
        path = Path(settings.AUDIT_ARCHIVE_DIR) / f"audit-events-{after + 1}-to-{up_to}-{now:%Y-%m-%d}.jsonl"
        links = ChainLinks(next_sequence=after + 1, previous_hash=previous_hash)
        count, file_sha256 = _write_file(path, links, after=after, up_to=up_to)
        archive = AuditArchive.objects.create(
            first_sequence=after + 1,
            last_sequence=up_to,
            last_hash=links.previous_hash,
            events=count,
            path=str(path),
            file_sha256=file_sha256,
            older_than=cutoff,
        )
        _delete_events(after + 1, up_to, expected=count)
        audit_record(
            actor=None,
            verb="audit.archived",
            target=archive,
            after={
                "first_sequence": archive.first_sequence,
                "last_sequence": archive.last_sequence,
                "events": count,
                "path": archive.path,
                "file_sha256": file_sha256,
                "older_than": cutoff.isoformat(),
            },
            note=f"Retention: events older than {settings.AUDIT_RETENTION_YEARS} years archived.",
        )
    return archive


def _due_events(cutoff: datetime) -> tuple[int, str, int] | None:
    """The run of events due: the sequence and hash it continues from, and its last sequence.
    Locks the oldest event: a second run at the same time waits, then finds it archived."""
    oldest = (
        AuditEvent.objects.select_for_update()
        .filter(sequence__isnull=False)
        .order_by("sequence")
        .values_list("sequence", "created_at")
        .first()
    )
    if oldest is None or oldest[1] >= cutoff:
        return None
    after, previous_hash = chain_start()
    # The first event that is young enough ends the run (older ones after it, written on a clock
    # running behind, leave with the next run).
    young = (
        AuditEvent.objects.filter(sequence__gt=after, created_at__gte=cutoff)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    if young is None:
        up_to = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or after
    else:
        up_to = young - 1
    return (after, previous_hash, up_to) if up_to > after else None


def _write_file(path: Path, links: ChainLinks, *, after: int, up_to: int) -> tuple[int, str]:
    """Write the events to `path` (one JSON object per line, in sequence order), checking each
    link on the way; the file is on disk (fsynced, renamed into place) before any row goes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    count = 0
    try:
        with partial.open("wb") as file:
            for row in chain_rows(ARCHIVED_FIELDS, after=after, up_to=up_to):
                broken = links.follow(row[1:])
                if broken is not None:
                    raise AuditArchiveRefused(broken)
                line = (json.dumps(_archived_event(row), ensure_ascii=False, default=str) + "\n").encode()
                digest.update(line)
                file.write(line)
                count += 1
            if links.next_sequence != up_to + 1:
                raise AuditArchiveRefused(missing_break(links.next_sequence, up_to))
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
        _fsync_directory(path.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count, digest.hexdigest()


def _archived_event(row: tuple[Any, ...]) -> dict[str, Any]:
    event = dict(zip(ARCHIVED_FIELDS, row, strict=True))
    event["created_at"] = event["created_at"].isoformat()
    return event


def _fsync_directory(directory: Path) -> None:
    """The new file's name is durable too, not only its content."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _delete_events(first: int, last: int, *, expected: int) -> None:
    """The exception to "audit events are never deleted" (the queryset refuses delete()): the
    rows just archived, by sequence range, in the archiving transaction."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE sequence >= %s AND sequence <= %s", [first, last])  # noqa: S608
        deleted = cursor.rowcount
    if deleted != expected:  # rolls the whole run back, the archive record with it
        raise RuntimeError(f"Archiving events {first} to {last}: {deleted} rows deleted, {expected} written.")
