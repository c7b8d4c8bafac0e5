"""The demo seed (`seed_demo`, which `make run` calls): development only, safe to run again, and
it changes or deletes only what it made itself."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from chat.models import Conversation
from money.models import UsageRecord
from org.models import Department, Membership, User
from provisioning.models import ModelDeployment
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def development(settings, monkeypatch):
    """Development mode, frozen at one instant: the demo's usage runs up to "now", and a record
    timed between two runs a second apart would belong to the second only."""
    settings.DEBUG = True
    instant = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: instant)


def test_it_loads_the_demo_organisation_and_is_safe_to_run_again(development):
    call_command("seed_demo")
    usage = UsageRecord.objects.count()
    call_command("seed_demo")

    assert Department.objects.count() == 5
    # Seven sign-ins; the demo colleagues who appear in the cost figures cannot sign in.
    assert sum(user.has_usable_password() for user in User.objects.all()) == 7
    assert UsageRecord.objects.count() == usage > 0
    lena = User.objects.get(email="lena@example.com")
    assert lena.check_password("switchyard-demo")
    assert Membership.objects.get(user=lena).role == Membership.Role.LEAD
    assert User.objects.get(email="admin@example.com").is_platform_admin
    assert User.objects.get(email="fiona@example.com").is_finance_approver
    assert User.objects.get(email="sam@example.com").is_security_approver
    assert Department.objects.get(slug="marketing").monthly_budget == Decimal("5000.00")
    assert Department.objects.get(slug="finance").keeps_chat_history is False


def test_every_demo_user_gets_a_home_page(development):
    call_command("seed_demo")
    for email in ["admin", "fiona", "sam", "lena", "mark", "fred", "hana"]:
        client = Client()
        assert client.login(email=f"{email}@example.com", password="switchyard-demo")
        assert client.get("/").status_code == 200


def test_it_refuses_to_run_outside_development(settings):
    settings.DEBUG = False

    for command in ["seed_demo", "seed_demo_usage"]:
        with pytest.raises(CommandError, match="only in development"):
            call_command(command)

    assert not Department.objects.exists()
    assert not User.objects.exists()


def test_in_production_the_command_says_why_and_exits_non_zero():
    environment = {name: value for name, value in os.environ.items() if name not in {"DEBUG", "AZURE_MODE"}}
    environment.update(
        DEBUG="false",
        AZURE_MODE="azure",
        SECRET_KEY="a-production-secret-key-of-more-than-fifty-characters-0123456789",
        # Nothing may be written: a database the command could reach would be a real one.
        DATABASE_URL="sqlite:////nonexistent/switchyard.sqlite3",
    )

    finished = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode != 0
    assert "only in development (DEBUG=true)" in finished.stderr


def test_a_second_run_keeps_usage_it_did_not_make(development, client_for):
    call_command("seed_demo")
    demo_usage = UsageRecord.objects.count()
    mark = User.objects.get(email="mark@example.com")
    marketing = Department.objects.get(slug="marketing")
    kept = []
    for name in ["Company assistant", "Campaign writer"]:
        # Someone really chatted on the demo's deployments in between.
        deployment = ModelDeployment.objects.get(display_name=name)
        conversation = Conversation.objects.create(user=mark, deployment=deployment, department=marketing)
        kept.append(
            UsageRecord.objects.create(
                department=marketing,
                user=mark,
                deployment=deployment,
                conversation=conversation,
                input_tokens=1000,
                output_tokens=250,
                cost=Decimal("0.0021"),
                created_at=timezone.now(),
            )
        )

    call_command("seed_demo")

    assert UsageRecord.objects.filter(pk__in=[record.pk for record in kept]).count() == 2
    assert UsageRecord.objects.count() == demo_usage + 2


def test_it_leaves_an_account_it_did_not_make_alone(development):
    lena = make_user(email="lena@example.com", first_name="Lena")

    call_command("seed_demo")

    lena.refresh_from_db()
    assert lena.check_password(PASSWORD)
    assert not lena.check_password("switchyard-demo")
    assert lena.last_name == ""


def test_the_demo_departments_name_the_emulators_demo_groups(development):
    from provisioning.emulator import identity_registry as directory

    call_command("seed_demo")

    groups = {
        department.slug: (department.entra_member_group_id, department.entra_lead_group_id)
        for department in Department.objects.all()
    }
    assert groups == {
        "central-it": (directory.GROUP_CENTRAL_IT_MEMBERS, ""),
        "marketing": (directory.GROUP_MARKETING_MEMBERS, directory.GROUP_MARKETING_LEADS),
        "finance": (directory.GROUP_FINANCE_MEMBERS, ""),
        "hr": (directory.GROUP_HR_MEMBERS, ""),
        "sales": ("", ""),
    }
