"""The retention rule moves events older than AUDIT_RETENTION_YEARS to a JSON Lines file,
records the archive, and leaves a chain that `audit_verify` still finds intact."""

import hashlib
import json
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from audit.chain import HASHED_FIELDS, hash_of_values
from audit.models import AuditArchive, AuditEvent
from audit.retention import AuditArchiveRefused, audit_events_archive
from audit.verify import audit_chain_verify


@pytest.fixture(autouse=True)
def archive_dir(settings, tmp_path) -> Path:
    directory: Path = tmp_path / "audit-archive"
    settings.AUDIT_ARCHIVE_DIR = directory
    settings.AUDIT_RETENTION_YEARS = 7
    return directory


def years_after(moment: datetime, years: int) -> datetime:
    return moment.replace(year=moment.year + years)


def test_archived_events_leave_the_database_for_a_file_and_the_chain_stays_intact(write_events):
    events = write_events(30)
    # Seven years after the 21st event was written, the 20 before it are due.
    now = years_after(events[20].created_at, 7)

    archive = audit_events_archive(now=now)

    assert (archive.first_sequence, archive.last_sequence, archive.events) == (1, 20, 20)
    assert archive.last_hash == events[19].hash
    assert archive.older_than == events[20].created_at
    path = Path(archive.path)
    assert path.name == f"audit-events-1-to-20-{now:%Y-%m-%d}.jsonl"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == archive.file_sha256
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["sequence"] for line in lines] == list(range(1, 21))
    assert lines[3] == {
        "id": events[3].pk,
        "sequence": 4,
        "actor_id": None,
        "actor_kind": "system",
        "actor_label": "",
        "verb": "department.budget_changed",
        "object_type": "org.department",
        "object_id": str(events[3].department_id),
        "object_repr": "Marketing",
        "department_id": events[3].department_id,
        "before": {"monthly_budget": "1003"},
        "after": {"monthly_budget": "1004", "note": "Ünïcode ✓"},
        "note": "",
        "request_id": "",
        "source_ip": None,
        "created_at": events[3].created_at.isoformat(),
        "prev_hash": events[2].hash,
        "hash": events[3].hash,
    }
    # The file holds the chain: every line still hashes to its hash.
    for line in lines:
        line["created_at"] = datetime.fromisoformat(line["created_at"])
        assert hash_of_values([line[name] for name in HASHED_FIELDS]) == line["hash"]

    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)) == list(
        range(21, 32)
    )
    recorded = AuditEvent.objects.get(sequence=31)
    assert (recorded.verb, recorded.actor_kind, recorded.object_id) == (
        "audit.archived",
        "system",
        str(archive.pk),
    )
    assert recorded.after["file_sha256"] == archive.file_sha256
    assert str(audit_chain_verify()) == "audit trail intact: 11 events, sequence 21 to 31"
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == "audit trail intact: 11 events, sequence 21 to 31"


def test_a_second_archive_continues_from_the_first(write_events):
    events = write_events(10)
    audit_events_archive(now=years_after(events[4].created_at, 7))
    later = write_events(3)

    second = audit_events_archive(now=years_after(later[0].created_at, 7))

    assert (second.first_sequence, second.last_sequence) == (5, 11)  # the first run's own event too
    assert AuditArchive.objects.count() == 2
    assert str(audit_chain_verify()) == "audit trail intact: 4 events, sequence 12 to 15"


def test_nothing_old_enough_is_a_no_op(write_events, archive_dir):
    write_events(5)

    assert audit_events_archive() is None

    assert AuditEvent.objects.count() == 5
    assert not AuditArchive.objects.exists()
    assert not archive_dir.exists()


def test_retention_zero_keeps_everything(write_events, settings, archive_dir):
    settings.AUDIT_RETENTION_YEARS = 0
    events = write_events(5)

    assert audit_events_archive(now=years_after(events[-1].created_at, 50)) is None
    out = StringIO()
    call_command("archive_audit_events", stdout=out)

    assert "Retention is off" in out.getvalue()
    assert AuditEvent.objects.count() == 5
    assert not AuditArchive.objects.exists()
    assert not archive_dir.exists()


def test_a_broken_stretch_is_not_archived(write_events, archive_dir):
    events = write_events(6)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET note = 'edited' WHERE sequence = 2")  # noqa: S608

    with pytest.raises(AuditArchiveRefused, match="event 2: its content was changed"):
        audit_events_archive(now=years_after(events[-1].created_at + timedelta(seconds=1), 7))

    assert AuditEvent.objects.count() == 6
    assert not AuditArchive.objects.exists()
    assert list(archive_dir.iterdir()) == []


def test_the_command_says_what_it_archived(write_events, archive_dir):
    write_events(3)
    out = StringIO()
    call_command("archive_audit_events", stdout=out)
    assert out.getvalue().startswith("Nothing to archive: no event is older than")
