"""The README's scripted example, run as a newcomer runs it: `scripts/api_example.py` as its own
process against a live Switchyard (uvicorn on the test database, the demo data), a real Celery
worker provisioning on the emulator, and personal access tokens made by `create_access_token`.
The README shows the script as it is in the repository."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from approvals.models import DeploymentRequest
from audit.models import AuditEvent
from gateway.models import ApiKey
from money.models import UsageRecord
from portal.asgi import application
from provisioning.catalog import catalog_sync_all
from provisioning.models import ModelDeployment
from tests.provisioning.test_worker import worker_environment
from tests.servers import ThreadedServer
from tests.workers import Worker

PROJECT = Path(__file__).resolve().parent.parent.parent
SCRIPT = PROJECT / "scripts" / "api_example.py"


def token_for(email: str) -> str:
    out = StringIO()
    call_command("create_access_token", user=email, name="README example", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_the_readme_shows_the_script_as_it_is():
    readme = (PROJECT / "README.md").read_text()
    assert f"```python\n{SCRIPT.read_text()}```" in readme


@pytest.mark.django_db(transaction=True)
def test_the_scripted_example_requests_provisions_and_calls_a_deployment(emulator, broker, settings):
    settings.PROVISIONING_POLL_SECONDS = 0.2
    with override_settings(DEBUG=True):
        call_command("seed_demo")
    # What the worker does a few seconds after `make run` loads the demo (a countdown task).
    assert not catalog_sync_all().failures
    environment = {
        **worker_environment(emulator, broker, poll_seconds=0.2),
        "LEAD_TOKEN": token_for("lena@example.com"),
        "ADMIN_TOKEN": token_for("admin@example.com"),
    }
    worker = Worker(environment)
    worker.start()
    try:
        with ThreadedServer(application) as server:
            run = subprocess.run(
                [sys.executable, str(SCRIPT), server.url],
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        worker.stop()

    assert run.returncode == 0, run.stdout + run.stderr
    request = DeploymentRequest.objects.get(display_name="Newsletter writer")
    deployment = request.deployment
    assert deployment is not None
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"Request {request.pk}: Waiting for approval, about ")
    assert f"Newsletter writer is active: its gateway name is {deployment.gateway_name}" in lines
    assert f"\n{deployment.gateway_name} says: " in run.stdout
    # Through the same services as the pages: approved by the admin, provisioned, audited, metered.
    assert request.state == DeploymentRequest.State.COMPLETED
    assert deployment.state == ModelDeployment.State.ACTIVE
    assert request.steps.filter(decided_by__email="admin@example.com", state="approved").exists()
    key = ApiKey.objects.get(department__slug="marketing", name=f"Newsletter tool {request.pk}")
    assert AuditEvent.objects.filter(verb="api_key.created", object_id=str(key.pk)).exists()
    usage = UsageRecord.objects.get(api_key=key)
    assert (usage.deployment, usage.source) == (deployment, UsageRecord.Source.API)
