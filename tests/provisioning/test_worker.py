"""A real Celery worker process runs provisioning; killed with SIGKILL in the middle of a run,
the run completes after a restart, without duplicates."""

import pytest
from django.conf import settings

from provisioning import services
from provisioning.azure import cognitive_services_client
from provisioning.models import LandingZone, ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department
from tests.workers import Worker, database_url, wait_for


@pytest.mark.django_db(transaction=True)
def test_a_run_interrupted_by_a_killed_worker_completes_after_restart(emulator, broker, monkeypatch):
    monkeypatch.setattr(settings, "PROVISIONING_POLL_SECONDS", 0.2)
    zone = LandingZone.objects.create(
        name="Central",
        slug="central",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central",
        allowed_regions=["swedencentral"],
    )
    deployment = ModelDeployment.objects.create(
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
    # The worker will hang inside the deployment PUT: that is where we pull the plug.
    emulator.inject(operation="deployments.put", kind="hang", count=1)
    worker = Worker(
        {
            **broker,
            "DATABASE_URL": database_url(),
            "AZURE_MODE": "emulator",
            "AZURE_EMULATOR_URL": emulator.url,
            "PROVISIONING_POLL_SECONDS": "0.2",
        }
    )
    try:
        worker.start()
        services.deployment_request_provisioning(deployment=deployment)
        # The emulator uses up the one-off fault when the worker's PUT arrives: from then on the
        # worker waits inside that call (and inside its database transaction).
        wait_for(lambda: not emulator.faults(), seconds=60, what="the worker to reach the deployment PUT")
        assert ModelDeployment.objects.get(pk=deployment.pk).state == "provisioning"

        worker.kill()
        worker.start()
        # What beat's resume_stalled_runs_task does once the run has not moved for a while.
        assert services.deployments_resume_stalled(older_than_seconds=0) == [deployment.pk]

        wait_for(
            lambda: ModelDeployment.objects.get(pk=deployment.pk).state == "active",
            seconds=60,
            what="the run to complete",
        )
    finally:
        worker.stop()

    deployment.refresh_from_db()
    azure = cognitive_services_client(SUBSCRIPTION)
    assert [account.name for account in azure.accounts.list()] == [deployment.account.name]
    assert [item.name for item in azure.deployments.list("rg-central", deployment.account.name)] == ["copy"]
    steps = list(deployment.operations.values_list("step", flat=True))
    assert sorted(steps) == sorted(set(steps))  # one row per step: nothing was done twice
