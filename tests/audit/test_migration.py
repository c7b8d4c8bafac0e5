"""A database with audit events written before the chain existed migrates to a chained trail
that `audit_verify` finds intact, in the order the events were written."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify
from tests.factories import make_department, make_user

BEFORE_THE_CHAIN = [("audit", "0001_initial")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_events_from_before_the_chain_are_chained_in_the_order_they_were_written():
    department = make_department(name="Marketing")
    person = make_user(email="mia@example.com", department=department)

    old = migrate(BEFORE_THE_CHAIN)
    OldEvent = old.get_model("audit", "AuditEvent")
    written = timezone.now() - timedelta(days=30)
    for minutes, verb in [(2, "request.approved"), (0, "request.submitted"), (5, "deployment.created")]:
        event = OldEvent.objects.create(
            actor_id=person.pk if verb != "deployment.created" else None,
            verb=verb,
            object_type="org.department",
            object_id=str(department.pk),
            object_repr="Marketing",
            before={"state": "draft"},
            after={"state": "submitted", "cost": 12.5},
        )
        # That release stamped the time itself (auto_now_add); these were written out of id order.
        OldEvent.objects.filter(pk=event.pk).update(created_at=written + timedelta(minutes=minutes))

    migrate(latest())

    events = list(AuditEvent.objects.order_by("sequence"))
    assert [(event.sequence, event.verb) for event in events] == [
        (1, "request.submitted"),
        (2, "request.approved"),
        (3, "deployment.created"),
    ]
    assert [(event.actor_kind, event.actor_label) for event in events] == [
        ("person", "mia@example.com"),
        ("person", "mia@example.com"),
        ("system", ""),
    ]
    assert str(audit_chain_verify()) == "audit trail intact: 3 events, sequence 1 to 3"
    # New events chain on after them.
    audit_record(actor=person, verb="department.renamed", target=department)
    assert str(audit_chain_verify()) == "audit trail intact: 4 events, sequence 1 to 4"
