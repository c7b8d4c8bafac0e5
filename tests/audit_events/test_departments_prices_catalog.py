"""A department's budget, retention and audit policy; prices (the command and the admin); catalog
syncs; the approval policy."""

import json
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from approvals.models import ApprovalPolicy
from audit.models import AuditEvent
from provisioning.models import LandingZone, Price
from tests.audit_events.conftest import admin_form, assert_from_the_request, only_event
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing(db):
    return make_department(name="Marketing", monthly_budget=Decimal("1000.00"), chat_retention_days=30)


def change_department(admin_client, department, **changes):
    url = reverse("admin:org_department_change", args=[department.pk])
    data = admin_form(admin_client, url)
    data.update(changes)
    if changes.get("approvers_may_audit_chats") is False:
        data.pop("approvers_may_audit_chats", None)  # an unticked box is not sent
    return admin_client.post(url, data)


def test_a_budget_change_is_audited_with_before_and_after(admin_client, admin, marketing):
    response = change_department(admin_client, marketing, monthly_budget="2500.00")

    assert response.status_code == 302
    event = only_event("department.budget_changed")
    assert (event.actor, event.actor_kind) == (admin, "person")
    assert (event.object_type, event.object_id, event.department) == (
        "org.department",
        str(marketing.pk),
        marketing,
    )
    assert (event.before, event.after) == ({"monthly_budget": "1000.00"}, {"monthly_budget": "2500.00"})
    assert_from_the_request(event, response)
    # Nothing else changed, so nothing else is said.
    assert not AuditEvent.objects.filter(verb__startswith="department.").exclude(
        verb="department.budget_changed"
    )


def test_a_retention_change_is_audited(admin_client, admin, marketing):
    response = change_department(admin_client, marketing, chat_retention_days="90")

    event = only_event("department.retention_changed")
    assert (event.actor, event.department) == (admin, marketing)
    assert (event.before, event.after) == ({"chat_retention_days": 30}, {"chat_retention_days": 90})
    assert_from_the_request(event, response)


def test_letting_approvers_audit_chats_is_audited(admin_client, admin, marketing):
    response = change_department(admin_client, marketing, approvers_may_audit_chats="on")

    event = only_event("department.audit_policy_changed")
    assert (event.actor, event.department) == (admin, marketing)
    assert (event.before, event.after) == (
        {"approvers_may_audit_chats": False},
        {"approvers_may_audit_chats": True},
    )
    assert_from_the_request(event, response)


def test_a_department_form_with_an_error_changes_nothing_and_says_nothing(admin_client, marketing):
    response = change_department(admin_client, marketing, monthly_budget="2500.00", chat_retention_days="-4")

    assert response.status_code == 200  # the form again, with its error
    marketing.refresh_from_db()
    assert marketing.monthly_budget == Decimal("1000.00")
    assert not AuditEvent.objects.filter(verb__startswith="department.").exists()


def test_prices_the_command_loads_are_audited(tmp_path):
    table = tmp_path / "prices.json"
    row = {"model": "gpt-9", "version": "2026-01-01", "sku": "GlobalStandard"}
    table.write_text(
        json.dumps(
            {
                "validFrom": "2026-12-01",
                "tokens": [{**row, "inputPer1M": "1.10", "cachedInputPer1M": "0.55", "outputPer1M": "4.40"}],
                "provisioned": [],
            }
        )
    )

    call_command("load_prices", file=table, stdout=open("/dev/null", "w"))  # noqa: SIM115

    price = Price.objects.get(model_name="gpt-9")
    event = only_event("price.created")
    assert (event.actor, event.actor_kind, event.object_id) == (None, "system", str(price.pk))
    assert event.after["output_per_million"] == "4.40"
    assert event.after["valid_from"] == "2026-12-01"
    assert event.note == "Loaded from prices.json"
    assert event.request_id == ""  # not a request: a command


def test_a_price_corrected_in_the_admin_is_audited(admin_client, admin):
    price = Price.objects.create(
        model_name="gpt-9",
        model_version="2026-01-01",
        sku="GlobalStandard",
        output_per_million=Decimal("4.40"),
        valid_from=date(2026, 12, 1),
    )
    url = reverse("admin:provisioning_price_change", args=[price.pk])

    response = admin_client.post(url, {**admin_form(admin_client, url), "output_per_million": "4.80"})

    assert response.status_code == 302
    event = only_event("price.changed")
    assert (event.actor, event.object_id) == (admin, str(price.pk))
    assert (event.before, event.after) == ({"output_per_million": "4.400000"}, {"output_per_million": "4.80"})
    assert_from_the_request(event, response)


def test_a_price_deleted_in_the_admin_is_audited(admin_client, admin):
    price = Price.objects.create(
        model_name="gpt-9", model_version="2026-01-01", sku="GlobalStandard", valid_from=date(2026, 12, 1)
    )

    response = admin_client.post(reverse("admin:provisioning_price_delete", args=[price.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Price.objects.filter(model_name="gpt-9").exists()
    event = only_event("price.deleted")
    assert (event.actor, event.object_id) == (admin, str(price.pk))
    assert event.before["model_name"] == "gpt-9"
    assert_from_the_request(event, response)


def test_a_catalog_sync_asked_for_in_the_admin_says_what_changed(admin_client, admin, emulator, marketing):
    zone = LandingZone.objects.create(
        name="Marketing zone",
        slug="marketing-zone",
        owner_department=marketing,
        subscription_id=SUBSCRIPTION,
        resource_group="rg-marketing-ai",
        allowed_regions=["swedencentral"],
    )

    response = admin_client.post(
        reverse("admin:provisioning_landingzone_changelist"),
        {"action": "sync_from_azure", "_selected_action": [zone.pk]},
    )

    assert response.status_code == 302
    event = only_event("catalog.synced")
    assert (event.actor, event.object_type, event.object_id) == (
        admin,
        "provisioning.landingzone",
        str(zone.pk),
    )
    assert event.department == marketing
    assert "gpt-4o-mini 2024-07-18 (GlobalStandard)" in event.after["offers_added"]["swedencentral"]
    assert (event.after["offers_removed"], event.after["regions_failed"]) == ({}, [])
    assert_from_the_request(event, response)


def test_an_approval_policy_change_is_audited(admin_client, admin):
    policy = ApprovalPolicy.current()
    url = reverse("admin:approvals_approvalpolicy_change", args=[policy.pk])

    response = admin_client.post(url, {**admin_form(admin_client, url), "finance_cost_threshold": "750"})

    assert response.status_code == 302
    event = only_event("policy.changed")
    assert (event.actor, event.object_type) == (admin, "approvals.approvalpolicy")
    assert event.after["finance_cost_threshold"] != event.before["finance_cost_threshold"]
    assert_from_the_request(event, response)
