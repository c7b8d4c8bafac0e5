"""`audit_verify` walks the hash chain and names the first event that was changed, deleted or
re-linked in the database behind the application's back; it exits with status 1 then."""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from audit.context import origin
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from audit.verify import BreakKind, audit_chain_verify
from tests.factories import make_department, make_user


def verify_command(*arguments: str) -> tuple[int, str]:
    """What an admin sees: the exit status and the output's last line."""
    out = StringIO()
    try:
        call_command("audit_verify", *arguments, stdout=out)
        status = 0
    except SystemExit as exit:
        status = int(exit.code or 0)
    return status, out.getvalue().strip().splitlines()[-1]


def raw(sql: str, parameters: list[str | int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)


def test_an_empty_trail_is_intact(db):
    assert verify_command() == (0, "audit trail intact: no events to check")


def test_the_chain_is_intact_after_many_writes_of_every_kind(write_events):
    person = make_user(email="mia@example.com")
    write_events(120)
    with origin(request_id="req-1", source_ip="2001:db8::0001"):
        audit_record(actor=person, verb="auth.signed_in", target=person, note="with a\nline break")
    audit_record(
        actor=None,
        verb="gateway.key_used",
        target=person,
        actor_kind=AuditEvent.ActorKind.SERVICE_PRINCIPAL,
        actor_label="reporting-app",
        after={"nested": {"b": 1, "a": [1.5, None, True]}},
    )

    # Batches smaller than the trail: the walk goes on from one to the next.
    report = audit_chain_verify(batch=50)

    assert report.intact
    assert (report.events, report.first_sequence, report.last_sequence) == (122, 1, 122)
    assert verify_command() == (0, "audit trail intact: 122 events, sequence 1 to 122")


def test_an_event_edited_in_the_database_is_named(write_events):
    write_events(10)
    table = AuditEvent._meta.db_table
    raw(f"UPDATE {table} SET note = %s WHERE sequence = %s", ["nothing to see here", 4])  # noqa: S608

    status, last_line = verify_command()

    assert status == 1
    assert last_line.startswith("audit trail broken at event 4: its content was changed after it was written")


def test_an_event_deleted_from_the_database_is_named_as_missing(write_events):
    write_events(10)
    raw(f"DELETE FROM {AuditEvent._meta.db_table} WHERE sequence IN (6, 7)", [])  # noqa: S608

    status, last_line = verify_command()

    assert status == 1
    assert last_line.startswith("audit trail broken at event 6: events 6 to 7 are missing")


def test_the_last_event_deleted_is_named_as_missing(write_events):
    write_events(5)
    raw(f"DELETE FROM {AuditEvent._meta.db_table} WHERE sequence = 5", [])  # noqa: S608

    status, last_line = verify_command()

    assert status == 1
    assert last_line.startswith("audit trail broken at event 5: event 5 is missing")


def test_a_changed_link_to_the_previous_event_is_named(write_events):
    events = write_events(8)
    raw(
        f"UPDATE {AuditEvent._meta.db_table} SET prev_hash = %s WHERE sequence = 3",  # noqa: S608
        [events[0].hash],
    )

    status, last_line = verify_command()

    assert status == 1
    assert last_line.startswith("audit trail broken at event 3: its link to the previous event is wrong")
    assert audit_chain_verify().broken.kind == BreakKind.RELINKED


def test_a_head_that_does_not_match_the_last_event_is_named(write_events):
    events = write_events(3)
    AuditChainHead.objects.update(hash=events[0].hash)

    status, last_line = verify_command()

    assert status == 1
    assert last_line.startswith(
        "audit trail broken at event 3: the chain's head does not match the last event"
    )


def test_an_event_slipped_in_outside_the_chain_is_named(write_events):
    write_events(2)
    raw(
        f"INSERT INTO {AuditEvent._meta.db_table} (actor_kind, actor_label, verb, object_type, object_id, "  # noqa: S608
        "object_repr, note, request_id, created_at, prev_hash, hash) "
        "VALUES ('system', '', 'membership.added', 'org.user', '1', 'x', '', '', %s, '', '')",
        ["2026-01-01T00:00:00+00:00"],
    )

    status, last_line = verify_command()

    assert status == 1
    assert "an event outside the chain" in last_line


def test_since_sequence_checks_the_recent_events_only(write_events):
    write_events(10)
    raw(f"UPDATE {AuditEvent._meta.db_table} SET note = 'edited' WHERE sequence = 2", [])  # noqa: S608

    assert verify_command("--since-sequence", "5") == (0, "audit trail intact: 6 events, sequence 5 to 10")
    assert verify_command()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_chain_one_after_the_other():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer in at a time anyway.")
    department = make_department(name="Marketing")
    per_writer, failures = 40, []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        try:
            start.wait()
            for number in range(per_writer):
                # Each event in its own transaction, as the change it records would be.
                with transaction.atomic():
                    audit_record(
                        actor=None, verb="department.renamed", target=department, note=f"{name} {number}"
                    )
        except Exception as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)) == list(
        range(1, 2 * per_writer + 1)
    )
    assert (
        str(audit_chain_verify())
        == f"audit trail intact: {2 * per_writer} events, sequence 1 to {2 * per_writer}"
    )


def test_the_head_has_the_shape_the_audit_service_reads_and_writes_by_hand():
    # audit.services reads and moves the head with hand-written SQL: a new column, a renamed one
    # or another table name must be reflected there.
    assert AuditChainHead._meta.db_table == "audit_auditchainhead"
    assert [field.column for field in AuditChainHead._meta.concrete_fields] == ["id", "sequence", "hash"]


def test_the_first_event_makes_the_head(db):
    AuditChainHead.objects.all().delete()
    department = make_department(name="Marketing")

    audit_record(actor=None, verb="department.renamed", target=department)

    assert list(AuditChainHead.objects.values_list("pk", "sequence")) == [(1, 1)]
    assert str(audit_chain_verify()) == "audit trail intact: 1 event, sequence 1 to 1"
