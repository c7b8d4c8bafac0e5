"""Chain the events written before the chain existed, in the order they were written, and set the
chain's head after the last of them."""

from django.db import migrations

from audit.chain import event_hash

BATCH = 2000


def chain(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    User = apps.get_model("org", "User")
    emails = dict(User.objects.values_list("pk", "email"))
    sequence, previous = 0, ""
    batch = []
    for event in AuditEvent.objects.order_by("created_at", "pk").iterator(chunk_size=BATCH):
        sequence += 1
        event.sequence = sequence
        event.actor_kind = "person" if event.actor_id else "system"
        event.actor_label = emails.get(event.actor_id, "") if event.actor_id else ""
        event.prev_hash = previous
        event.hash = previous = event_hash(event)
        batch.append(event)
        if len(batch) >= BATCH:
            AuditEvent.objects.bulk_update(
                batch, ["sequence", "actor_kind", "actor_label", "prev_hash", "hash"]
            )
            batch = []
    if batch:
        AuditEvent.objects.bulk_update(batch, ["sequence", "actor_kind", "actor_label", "prev_hash", "hash"])
    AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": sequence, "hash": previous})


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_chain_and_origin"),
        ("org", "0001_initial"),
    ]

    operations = [migrations.RunPython(chain, migrations.RunPython.noop)]
