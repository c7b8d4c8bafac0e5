"""The usage records in Django admin: money, never the words of the chat they paid for, unless the
department lets approvers audit its chats (and then reading them is audited)."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from chat.models import Conversation
from money.models import UsageRecord
from org.models import PlatformGroup
from tests.factories import make_deployment, make_user

pytestmark = pytest.mark.django_db

TITLE = "Layoffs in the Lisbon office before Q3"


@pytest.fixture
def usage(marketing, marketing_member) -> UsageRecord:
    deployment = make_deployment(department=marketing)
    conversation = Conversation.objects.create(
        user=marketing_member, deployment=deployment, department=marketing, title=TITLE
    )
    return UsageRecord.objects.create(
        department=marketing,
        user=marketing_member,
        deployment=deployment,
        conversation=conversation,
        input_tokens=1200,
        output_tokens=300,
        cost=Decimal("0.0012"),
        created_at=timezone.now(),
    )


@pytest.fixture
def admin_client(client):
    admin = make_user(email="root@example.com", platform_group=PlatformGroup.ADMINS)
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    client.admin = admin
    return client


def test_a_usage_record_hides_its_conversations_title_and_link_without_auditing(usage, admin_client):
    page = admin_client.get(reverse("admin:money_usagerecord_change", args=[usage.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert "Lisbon" not in text
    assert reverse("admin:chat_conversation_change", args=[usage.conversation_id]) not in text
    assert "1200" in text  # the money facts are still there
    assert not AuditEvent.objects.filter(verb="chat.content_viewed").exists()


def test_the_usage_list_never_shows_conversation_titles(usage, admin_client):
    text = admin_client.get(reverse("admin:money_usagerecord_changelist")).content.decode()

    assert "Lisbon" not in text


def test_where_auditing_is_allowed_the_title_shows_and_the_reading_is_audited(usage, admin_client):
    usage.department.approvers_may_audit_chats = True
    usage.department.save()

    text = admin_client.get(reverse("admin:money_usagerecord_change", args=[usage.pk])).content.decode()

    assert TITLE in text
    event = AuditEvent.objects.get(verb="chat.content_viewed")
    assert (event.actor, event.verb, event.object_id) == (
        admin_client.admin,
        "chat.content_viewed",
        str(usage.conversation_id),
    )
