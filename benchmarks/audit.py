"""Benchmark: the audit trail at a million events on PostgreSQL.

1,000,000 chained events (12 months, 200 departments, 5,000 people), hashed in Python with the
trail's own `hash_of_values` and loaded with COPY. Prints what writing one event with
`audit_record` adds to a change (median, p95, CPU per call, against the same change without it),
how long `audit_verify`'s walk takes over all events, and the median and p95 render time of the
audit page's first page and of one department's month.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/switchyard_auditbench \\
        .venv/bin/python -m benchmarks.audit [--events 1000000] [--writes 2000] [--runs 15]

The database named in DATABASE_URL is created for the run and dropped afterwards. Exits 1 when a
figure misses its target: a page over 200 ms at the median, the walk over 60 s, a write adding
more than 1 ms at the median.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from benchmarks.admission import machine_speed
from benchmarks.cost_report import (
    DEPARTMENTS,
    DEPLOYMENTS_PER_DEPARTMENT,
    ESTATE_SQL,
    PEOPLE_PER_DEPARTMENT,
    SHARED,
    create_database,
    drop_database,
    percentile,
)

MONTHS = 12
TARGET_PAGE_MS, TARGET_VERIFY_SECONDS, TARGET_WRITE_ADDED_MS = 200.0, 60.0, 1.0

# What the generated events say: verb, object type, before, after (a tenth by Switchyard itself).
KINDS = [
    ("auth.signed_in", "org.user", None, None),
    ("request.submitted", "approvals.deploymentrequest", {"state": "draft"}, {"state": "submitted"}),
    ("request.approved", "approvals.deploymentrequest", {"state": "submitted"}, {"state": "approved"}),
    ("membership.added", "org.membership", None, {"role": "member"}),
    (
        "department.budget_changed",
        "org.department",
        {"monthly_budget": "2000.00"},
        {"monthly_budget": "2500.00"},
    ),
    ("key.created", "gateway.apikey", None, {"name": "reporting", "deployments": ["assistant-1-1"]}),
    ("deployment.capacity_changed", "provisioning.modeldeployment", {"capacity": 50}, {"capacity": 100}),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=2000, help="Changes timed with and without an event.")
    parser.add_argument("--runs", type=int, default=15, help="Renders of each page.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database, e.g. .../switchyard_auditbench")
    print(f"machine: a 10-million-step Python loop takes {machine_speed():.2f} s; {os.cpu_count()} CPUs")
    create_database(url)
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # Development settings (the emulator, static files without a manifest), as `make run` has
    # them; the measurements themselves run with DEBUG off (no query log).
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    call_command("migrate", verbosity=0)
    params = {
        "departments": DEPARTMENTS,
        "people": DEPARTMENTS * PEOPLE_PER_DEPARTMENT,
        "per_department": PEOPLE_PER_DEPARTMENT,
        "per_department_deployments": DEPLOYMENTS_PER_DEPARTMENT,
        "shared": SHARED,
    }
    # The organisation of the cost benchmark's estate: departments, people, memberships.
    with connection.cursor() as cursor:
        for statement in ESTATE_SQL.split(";"):
            if "INSERT INTO org_" in statement:
                cursor.execute(statement, params)
    started = time.monotonic()
    first_day = generate_events(args.events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"events: {args.events:,} chained events over {MONTHS} months, {DEPARTMENTS} departments, "
        f"{DEPARTMENTS * PEOPLE_PER_DEPARTMENT:,} people, generated and loaded in "
        f"{time.monotonic() - started:.0f} s"
    )
    missed = []
    with override_settings(DEBUG=False):
        missed += measure_writes(args.writes)
        missed += measure_verify()
        missed += measure_pages(args.runs, first_day)
    if missed:
        print("missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


def generate_events(count: int) -> date:
    """Chain `count` events, oldest first, evenly over the last 12 months, and load them with COPY;
    the chain's head ends on the last. Returns the first event's day."""
    from django.db import connection
    from django.utils import timezone

    from audit.chain import HASHED_FIELDS, hash_of_values
    from audit.models import AuditChainHead, AuditEvent

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.user_id, m.department_id, u.email "
            "FROM org_membership m JOIN org_user u ON u.id = m.user_id"
        )
        members = cursor.fetchall()
    pick = random.Random(22)  # noqa: S311  (made-up data, the same every run)
    end = timezone.now().astimezone(UTC)
    start = end - timedelta(days=365)
    step = (end - start) / count
    previous = ""
    columns = ", ".join([*HASHED_FIELDS, "hash"])
    connection.ensure_connection()
    raw = connection.connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {AuditEvent._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for sequence in range(1, count + 1):
            values = event_values(sequence, start + step * (sequence - 1), members, pick, previous)
            previous = hash_of_values(values)
            copy.write_row([*dump_json(values), previous])
    AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": count, "hash": previous})
    return start.date()


def event_values(
    sequence: int,
    created_at: datetime,
    members: list[tuple[int, int, str]],
    pick: random.Random,
    previous: str,
) -> tuple[Any, ...]:
    """One event's `HASHED_FIELDS` values, as the trail hashes them."""
    verb, object_type, before, after = KINDS[sequence % len(KINDS)]
    user_id, department_id, email = members[pick.randrange(len(members))]
    by_switchyard = sequence % 10 == 0
    return (
        sequence,
        None if by_switchyard else user_id,
        "system" if by_switchyard else "person",
        "" if by_switchyard else email,
        verb,
        object_type,
        str(sequence % 5000 + 1),
        f"{object_type.rsplit('.', 1)[1].title()} {sequence % 5000 + 1}",
        department_id,
        before,
        after,
        "",
        f"{sequence:032x}",
        None if by_switchyard else f"10.{sequence % 200}.{sequence % 250}.{sequence % 7 + 1}",
        created_at,
        previous,
    )


def dump_json(values: tuple[Any, ...]) -> list[Any]:
    """The values as COPY takes them: before and after as JSON text."""
    row = list(values)
    for position in (9, 10):
        row[position] = None if row[position] is None else json.dumps(row[position])
    return row


def measure_writes(writes: int) -> list[str]:
    """A department's budget changed in a transaction, with and without its audit event, by
    turns."""
    from django.db import transaction
    from django.db.models import F

    from audit.services import audit_record
    from org.models import Department

    department = Department.objects.get(slug="department-8")
    admin = bench_admin()
    timings: dict[str, list[float]] = {"without the event": [], "with audit_record": []}
    cpu = dict.fromkeys(timings, 0.0)

    def change(audited: bool) -> None:
        with transaction.atomic():
            Department.objects.filter(pk=department.pk).update(monthly_budget=F("monthly_budget") + 1)
            if audited:
                audit_record(
                    actor=admin,
                    verb="department.budget_changed",
                    target=department,
                    department=department,
                    before={"monthly_budget": "2000.00"},
                    after={"monthly_budget": "2001.00"},
                )

    for _ in range(50):  # warm up
        change(False)
        change(True)
    for _ in range(writes):
        for name, audited in (("without the event", False), ("with audit_record", True)):
            cpu_started, started = time.process_time(), time.perf_counter()
            change(audited)
            timings[name].append((time.perf_counter() - started) * 1000)
            cpu[name] += time.process_time() - cpu_started
    for name, values in timings.items():
        print(
            f"write, {name}: median {statistics.median(values):.3f} ms, "
            f"p95 {percentile(values, 0.95):.3f} ms, CPU {cpu[name] / writes * 1000:.3f} ms per call"
        )
    # Each change with its event is timed right after the same change without: the median of
    # the differences, so that the commit's wait for the disk, alike on both, cancels out.
    added = [
        audited - plain
        for plain, audited in zip(timings["without the event"], timings["with audit_record"], strict=True)
    ]
    added_median = statistics.median(added)
    added_cpu = (cpu["with audit_record"] - cpu["without the event"]) / writes * 1000
    print(
        f"write, the event adds: median {added_median:.3f} ms, p95 {percentile(added, 0.95):.3f} ms, "
        f"CPU {added_cpu:.3f} ms per call (target median < 1 ms)"
    )
    return [f"a write adds {added_median:.2f} ms"] if added_median >= TARGET_WRITE_ADDED_MS else []


def measure_verify() -> list[str]:
    from audit.verify import audit_chain_verify

    cpu_started, started = time.process_time(), time.perf_counter()
    report = audit_chain_verify()
    elapsed = time.perf_counter() - started
    print(
        f"audit_verify: {elapsed:.1f} s wall, {time.process_time() - cpu_started:.1f} s CPU "
        f"(target < 60 s): {report}"
    )
    missed = [] if report.intact else [str(report)]
    return missed + ([f"audit_verify took {elapsed:.0f} s"] if elapsed >= TARGET_VERIFY_SECONDS else [])


def measure_pages(runs: int, first_day: date) -> list[str]:
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(bench_admin())
    month = (first_day.replace(day=1) + timedelta(days=32 * 6)).replace(day=1)
    month_end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    pages = {
        "audit page, first page": "/audit/",
        "audit page, one department's month": (
            f"/audit/?department=department-8&from={month:%Y-%m-%d}&to={month_end:%Y-%m-%d}"
        ),
    }
    missed = []
    for name, url in pages.items():
        response = client.get(url)  # warm caches and connections
        if response.status_code == 404:
            print(f"{name}: page not there yet")
            continue
        if response.status_code != 200:
            print(f"{name}: answered {response.status_code}")
            missed.append(f"{name} answered {response.status_code}")
            continue
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        median = statistics.median(timings)
        print(
            f"{name}: median {median:.0f} ms, p95 {percentile(timings, 0.95):.0f} ms (target median < 200 ms)"
        )
        if median >= TARGET_PAGE_MS:
            missed.append(f"{name} median {median:.0f} ms")
    return missed


def bench_admin() -> Any:
    from django.contrib.auth.models import Group

    from org.models import PlatformGroup, User
    from org.roles import ensure_platform_groups

    ensure_platform_groups()
    admin, _ = User.objects.get_or_create(email="bench-admin@example.com")
    admin.groups.add(Group.objects.get(name=PlatformGroup.ADMINS.value))
    return admin


if __name__ == "__main__":
    sys.exit(main())
