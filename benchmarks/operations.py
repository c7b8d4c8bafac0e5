"""Benchmark: the operations page's deployment figures over a large, busy estate on PostgreSQL.

A week of minute rollups for 100 deployments with a call every minute (1,008,000 rows), generated
in the database, then folded into hour rows as the beat does. Prints the median and p95 time of
the page's deployment figures (`estate_health`) for each window, read from the minutes alone (as
before the hourly rollups) and from hours plus the ragged ends (as now), and their ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/switchyard_opsbench \\
        .venv/bin/python -m benchmarks.operations [--deployments 100] [--runs 7]

The database named in DATABASE_URL is created for the run and dropped afterwards.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta

from benchmarks.cost_report import create_database, drop_database, percentile

ESTATE_SQL = """
INSERT INTO org_department (name, slug, cost_center, monthly_budget, chat_retention_days,
    approvers_may_audit_chats, entra_member_group_id, entra_lead_group_id)
VALUES ('Department', 'department', 'CC-1000', 1000, 30, false, '', '');

INSERT INTO provisioning_landingzone (name, slug, subscription_id, resource_group, allowed_regions)
VALUES ('Central', 'central', '00000000-0000-0000-0000-00000000c057', 'rg-central', '["swedencentral"]');

INSERT INTO provisioning_modeldeployment (department_id, scope, display_name, system_prompt, landing_zone_id,
    region, network_mode, name, model_name, model_version, sku, capacity, content_filter, state,
    status_message, run, run_token, created_at, updated_at, gateway_name, data_classification, access_mode)
SELECT (SELECT id FROM org_department), 'dedicated', 'Assistant ' || n, '',
    (SELECT id FROM provisioning_landingzone), 'swedencentral', 'public', 'assistant-' || n,
    'gpt-4o-mini', '2024-07-18', 'GlobalStandard', 50,
    'Microsoft.DefaultV2', 'active', '', 1, '', now() - interval '30 days', now(), 'assistant-' || n,
    'internal', 'gateway'
FROM generate_series(1, %(deployments)s) n;

INSERT INTO calls_callminute (minute, deployment_id, department_id, source, calls, answered, upstream_errors,
    throttled, failovers, refused, input_tokens, output_tokens, first_token_ms, answer_ms)
SELECT date_trunc('minute', now()) - m * interval '1 minute', d.id, d.department_id, 'chat',
    3, 3, 0, (m %% 50 = 0)::int, 0, 0, 3000, 300,
    '[0,0,0,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]'::jsonb,
    '[0,0,0,0,0,0,0,0,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0,0]'::jsonb
FROM generate_series(0, 7 * 24 * 60 - 1) m CROSS JOIN provisioning_modeldeployment d;
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database, e.g. .../switchyard_opsbench")
    create_database(url)
    try:
        run(args)
    finally:
        drop_database(url)


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from calls.hours import call_hours_fold
    from calls.models import CallHour, CallMinute
    from reports.selectors.operations import WINDOWS, Window, _sums, estate_health, window_for

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    with connection.cursor() as cursor:
        for statement in ESTATE_SQL.split(";"):
            if statement.strip():
                cursor.execute(statement, {"deployments": args.deployments})
        cursor.execute("ANALYZE")
    print(f"{CallMinute.objects.count():,} minute rows generated in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    call_hours_fold(since=timezone.now() - timedelta(days=8))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"folded into {CallHour.objects.count():,} hour rows in {time.monotonic() - started:.1f} s")

    def minutes_alone(window: Window) -> int:
        """The deployment figures as the page read them before the hour rows: every minute."""
        rows = CallMinute.objects.filter(minute__gte=window.since).values("deployment").annotate(**_sums())
        return sum(row["calls"] for row in rows.order_by())

    def as_now(window: Window) -> int:
        return estate_health(window).total.calls

    def timed(name: str, read: Callable[[Window], int]) -> tuple[float, float]:
        window = window_for(name, now=timezone.now())
        started, cpu_started = time.perf_counter(), time.process_time()
        assert read(window) > 0
        return (time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000

    for name in WINDOWS:
        before: list[float] = []
        now_wall: list[float] = []
        now_cpu: list[float] = []
        for _ in range(args.runs):  # interleaved: the old read, then the page's
            before.append(timed(name, minutes_alone)[0])
            wall, cpu = timed(name, as_now)
            now_wall.append(wall)
            now_cpu.append(cpu)
        line = (
            f"{name:>5}: median {statistics.median(now_wall):7.1f} ms, "
            f"p95 {percentile(now_wall, 0.95):7.1f} ms, "
            f"web CPU {statistics.median(now_cpu):6.1f} ms"
        )
        line += (
            f" | every minute (before): median {statistics.median(before):7.1f} ms, "
            f"ratio {statistics.median(before) / statistics.median(now_wall):.1f}"
        )
        print(line)


if __name__ == "__main__":
    main()
