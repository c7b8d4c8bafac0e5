"""Usage moved from the chat app to the money app with its data: a database of the previous release
(usage records and rollups in chat's tables, written by that release's models) migrates to this one
and back without losing a record, a rollup or the content types that permissions hang on."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from chat.models import Conversation
from money.models import MonthlyUsageRollup, UsageRecord, UsageRollup
from tests.factories import make_department, make_deployment, make_spend, make_user

PREVIOUS_RELEASE = [("chat", "0003_admission_and_history_off"), ("money", "0001_initial")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def table_names():
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.mark.django_db(transaction=True)
def test_a_database_holding_usage_from_the_previous_release_migrates_and_keeps_it():
    department = make_department(name="Marketing")
    deployment = make_deployment(department=department)
    person = make_user(email="mia@example.com", department=department)
    make_spend(department, deployment, Decimal("1.25"))
    ContentType.objects.get_for_model(UsageRecord)  # as the previous release's admin had made it

    old = migrate(PREVIOUS_RELEASE)

    assert {"chat_usagerecord", "chat_monthlyusagerollup"} <= table_names()
    assert "money_usagerecord" not in table_names()
    assert ContentType.objects.filter(app_label="chat", model="usagerecord").exists()
    # The previous release writes a call of its own, with a conversation, through its own models.
    conversation = old.get_model("chat", "Conversation").objects.create(
        user_id=person.pk, deployment_id=deployment.pk, department_id=department.pk, title="Launch plan"
    )
    old.get_model("chat", "UsageRecord").objects.create(
        department_id=department.pk,
        deployment_id=deployment.pk,
        user_id=person.pk,
        conversation_id=conversation.pk,
        input_tokens=400,
        output_tokens=100,
        cost=Decimal("0.0125000000"),
        created_at=timezone.now(),
    )
    permission_id = Permission.objects.get(content_type__app_label="chat", codename="view_usagerecord").pk

    migrate(latest())

    assert {"money_usagerecord", "money_usagerollup", "money_monthlyusagerollup"} <= table_names()
    assert not {"chat_usagerecord", "chat_usagerollup"} & table_names()
    assert sorted(UsageRecord.objects.values_list("cost", flat=True)) == [Decimal("0.0125"), Decimal("1.25")]
    moved = UsageRecord.objects.get(input_tokens=400)
    assert moved.conversation == Conversation.objects.get(title="Launch plan")
    assert moved.user == person
    assert UsageRollup.objects.get().cost == Decimal("1.25")
    assert MonthlyUsageRollup.objects.get().cost == Decimal("1.25")
    # The admin's permissions moved with the model: whoever could see usage still can.
    permission = Permission.objects.get(pk=permission_id)
    assert (permission.content_type.app_label, permission.codename) == ("money", "view_usagerecord")
    assert not ContentType.objects.filter(app_label="chat", model="usagerecord").exists()
    # And new usage lands in the renamed table alongside.
    make_spend(department, deployment, Decimal("2"))
    assert UsageRecord.objects.count() == 3
