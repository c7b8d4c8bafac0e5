"""The demo's API key: one Marketing key for the Company assistant that `make run` prints beside the
demo sign-ins (from a file under var/, since the database keeps only its hash), the same on every
run while it works, and a month of its calls in the cost figures."""

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from gateway.demo import DEMO_KEY_NAME, demo_api_key_read
from gateway.models import ApiKey
from gateway.secrets import key_hash
from money.models import MonthlyUsageRollup, UsageRecord
from money.periods import month_bounds
from org.models import User
from provisioning.models import ModelDeployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def development(settings, monkeypatch, tmp_path):
    settings.DEBUG = True
    settings.DEMO_API_KEY_FILE = tmp_path / "var" / "demo-api-key"
    instant = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: instant)
    return settings.DEMO_API_KEY_FILE


def test_the_demo_key_is_made_once_kept_in_a_file_and_the_same_on_every_run(development):
    call_command("seed_demo")
    raw = demo_api_key_read()
    assert development.read_text() == raw + "\n"
    assert development.stat().st_mode & 0o777 == 0o600
    key = ApiKey.objects.get(secret_hash=key_hash(raw))
    assert (key.department.slug, key.name, key.status()) == ("marketing", DEMO_KEY_NAME, "active")
    company_assistant = ModelDeployment.objects.get(display_name="Company assistant")
    assert company_assistant.gateway_name == "company-assistant"
    assert list(key.deployments.all()) == [company_assistant]

    calls = UsageRecord.objects.filter(api_key=key, source=UsageRecord.Source.API)
    count = calls.count()
    assert count > 300
    assert all(record.department.slug == "marketing" for record in calls[:20])
    assert key.last_used_at is not None  # "last used" on the page
    # The rollups the cost pages read include the key's calls.
    rolled = sum(
        r.requests
        for r in MonthlyUsageRollup.objects.filter(deployment=company_assistant, department=key.department)
    )
    assert rolled >= count

    # Lena's department page shows the key's calls this month, from the caller rollup.
    lena = Client()
    lena.force_login(User.objects.get(email="lena@example.com"))
    page = lena.get("/departments/marketing/").content.decode()
    this_month = calls.filter(created_at__gte=month_bounds(timezone.localdate())[0]).count()
    row = page[page.index(DEMO_KEY_NAME) : page.index("</tr>", page.index(DEMO_KEY_NAME))]
    assert f"{this_month:,} call" in row
    assert raw not in page

    call_command("seed_demo")
    assert demo_api_key_read() == raw
    assert ApiKey.objects.count() == 1
    assert UsageRecord.objects.filter(api_key=key).count() == count


def test_a_lost_key_file_gives_a_new_demo_key_and_revokes_the_old_one(development):
    call_command("seed_demo")
    first = ApiKey.objects.get()
    development.unlink()

    call_command("seed_demo")
    second = ApiKey.objects.exclude(pk=first.pk).get()
    assert second.secret_hash == key_hash(demo_api_key_read())
    first.refresh_from_db()
    assert first.status() == "revoked"
    assert second.status() == "active"
    assert UsageRecord.objects.filter(api_key=second).exists()
    assert not UsageRecord.objects.filter(api_key=first).exists()
