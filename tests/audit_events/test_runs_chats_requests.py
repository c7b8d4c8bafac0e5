"""Provisioning runs as the engine writes them (Switchyard acts); chats read under a department's
audit policy; requests, for their department."""

from decimal import Decimal

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from chat.models import Conversation
from money.models import UsageRecord
from provisioning.models import LandingZone, ModelDeployment
from tests.audit_events.conftest import assert_from_the_request, only_event
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_deployment, make_landing_zone, make_request
from tests.provisioning.test_engine import new_deployment, provision

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(emulator, settings):
    settings.PROVISIONING_POLL_SECONDS = 0.1
    return emulator


@pytest.fixture
def zone(db) -> LandingZone:
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-central-ai"
    )


def test_a_provisioning_run_is_audited_when_it_starts(engine, zone, marketing):
    deployment = new_deployment(zone, marketing)

    provision(deployment)

    event = only_event("provisioning.started")
    assert (event.actor, event.actor_kind) == (None, "system")
    assert (event.object_type, event.object_id) == ("provisioning.modeldeployment", str(deployment.pk))
    assert event.department == marketing
    assert event.after == {"run": 1, "state": "provisioning"}


def test_a_provisioning_run_that_succeeds_is_audited(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing))

    assert deployment.state == ModelDeployment.State.ACTIVE
    event = only_event("provisioning.succeeded")
    assert (event.actor, event.actor_kind, event.department) == (None, "system", marketing)
    assert event.after == {"run": 1, "state": "active"}


def test_a_provisioning_run_that_fails_is_audited_with_its_reason(engine, zone, marketing):
    requests.put(
        f"{engine.url}/_emulator/quotas",
        json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o", "limit": 10},
        timeout=5,
    ).raise_for_status()

    deployment = provision(new_deployment(zone, marketing, model="gpt-4o", version="2024-11-20", capacity=50))

    assert deployment.state == ModelDeployment.State.FAILED
    event = only_event("provisioning.failed")
    assert (event.actor, event.actor_kind, event.department) == (None, "system", marketing)
    assert event.after == {"run": 1, "state": "failed"}
    assert event.note == deployment.status_message
    assert "Sweden Central has 10K TPM of gpt-4o (GlobalStandard) left" in event.note


def test_reading_a_chat_under_the_audit_policy_is_audited_for_its_department(
    admin_client, admin, marketing, marketing_member
):
    admin.is_superuser = True  # the usage records' admin page is a superuser's
    admin.save()
    marketing.approvers_may_audit_chats = True
    marketing.save()
    deployment = make_deployment(department=marketing)
    conversation = Conversation.objects.create(
        user=marketing_member, deployment=deployment, department=marketing, title="Q3 plans"
    )
    usage = UsageRecord.objects.create(
        department=marketing,
        user=marketing_member,
        deployment=deployment,
        conversation=conversation,
        input_tokens=10,
        output_tokens=5,
        cost=Decimal("0.0001"),
        created_at=timezone.now(),
    )

    response = admin_client.get(reverse("admin:money_usagerecord_change", args=[usage.pk]))

    assert response.status_code == 200
    event = only_event("chat.content_viewed")
    assert (event.actor, event.object_id, event.department) == (admin, str(conversation.pk), marketing)
    assert_from_the_request(event, response)


def test_a_request_created_is_audited_for_its_department(marketing, marketing_lead):
    request = make_request(department=marketing, requester=marketing_lead, submit=False)

    event = only_event("request.created")
    assert (event.actor, event.object_id, event.department) == (marketing_lead, str(request.pk), marketing)
    assert not AuditEvent.objects.filter(department=None).exclude(verb__startswith="auth.")
