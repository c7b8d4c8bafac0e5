"""Benchmark: how fast real Celery workers bring many deployments to `active`.

50 deployments across 5 departments (two regions of one landing zone), the emulator's
long-running operations taking 3 s, 2 worker processes with Celery's default concurrency. The
target is every deployment active within 15 s of the request. Prints `wall: N s` and the median
and p95 time to active.

    .venv/bin/python -m benchmarks.provisioning [--deployments 50] [--lro-delay 3] [--workers 2]

The database is PostgreSQL when DATABASE_URL names one (a fresh database is created and dropped),
else a throw-away SQLite file; the broker is Redis when REDIS_URL is set (a scratch database,
flushed), else a throw-away filesystem broker.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from benchmarks.emulator import PROJECT_DIR, free_port, percentile, start_emulator, stop_emulator

SUBSCRIPTION = "00000000-0000-0000-0000-0000000be0c4"
REGIONS = ["swedencentral", "eastus2"]


def scratch_database(workdir: Path) -> tuple[str, str | None]:
    """A database URL for this run, and the PostgreSQL database to drop afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{workdir / 'bench.sqlite3'}", None
    import psycopg

    name = f"switchyard_bench_{uuid.uuid4().hex[:8]}"
    server = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}", name


def drop_database(name: str) -> None:
    import psycopg

    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_broker(workdir: Path) -> dict[str, str]:
    if os.environ.get("REDIS_URL"):
        url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/10"
        import redis

        redis.Redis.from_url(url).flushdb()
        return {"CELERY_BROKER_URL": url}
    (workdir / "broker").mkdir()
    return {"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_DIR": str(workdir / "broker")}


def start_workers(count: int, environment: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(  # noqa: S603  (our own app, fixed arguments)
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--loglevel=WARNING",
                f"--hostname=bench{n}@%h",
            ],
            cwd=PROJECT_DIR,
            env=environment,
            start_new_session=True,
        )
        for n in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--departments", type=int, default=5)
    parser.add_argument("--lro-delay", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    parser.add_argument("--target-seconds", type=float, default=15.0)
    arguments = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    port = free_port()
    emulator = start_emulator(port, workdir / "emulator.json")
    database_url, postgres_name = scratch_database(workdir)
    environment = {
        **os.environ,
        **scratch_broker(workdir),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "true",
        "DATABASE_URL": database_url,
        "AZURE_MODE": "emulator",
        "AZURE_EMULATOR_URL": f"http://127.0.0.1:{port}",
        "PROVISIONING_POLL_SECONDS": str(arguments.poll_seconds),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(environment)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        requests.patch(
            f"http://127.0.0.1:{port}/_emulator/settings",
            json={"lro_delay_seconds": arguments.lro_delay},
            timeout=5,
        ).raise_for_status()
        import django

        django.setup()
        from django.core.management import call_command

        from portal.org.models import Department
        from provisioning.models import LandingZone, ModelDeployment
        from provisioning.services import deployment_request_provisioning

        call_command("migrate", verbosity=0)
        zone = LandingZone.objects.create(
            name="Bench",
            slug="bench",
            subscription_id=SUBSCRIPTION,
            resource_group="rg-bench",
            allowed_regions=REGIONS,
        )
        departments = [
            Department.objects.create(name=f"Department {n}", slug=f"department-{n}", cost_center=f"CC-{n}")
            for n in range(arguments.departments)
        ]
        deployments = [
            ModelDeployment.objects.create(
                department=departments[n % len(departments)],
                display_name=f"Assistant {n}",
                landing_zone=zone,
                region=REGIONS[n % len(REGIONS)],
                name=f"assistant-{n}",
                model_name="gpt-4o-mini",
                model_version="2024-07-18",
                sku="GlobalStandard",
                capacity=1,
            )
            for n in range(arguments.deployments)
        ]
        workers = start_workers(arguments.workers, environment)
        time.sleep(3)  # let the workers connect before the clock starts

        started = time.monotonic()
        for deployment in deployments:
            deployment_request_provisioning(deployment=deployment)
        active_at: dict[int, float] = {}
        failed: dict[int, str] = {}
        deadline = started + max(arguments.target_seconds * 4, 60)
        while len(active_at) + len(failed) < len(deployments) and time.monotonic() < deadline:
            now = time.monotonic() - started
            for pk, state, message in ModelDeployment.objects.values_list("pk", "state", "status_message"):
                if state == "active":
                    active_at.setdefault(pk, now)
                elif state == "failed":
                    failed.setdefault(pk, message)
            time.sleep(0.1)
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        stop_emulator(emulator)
        if postgres_name:
            from django.db import connections

            connections.close_all()
            drop_database(postgres_name)

    times = sorted(active_at.values())
    unfinished = len(deployments) - len(active_at) - len(failed)
    database = "PostgreSQL" if postgres_name else "SQLite"
    print(f"database: {database}; broker: {environment['CELERY_BROKER_URL'].split(':')[0]}")
    print(
        f"deployments: {len(deployments)} across {arguments.departments} departments; "
        f"LRO delay {arguments.lro_delay:g} s; {arguments.workers} worker processes"
    )
    print(f"active: {len(active_at)}, failed: {len(failed)}, unfinished: {unfinished}")
    if times:
        finished = times[-1] if len(times) == len(deployments) else wall
        print(f"wall: {finished:.1f} s (target {arguments.target_seconds:g} s)")
        median, p95 = statistics.median(times), percentile(times, 0.95)
        print(f"time to active: median {median:.1f} s, p95 {p95:.1f} s, first {times[0]:.1f} s")
    for message in list(failed.values())[:3]:
        print(f"failed: {message}")
    return 0 if len(active_at) == len(deployments) and times[-1] <= arguments.target_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
