"""Benchmark: the cost pages over a large estate on PostgreSQL.

2,000,000 usage records (200 departments, 1,000 deployments of which 20 shared and 50
provisioned, 5,000 people, 90 days), generated in the database with INSERT ... SELECT. Prints the
rollup build time, then the median and p95 render time and the query count of the month overview
and of a department page. The query counts are printed at a tenth of the data too: they must not
grow with it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/switchyard_costbench \\
        .venv/bin/python -m benchmarks.cost_report [--records 2000000] [--runs 15]

The database named in DATABASE_URL is created for the run and dropped afterwards.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

DEPARTMENTS = 200
DEPLOYMENTS_PER_DEPARTMENT = 5  # 200 x 5 = 1,000 deployments, 20 of them shared, 50 provisioned
SHARED = 20
PEOPLE_PER_DEPARTMENT = 25  # 5,000 people
DAYS = 90


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def create_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


ESTATE_SQL = """
INSERT INTO org_department (name, slug, cost_center, monthly_budget, chat_retention_days,
    approvers_may_audit_chats, entra_member_group_id, entra_lead_group_id)
SELECT 'Department ' || d, 'department-' || d, 'CC-' || (1000 + d / 2), 2000 + (d %% 10) * 1000,
    30, false, '', ''
FROM generate_series(1, %(departments)s) d;

INSERT INTO org_user (password, is_superuser, first_name, last_name, is_staff, is_active, date_joined, email,
    is_break_glass)
SELECT '!', false, 'Person', p::text, false, true, now(), 'person' || p || '@example.com', false
FROM generate_series(1, %(people)s) p;

INSERT INTO org_membership (user_id, department_id, role, source, created_at)
SELECT u.id, dep.id, CASE WHEN (p - 1) %% %(per_department)s = 0 THEN 'lead' ELSE 'member' END,
    'manual', now()
FROM generate_series(1, %(people)s) p
JOIN org_user u ON u.email = 'person' || p || '@example.com'
JOIN org_department dep ON dep.slug = 'department-' || ((p - 1) / %(per_department)s + 1);

INSERT INTO provisioning_landingzone (name, slug, subscription_id, resource_group, allowed_regions,
    owner_department_id)
VALUES ('Central', 'central', '00000000-0000-0000-0000-00000000c057', 'rg-central',
    '["swedencentral"]', NULL);

INSERT INTO provisioning_modeldeployment (department_id, scope, display_name, system_prompt, landing_zone_id,
    region, network_mode, name, model_name, model_version, sku, capacity, content_filter, state,
    status_message, run, run_token, created_at, updated_at, gateway_name, data_classification, access_mode)
SELECT dep.id,
       CASE WHEN n = 1 AND d <= %(shared)s THEN 'shared' ELSE 'dedicated' END,
       'Assistant ' || d || '-' || n, '', (SELECT id FROM provisioning_landingzone),
       'swedencentral', 'public', 'assistant-' || d || '-' || n,
       CASE WHEN n = 5 AND d %% 4 = 0 THEN 'gpt-4o' WHEN n %% 2 = 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END,
       CASE WHEN n = 5 AND d %% 4 = 0 THEN '2024-11-20' WHEN n %% 2 = 0 THEN '2024-11-20' ELSE
           '2024-07-18' END,
       CASE WHEN n = 5 AND d %% 4 = 0 THEN 'ProvisionedManaged' ELSE 'GlobalStandard' END,
       CASE WHEN n = 5 AND d %% 4 = 0 THEN 50 ELSE 50 END,
       'Microsoft.DefaultV2', 'active', '', 1, '', now() - interval '120 days', now(),
       'assistant-' || d || '-' || n, 'internal', 'gateway'
FROM generate_series(1, %(departments)s) d
CROSS JOIN generate_series(1, %(per_department_deployments)s) n
JOIN org_department dep ON dep.slug = 'department-' || d;

INSERT INTO provisioning_accessgrant (deployment_id, department_id, created_at)
SELECT m.id, dep.id, now()
FROM provisioning_modeldeployment m CROSS JOIN org_department dep
WHERE m.scope = 'shared';
"""

# Each call: a random person; 80% on one of their department's dedicated deployments, 20% on a
# shared one; priced with the shipped per-million rates of the deployment's model.
USAGE_SQL = """
INSERT INTO money_usagerecord (department_id, user_id, deployment_id, input_tokens, cached_input_tokens,
    output_tokens, cost, source, created_at, estimated, attempts)
SELECT call.department_id, call.user_id, m.id, call.input_tokens, 0, call.output_tokens,
       CASE WHEN m.sku = 'ProvisionedManaged' THEN 0
            WHEN m.model_name = 'gpt-4o' THEN (call.input_tokens * 2.50 + call.output_tokens *
                10.00) / 1000000
            ELSE (call.input_tokens * 0.15 + call.output_tokens * 0.60) / 1000000 END,
       'chat', call.created_at, false, '[]'
FROM (
    SELECT mem.department_id, mem.user_id,
           CASE WHEN random() < 0.2 THEN 'assistant-' || (1 + floor(random() * %(shared)s))::int || '-1'
                ELSE 'assistant-' || replace(dep.slug, 'department-',
                    '') || '-' || (2 + floor(random() * 4))::int
           END AS deployment_name,
           (200 + floor(random() * 4000))::int AS input_tokens,
           (50 + floor(random() * 800))::int AS output_tokens,
           now() - (random() * interval '%(days)s days') AS created_at
    FROM generate_series(1, %(records)s) g
    JOIN org_user u ON u.email = 'person' || (1 + (g::bigint * 7919) %% %(people)s) || '@example.com'
    JOIN org_membership mem ON mem.user_id = u.id
    JOIN org_department dep ON dep.id = mem.department_id
) call
JOIN provisioning_modeldeployment m ON m.name = call.deployment_name;
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database, e.g. .../switchyard_costbench")
    create_database(url)
    try:
        run(args)
    finally:
        if not args.keep:
            drop_database(url)


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # Development settings (the emulator), as `make run` has them.
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    params = {
        "departments": DEPARTMENTS,
        "people": DEPARTMENTS * PEOPLE_PER_DEPARTMENT,
        "per_department": PEOPLE_PER_DEPARTMENT,
        "per_department_deployments": DEPLOYMENTS_PER_DEPARTMENT,
        "shared": SHARED,
        "days": DAYS,
    }
    with connection.cursor() as cursor:
        for statement in ESTATE_SQL.split(";"):
            if statement.strip():
                cursor.execute(statement, params)
    print(
        f"estate: {DEPARTMENTS} departments, {DEPARTMENTS * DEPLOYMENTS_PER_DEPARTMENT} deployments, "
        f"{DEPARTMENTS * PEOPLE_PER_DEPARTMENT} people"
    )

    tenth = args.records // 10
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(USAGE_SQL, {**params, "records": tenth})
    print(f"usage: {tenth:,} records generated in {time.monotonic() - started:.1f} s")
    rebuild()
    small = measure(runs=3, label=f"{tenth:,} records")

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(USAGE_SQL, {**params, "records": args.records - tenth})
        cursor.execute("ANALYZE")
    print(f"usage: {args.records - tenth:,} more records generated in {time.monotonic() - started:.1f} s")
    rebuild()
    full = measure(runs=args.runs, label=f"{args.records:,} records")
    for page in full:
        same = "same" if full[page] == small[page] else "DIFFERENT"
        print(f"query count {page}: {small[page]} at a tenth of the data, {full[page]} at all of it ({same})")


def rebuild() -> None:
    from django.core.management import call_command
    from django.db import connection

    from money.models import DepartmentUsageRollup, UsageRecord, UsageRollup

    started = time.monotonic()
    with open(os.devnull, "w") as quiet:
        call_command("rebuild_usage_rollups", verbosity=0, stdout=quiet)
    elapsed = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"rollup build: {elapsed:.1f} s for {UsageRecord.objects.count():,} records -> "
        f"{UsageRollup.objects.count():,} per-person rows, "
        f"{DepartmentUsageRollup.objects.count():,} per-department rows"
    )


def measure(*, runs: int, label: str) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from org.models import Department, PlatformGroup, User
    from org.roles import ensure_platform_groups

    ensure_platform_groups()
    admin, _ = User.objects.get_or_create(email="bench-admin@example.com")
    from django.contrib.auth.models import Group

    admin.groups.add(Group.objects.get(name=PlatformGroup.ADMINS.value))
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    today = timezone.localdate()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    department = Department.objects.get(slug="department-8")
    pages = {
        "overview (last month)": f"/costs/?month={last_month}",
        "department (last month)": f"/costs/departments/{department.slug}/?month={last_month}",
        "department (this month)": f"/costs/departments/{department.slug}/",
    }
    counts = {}
    print(f"--- {label}, {runs} runs per page")
    for name, url in pages.items():
        client.get(url)  # warm caches and connections
        timings = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            counts[name] = len(queries)
        print(
            f"{name}: median {statistics.median(timings):.0f} ms, p95 {percentile(timings, 0.95):.0f} ms, "
            f"{counts[name]} queries"
        )
    return counts


if __name__ == "__main__":
    main()
