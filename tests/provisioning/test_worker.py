"""A real Celery worker process runs provisioning; killed with SIGKILL in the middle of a run,
the run completes after a restart, without duplicates."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kombu.pools
import pytest
from django.conf import settings
from django.db import connection

from portal.celery import app as celery_app
from provisioning import services
from provisioning.azure import cognitive_services_client
from provisioning.models import LandingZone, ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department

PROJECT = Path(__file__).resolve().parent.parent.parent


def database_url() -> str:
    """The test database, as a URL a worker process can open."""
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database["USER"] or "postgres"
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """A broker of this test's own: a Redis database when CI provides Redis, else a folder."""
    environment = {}
    if os.environ.get("REDIS_URL"):
        url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/9"
        import redis

        redis.Redis.from_url(url).flushdb()
    else:
        url = "filesystem://"
        environment["CELERY_BROKER_DIR"] = str(tmp_path / "broker")
        (tmp_path / "broker").mkdir()
        folders = {
            "data_folder_in": str(tmp_path / "broker"),
            "data_folder_out": str(tmp_path / "broker"),
            "control_folder": str(tmp_path / "broker" / "control"),
            "store_processed": False,
        }
        monkeypatch.setitem(celery_app.conf, "broker_transport_options", folders)
    environment["CELERY_BROKER_URL"] = url
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setitem(celery_app.conf, "broker_url", url)
    reconnect()
    yield environment
    reconnect()


def reconnect() -> None:
    """Drop Celery's pooled broker connections so that the next send uses the current broker."""
    pool = getattr(celery_app, "_pool", None)
    if pool is not None:
        pool.force_close_all()
        setattr(celery_app, "_pool", None)  # noqa: B010  (a private attribute Celery recreates lazily)
    setattr(celery_app.amqp, "_producer_pool", None)  # noqa: B010
    # Kombu keeps its own registry of pools by broker URL: without a reset, the next send to a
    # broker used before would be handed the pool closed above.
    kombu.pools.reset()


class Worker:
    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = {**os.environ, **environment}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=PROJECT,
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def wait_for(condition, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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
