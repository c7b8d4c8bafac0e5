"""Benchmark: how fast real Celery workers bring many deployments to `active`, and, with
`--faults`, whether a run under Azure's faults and killed workers still ends cleanly.

50 deployments across 5 departments (two regions of one landing zone), the emulator's
long-running operations taking 3 s, 2 worker processes with Celery's default concurrency. The
target is every deployment active within 15 s of the request. Prints `wall: N s` and the median
and p95 time to active.

`--faults`: 30% of ARM calls fail with 500 or 429, a third of the account and deployment
creations fail in Azure, and a worker is killed (and started again, as Docker restarts it)
`--kills` times; Celery beat runs too. Prints how each request ended, how long the runs a killed
worker held stood still past their due step (the stall after a kill), and what is left in
Azure: no duplicate, and no leftover once the failed runs have cleaned up.

    .venv/bin/python -m benchmarks.provisioning [--deployments 50] [--lro-delay 3] [--workers 2]
    .venv/bin/python -m benchmarks.provisioning --faults [--kills 2]

The database is PostgreSQL when DATABASE_URL names one (a fresh database is created and dropped),
else a throw-away SQLite file; the broker is Redis when REDIS_URL is set (its database; only the
broker's keys are cleared), else a throw-away filesystem broker.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from benchmarks.emulator import PROJECT_DIR, free_port, percentile, start_emulator, stop_emulator

SUBSCRIPTION = "00000000-0000-0000-0000-0000000be0c4"
REGIONS = ["swedencentral", "eastus2"]
# What the overdue check logs when it sends the steps of runs again (provisioning.services).
RESENT = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:,]+): WARNING/.*Sent the overdue steps of deployments \[(?P<ids>[\d, ]+)\] again"
)
ARM_OPERATIONS = [
    "accounts.put",
    "accounts.get",
    "accounts.delete",
    "deployments.put",
    "deployments.get",
    "deployments.delete",
    "deletedAccounts.purge",
    "roleAssignments.put",
]


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
        url = os.environ["REDIS_URL"]
        import redis

        client = redis.Redis.from_url(url)
        # kombu's keys only: the database may hold someone's cache.
        keys = [*client.scan_iter("celery*"), *client.scan_iter("_kombu.*"), *client.scan_iter("unacked*")]
        if keys:
            client.delete(*keys)
        return {"CELERY_BROKER_URL": url}
    (workdir / "broker").mkdir()
    return {"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_DIR": str(workdir / "broker")}


def start_process(
    arguments: list[str], environment: dict[str, str], *, nice: int = 0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  (our own app, fixed arguments)
        [
            *(["nice", "-n", str(nice)] if nice else []),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            *arguments,
        ],
        cwd=PROJECT_DIR,
        env=environment,
        start_new_session=True,
    )


def start_worker(n: int, environment: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    log = f"--logfile={workdir / f'worker{n}.log'}"
    return start_process(["worker", "--loglevel=WARNING", f"--hostname=bench{n}@%h", log], environment)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    # SIGTERM to each main process only: a worker's warm shutdown hangs when its pool's
    # children get the signal too.
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def inject_faults(control: str) -> None:
    """30% of ARM calls fail (half 500, half 429); a third of creations fail in Azure."""
    faults = [
        *({"operation": operation, "kind": "500", "rate": 0.15} for operation in ARM_OPERATIONS),
        *(
            {"operation": operation, "kind": "429", "rate": 0.15, "retry_after_seconds": 1}
            for operation in ARM_OPERATIONS
        ),
        {"operation": "accounts.put", "kind": "lro_failure", "rate": 0.33},
        {"operation": "deployments.put", "kind": "lro_failure", "rate": 0.33},
    ]
    for fault in faults:
        requests.post(f"{control}/faults", json=fault, timeout=5).raise_for_status()


@dataclass
class Kill:
    """A worker killed while runs waited on it: when, and when each run under way moved again."""

    at: float
    due: dict[int, float]  # run -> when its next step was due (seconds since start), at the kill
    tokens: dict[int, str]
    moved: dict[int, float] = field(default_factory=dict)

    def follow(self, tokens: dict[int, str], now: float) -> None:
        for pk, token in self.tokens.items():
            # Each step a run takes hands the next one a new token; a run that ended has none.
            if pk not in self.moved and tokens.get(pk) != token:
                self.moved[pk] = now

    def stalls(self, lost: set[int]) -> list[float]:
        """How long each run whose step was lost with the worker stood still after the kill."""
        return [self.moved[pk] - self.at for pk in lost if pk in self.moved]

    def past_due(self, lost: set[int]) -> list[float]:
        return [self.moved[pk] - self.due[pk] for pk in lost if pk in self.moved]


def resent_steps(workdir: Path, started: float) -> list[tuple[float, int]]:
    """When the overdue check sent which run's step again (seconds since `started`), from the
    workers' logs: the runs whose message a killed worker took with it."""
    resent = []
    for log in workdir.glob("worker*.log"):
        for line in log.read_text().splitlines():
            if match := RESENT.match(line):
                # Celery writes its log in local time.
                logged = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").astimezone()
                at = logged.timestamp() - started
                resent += [(at, int(pk)) for pk in match["ids"].split(", ")]
    return resent


def runs_under_way(started: float) -> tuple[dict[int, str], dict[int, float]]:
    """The runs under way: the token of each, and when its next step is due (seconds since
    `started`, a wall-clock time, as the database keeps it)."""
    from provisioning.models import ModelDeployment

    tokens, due = {}, {}
    for pk, token, next_step_at in ModelDeployment.objects.runs_under_way().values_list(
        "pk", "run_token", "next_step_at"
    ):
        tokens[pk] = token
        due[pk] = next_step_at.timestamp() - started if next_step_at else 0.0
    return tokens, due


@dataclass
class Outcome:
    active_at: dict[int, float] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    wall: float = 0.0


def follow_runs(
    count: int,
    workers: list[subprocess.Popen[bytes]],
    environment: dict[str, str],
    arguments: argparse.Namespace,
    started: float,
) -> Outcome:
    """Watch every request end; kill a worker (and start it again) at the set times."""
    from provisioning.models import ModelDeployment

    outcome = Outcome()
    kill_times = [arguments.kill_every * (n + 1) for n in range(arguments.kills)]
    limit = 600.0 if arguments.faults else max(arguments.target_seconds * 4, 60)
    while time.time() - started < limit:
        now = time.time() - started
        for pk, state, message in ModelDeployment.objects.values_list("pk", "state", "status_message"):
            if state == "active":
                outcome.active_at.setdefault(pk, now)
            elif state == "failed":
                outcome.failed.setdefault(pk, message)
        tokens, due = runs_under_way(started)
        for kill in outcome.kills:
            kill.follow(tokens, now)
        settled = all(len(kill.moved) == len(kill.tokens) for kill in outcome.kills)
        if len(outcome.active_at) + len(outcome.failed) >= count and not tokens and settled:
            break
        if kill_times and now >= kill_times[0]:
            kill_times.pop(0)
            victim = len(outcome.kills) % len(workers)
            os.killpg(workers[victim].pid, signal.SIGKILL)
            workers[victim].wait(timeout=30)
            outcome.kills.append(Kill(now, due, tokens))
            workers[victim] = start_worker(victim, environment, arguments.workdir)
        time.sleep(0.1)
    outcome.wall = time.time() - started
    return outcome


def estate_report(zone: Any) -> list[str]:
    """What Azure holds once every run ended, after a drift check."""
    from provisioning import drift
    from provisioning.azure import cognitive_services_client
    from provisioning.models import LeftoverResource, ModelDeployment

    drift.deployments_check_drift()
    client = cognitive_services_client(SUBSCRIPTION)
    accounts = list(client.accounts.list_by_resource_group(zone.resource_group))
    names = Counter(
        item.name
        for account in accounts
        for item in client.deployments.list(zone.resource_group, account.name)
    )
    lines = [
        f"in Azure: {len(accounts)} accounts across {len({a.location for a in accounts})} regions, "
        f"{sum(names.values())} deployments, {sum(n - 1 for n in names.values())} duplicates",
    ]
    for region in REGIONS:
        usage = {u.name.value: u.current_value for u in client.usages.list(region)}
        held = usage.get("OpenAI.GlobalStandard.gpt-4o-mini", 0)
        active = sum(d.capacity for d in ModelDeployment.objects.filter(state="active", region=region))
        lines.append(f"quota in {region}: {held:g}K TPM held, {active}K TPM by active deployments")
    leftovers = [f"{leftover} ({leftover.holds})" for leftover in LeftoverResource.objects.all()]
    lines.append(f"left over: {len(leftovers)}" + "".join(f"\n  {leftover}" for leftover in leftovers))
    return lines


def kill_report(kills: list[Kill], resent: list[tuple[float, int]]) -> list[str]:
    lines = []
    counted: set[tuple[int, str]] = set()
    for n, kill in enumerate(kills, 1):
        # Lost with this worker: a run waiting at the kill whose step the overdue check sent
        # again before the run next moved (and not already lost at an earlier kill).
        lost = {
            pk
            for at, pk in resent
            if pk in kill.tokens
            and kill.at <= at <= kill.moved.get(pk, float("inf"))
            and (pk, kill.tokens[pk]) not in counted
        }
        counted |= {(pk, kill.tokens[pk]) for pk in lost}
        line = f"kill {n} at {kill.at:.1f} s: {len(kill.tokens)} runs under way; "
        if stalls := sorted(kill.stalls(lost)):
            line += (
                f"{len(stalls)} lost their next step with the worker and were sent again by the overdue "
                f"check: stall after the kill max {stalls[-1]:.1f} s, "
                f"median {statistics.median(stalls):.1f} s (past their due step: max "
                f"{max(kill.past_due(lost)):.1f} s)"
            )
        else:
            line += "none lost its next step with the worker"
        lines.append(line)
    return lines


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--departments", type=int, default=5)
    parser.add_argument("--lro-delay", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    parser.add_argument("--target-seconds", type=float, default=15.0)
    parser.add_argument("--faults", action="store_true", help="ARM faults, failed creations, killed workers")
    parser.add_argument("--kills", type=int, default=None, help="workers killed (default: 2 with --faults)")
    parser.add_argument("--kill-every", type=float, default=6.0, help="seconds between kills")
    arguments = parser.parse_args()
    if arguments.kills is None:
        arguments.kills = 2 if arguments.faults else 0
    return arguments


def create_deployments(arguments: argparse.Namespace) -> tuple[Any, list[Any]]:
    from org.models import Department
    from provisioning.models import LandingZone, ModelDeployment

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
    return zone, deployments


def main() -> int:
    arguments = parse_arguments()
    workdir = arguments.workdir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    port = free_port()
    control = f"http://127.0.0.1:{port}/_emulator"
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
    processes: list[subprocess.Popen[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    estate: list[str] = []
    try:
        requests.patch(f"{control}/settings", json={"lro_delay_seconds": arguments.lro_delay}, timeout=5)
        import django

        django.setup()
        from django.core.management import call_command

        from provisioning.services import deployment_request_provisioning

        call_command("migrate", verbosity=0)
        zone, deployments = create_deployments(arguments)
        workers = [start_worker(n, environment, workdir) for n in range(arguments.workers)]
        if arguments.faults:
            schedule = str(workdir / "beat-schedule")
            processes.append(
                start_process(["beat", "--loglevel=WARNING", "--schedule", schedule], environment)
            )
            inject_faults(control)
        time.sleep(3)  # let the workers connect before the clock starts

        started = time.time()
        for deployment in deployments:
            deployment_request_provisioning(deployment=deployment)
        outcome = follow_runs(len(deployments), workers, environment, arguments, started)
        if arguments.faults:
            requests.delete(f"{control}/faults", timeout=5)
            estate = [*kill_report(outcome.kills, resent_steps(workdir, started)), *estate_report(zone)]
    finally:
        stop_processes([*processes, *workers])
        stop_emulator(emulator)
        if postgres_name:
            from django.db import connections

            connections.close_all()
            drop_database(postgres_name)
    return report(arguments, environment, postgres_name, len(deployments), outcome, estate)


def report(
    arguments: argparse.Namespace,
    environment: dict[str, str],
    postgres_name: str | None,
    count: int,
    outcome: Outcome,
    estate: list[str],
) -> int:
    times = sorted(outcome.active_at.values())
    unfinished = count - len(outcome.active_at) - len(outcome.failed)
    database = "PostgreSQL" if postgres_name else "SQLite"
    print(f"database: {database}; broker: {environment['CELERY_BROKER_URL'].split(':')[0]}")
    print(
        f"deployments: {count} across {arguments.departments} departments; "
        f"LRO delay {arguments.lro_delay:g} s; {arguments.workers} worker processes"
    )
    if arguments.faults:
        print("faults: 30% of ARM calls fail (500/429); a third of creations fail in Azure")
    print(f"active: {len(outcome.active_at)}, failed: {len(outcome.failed)}, unfinished: {unfinished}")
    if times:
        finished = times[-1] if len(times) == count else outcome.wall
        print(f"wall: {finished:.1f} s (target {arguments.target_seconds:g} s)")
        median, p95 = statistics.median(times), percentile(times, 0.95)
        print(f"time to active: median {median:.1f} s, p95 {p95:.1f} s, first {times[0]:.1f} s")
    reasons = Counter(message.split(":")[0][:90] for message in outcome.failed.values())
    for message, number in reasons.most_common(5):
        print(f"failed ({number}): {message or 'NO REASON GIVEN'}")
    for line in estate:
        print(line)
    if arguments.faults:
        clean = not unfinished and all(outcome.failed.values()) and "left over: 0" in estate[-1]
        return 0 if clean and any(" 0 duplicates" in line for line in estate) else 1
    return 0 if len(outcome.active_at) == count and times[-1] <= arguments.target_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
