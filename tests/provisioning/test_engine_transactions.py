"""The engine holds no database transaction while Azure answers (on SQLite an open write
transaction holds the whole database): a step's outcome is recorded in a short transaction
afterwards, and only if the run is still the same run. A claim, not a row lock, keeps two
workers off the same run."""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from provisioning import services
from provisioning.azure_errors import TransientAzureError
from provisioning.models import ModelDeployment, ProvisioningOperation
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department, make_deployment, make_landing_zone

State = ModelDeployment.State
Status = ProvisioningOperation.Status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deployment(emulator, settings) -> ModelDeployment:
    settings.PROVISIONING_POLL_SECONDS = 0.1
    zone = make_landing_zone(slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-central")
    return make_deployment(
        department=make_department(name="Marketing"), landing_zone=zone, name="copy", state=State.REQUESTED
    )


def while_azure_answers(monkeypatch, look: Callable[[Any], None]) -> None:
    """Call `look(request)` inside every SDK call this thread makes, at the edge: the transport
    that sends the HTTP request and waits for Azure's answer."""
    send = RequestsTransport.send
    engine_thread = threading.current_thread()

    def send_and_look(transport: RequestsTransport, request: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is engine_thread:
            look(request)
        return send(transport, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", send_and_look)


def in_another_connection(work: Callable[[], Any]) -> Any:
    """Run `work` on a database connection of its own (another thread), as another process
    would; an error it raises is returned."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as error:  # handed back to the test to assert on
            result.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


def write_without_waiting(deployment_id: int) -> bool:
    """Whether a write to the deployment's row goes through at once."""
    with connection.cursor() as cursor:
        # Give up at once rather than queue behind a transaction the engine might hold open.
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA busy_timeout = 200")
        else:
            cursor.execute("SET lock_timeout = '200ms'")
    try:
        with transaction.atomic():
            ModelDeployment.objects.filter(pk=deployment_id).update(drift_checked_at=timezone.now())
    except OperationalError:
        return False
    return True


def drive(service: Callable[..., float | None], deployment: ModelDeployment) -> ModelDeployment:
    """Drive the run as its Celery task would, to its end."""
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            wait = service(deployment_id=deployment.pk, token=token)
        except TransientAzureError:
            wait = 0.05
        if wait is None:
            return ModelDeployment.objects.get(pk=deployment.pk)
        time.sleep(min(wait, 0.1))
    raise AssertionError("the run did not finish")


def test_no_transaction_is_open_while_azure_answers_and_others_can_write(deployment, monkeypatch):
    calls: list[tuple[str, bool, bool]] = []

    def look(request: Any) -> None:
        can_write = in_another_connection(lambda: write_without_waiting(deployment.pk))
        calls.append((f"{request.method} {request.url}", connection.in_atomic_block, can_write))

    while_azure_answers(monkeypatch, look)
    services.deployment_request_provisioning(deployment=deployment)
    assert drive(services.deployment_provision, deployment).state == State.ACTIVE
    services.deployment_request_decommission(deployment=deployment)
    assert drive(services.deployment_decommission, deployment).state == State.DECOMMISSIONED

    methods = {call.split()[0] for call, _, _ in calls}
    assert methods == {"GET", "PUT", "DELETE"}  # reads, creations, deletions and the purge
    assert [call for call, in_transaction, _ in calls if in_transaction] == []
    assert [call for call, _, can_write in calls if can_write is not True] == []


def test_a_run_replaced_while_azure_answers_records_nothing_more(deployment, monkeypatch):
    replaced: list[bool] = []

    def decommission_meanwhile(request: Any) -> None:
        # An admin decommissions the deployment while the provisioning run waits on the PUT
        # that creates it in Azure.
        if request.method == "PUT" and "/deployments/" in request.url and not replaced:
            decommissioning = in_another_connection(
                lambda: services.deployment_request_decommission(deployment=deployment)
            )
            assert decommissioning.state == State.DECOMMISSIONING
            replaced.append(True)

    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    provisioning_run = ModelDeployment.objects.get(pk=deployment.pk).run
    while_azure_answers(monkeypatch, decommission_meanwhile)
    for _ in range(100):
        wait = services.deployment_provision(deployment_id=deployment.pk, token=token)
        if replaced:
            break
        assert wait is not None
        time.sleep(min(wait, 0.1))

    assert replaced
    assert wait is None  # the call whose run was replaced says there is nothing more to do
    step = ProvisioningOperation.objects.get(
        deployment=deployment, run=provisioning_run, step="ensure_deployment"
    )
    assert step.status == Status.RUNNING  # Azure's answer to the replaced run was not recorded
    assert ModelDeployment.objects.get(pk=deployment.pk).state == State.DECOMMISSIONING
    assert drive(services.deployment_decommission, deployment).state == State.DECOMMISSIONED


def test_a_step_waiting_on_azure_is_not_sent_again_but_one_nobody_holds_is(deployment, monkeypatch):
    resumed_meanwhile: list[list[int]] = []

    def check_for_stalls(request: Any) -> None:
        # The step is long overdue by the clock, yet a worker is on it: the overdue check
        # (another process) leaves it alone.
        ModelDeployment.objects.filter(pk=deployment.pk).update(next_step_at="2020-01-01T00:00:00Z")
        resumed_meanwhile.append(
            in_another_connection(lambda: services.deployments_resume_stalled(overdue_seconds=10))
        )

    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    while_azure_answers(monkeypatch, check_for_stalls)
    services.deployment_provision(deployment_id=deployment.pk, token=token)

    assert resumed_meanwhile
    assert all(resumed == [] for resumed in resumed_meanwhile)
    ModelDeployment.objects.filter(pk=deployment.pk).update(next_step_at="2020-01-01T00:00:00Z")
    assert services.deployments_resume_stalled(overdue_seconds=10) == [deployment.pk]
