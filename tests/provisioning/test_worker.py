"""A real Celery worker process runs provisioning; killed with SIGKILL in the middle of a run,
the run completes after a restart, without duplicates, and without waiting minutes for it."""

import time

import pytest
from django.conf import settings

from provisioning import services
from provisioning.azure import cognitive_services_client
from provisioning.models import LandingZone, ModelDeployment, ProvisioningOperation
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department
from tests.workers import Beat, Worker, database_url, queued_messages, wait_for

Status = ProvisioningOperation.Status


def copy_assistant() -> ModelDeployment:
    zone = LandingZone.objects.create(
        name="Central",
        slug="central",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central",
        allowed_regions=["swedencentral"],
    )
    return ModelDeployment.objects.create(
        department=make_department(name="Marketing"),
        display_name="Copy",
        landing_zone=zone,
        region="swedencentral",
        name="copy",
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        capacity=10,
    )


def worker_environment(emulator, broker, *, poll_seconds: float) -> dict[str, str]:
    return {
        **broker,
        "DATABASE_URL": database_url(),
        "AZURE_MODE": "emulator",
        "AZURE_EMULATOR_URL": emulator.url,
        "PROVISIONING_POLL_SECONDS": str(poll_seconds),
    }


def assert_created_once(deployment: ModelDeployment) -> None:
    deployment.refresh_from_db()
    azure = cognitive_services_client(SUBSCRIPTION)
    assert [account.name for account in azure.accounts.list()] == [deployment.account.name]
    assert [item.name for item in azure.deployments.list("rg-central", deployment.account.name)] == ["copy"]
    steps = list(deployment.operations.values_list("step", flat=True))
    assert sorted(steps) == sorted(set(steps))  # one row per step: nothing was done twice


@pytest.mark.django_db(transaction=True)
def test_a_run_interrupted_by_a_killed_worker_completes_after_restart(emulator, broker, monkeypatch):
    monkeypatch.setattr(settings, "PROVISIONING_POLL_SECONDS", 0.2)
    deployment = copy_assistant()
    # The worker will hang inside the deployment PUT: that is where we pull the plug.
    emulator.inject(operation="deployments.put", kind="hang", count=1)
    worker = Worker(worker_environment(emulator, broker, poll_seconds=0.2))
    try:
        worker.start()
        services.deployment_request_provisioning(deployment=deployment)
        # The emulator uses up the one-off fault when the worker's PUT arrives: from then on the
        # worker waits inside that call, holding the run's claim (and no database transaction).
        wait_for(lambda: not emulator.faults(), seconds=60, what="the worker to reach the deployment PUT")
        assert ModelDeployment.objects.get(pk=deployment.pk).state == "provisioning"

        worker.kill()
        worker.start()
        # What beat's resume_stalled_runs_task does once the run has not moved for a while. The
        # killed worker's claim goes when PostgreSQL sees its connection close, which can take a
        # moment on a busy machine: until then the run counts as a step under way, not a stalled one.
        wait_for(
            lambda: services.deployments_resume_stalled(overdue_seconds=0) == [deployment.pk],
            seconds=20,
            what="the killed worker's run to be sent again",
        )

        wait_for(
            lambda: ModelDeployment.objects.get(pk=deployment.pk).state == "active",
            seconds=60,
            what="the run to complete",
        )
    finally:
        worker.stop()

    assert_created_once(deployment)


@pytest.mark.django_db(transaction=True)
def test_a_step_waiting_in_a_killed_workers_memory_is_taken_up_again_within_seconds(
    emulator, broker, tmp_path
):
    """The run's next look at Azure is a countdown task the worker holds in memory until it is
    due; the worker dies with it. Beat's check notices the overdue step and sends it again."""
    poll_seconds = 8.0
    # The account takes longer to create than one poll, so the run has to look again.
    emulator.configure(lro_delay_seconds=6)
    deployment = copy_assistant()
    environment = worker_environment(emulator, broker, poll_seconds=poll_seconds)
    worker, replacement = Worker(environment), Worker(environment)
    beat = Beat(environment, schedule=tmp_path / "beat-schedule")

    def ensure_account() -> ProvisioningOperation | None:
        return deployment.operations.filter(step="ensure_account").first()

    try:
        beat.start()
        worker.start()
        services.deployment_request_provisioning(deployment=deployment)
        wait_for(
            lambda: (operation := ensure_account()) is not None and operation.status == Status.WAITING,
            seconds=60,
            what="the account's creation to start",
        )
        waiting_since = time.monotonic()
        # The worker takes the next look's message out of the broker at once and keeps it until
        # it is due; give a filesystem broker's poll time to hand it over.
        time.sleep(2)
        assert queued_messages() == 0
        worker.kill()
        killed_at = time.monotonic()
        replacement.start()

        wait_for(
            lambda: ensure_account().status == Status.SUCCEEDED,
            seconds=60,
            what="the next look at the account after the worker died",
        )
        taken_up = time.monotonic()
        wait_for(
            lambda: deployment.operations.filter(step="ensure_deployment", status=Status.SUCCEEDED).exists(),
            seconds=60,
            what="the run to complete",
        )
    finally:
        replacement.stop()
        worker.stop()
        beat.stop()

    due = waiting_since + poll_seconds
    print(
        f"\nstep due {poll_seconds:g} s after it was scheduled; worker killed "
        f"{killed_at - waiting_since:.1f} s after; taken up again {taken_up - killed_at:.1f} s after "
        f"the kill, {taken_up - due:.1f} s after it was due"
    )
    assert ModelDeployment.objects.get(pk=deployment.pk).state == "active"
    assert_created_once(deployment)


@pytest.mark.django_db(transaction=True)
def test_a_run_that_gives_up_leaves_nothing_behind_in_azure(emulator, broker):
    deployment = copy_assistant()
    # Azure fails to create the deployment every time the run asks.
    emulator.inject(operation="deployments.put", kind="lro_failure", count=3)
    worker = Worker(worker_environment(emulator, broker, poll_seconds=0.2))
    try:
        worker.start()
        services.deployment_request_provisioning(deployment=deployment)
        wait_for(
            lambda: (
                (failed := ModelDeployment.objects.get(pk=deployment.pk)).state == "failed"
                and not failed.is_cleaning_up
            ),
            seconds=60,
            what="the run to fail and finish cleaning up",
        )
    finally:
        worker.stop()

    deployment.refresh_from_db()
    assert deployment.status_message.startswith("Azure failed to create the deployment copy 3 times.")
    azure = cognitive_services_client(SUBSCRIPTION)
    assert list(azure.accounts.list()) == []
    assert list(azure.deleted_accounts.list()) == []
    usage = {u.name.value: u.current_value for u in azure.usages.list("swedencentral")}
    assert usage["OpenAI.GlobalStandard.gpt-4o-mini"] == 0
