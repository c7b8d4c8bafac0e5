"""Admission by reservation under load: calls at once against a department with a little budget
left, and what admitting and settling one call costs.

    .venv/bin/python -m benchmarks.admission [--callers 200] [--calls 2000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
      .venv/bin/python -m benchmarks.admission

1. The race: `--callers` threads, each with its own database connection, ask to be admitted at
   the same moment, round after round, against a department with $0.05 of its budget left. Each
   admitted call "runs" a few milliseconds and settles with usage between a tenth of its bound
   and all of it. Rounds go on until a round admits nobody. Prints what was admitted and
   refused and `budget overshoot: $X`, the recorded spend (the cost model's figure, as the cost
   pages show it) beyond the budget. Exits 1 if there is any.
2. The cost: `--calls` calls one after another with room to spare, reserve then settle, and for
   comparison the work the chat did per call before reservations (read the remembered spend,
   count the person's request, write the usage record and its rollups, count the spend up):
   median and p95 per call, the ratio, and CPU per call.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from benchmarks.emulator import percentile
from benchmarks.provisioning import drop_database, scratch_database

BUDGET = Decimal("100.00")
LEFT = Decimal("0.05")
PROMPT_TOKENS, MAX_OUTPUT_TOKENS = 800, 1_000


def machine_speed() -> float:
    """Seconds for a 10-million-step Python loop: how fast this machine runs Python."""
    started = time.perf_counter()
    total = 0
    for step in range(10_000_000):
        total += step
    return time.perf_counter() - started


def setup() -> tuple[object, object]:
    from django.core.management import call_command
    from django.utils import timezone

    from org.models import Department, Membership, User
    from provisioning.models import LandingZone, ModelDeployment, Price

    call_command("migrate", verbosity=0)
    department = Department.objects.create(
        name="Marketing", slug="marketing", cost_center="CC-2100", monthly_budget=BUDGET
    )
    zone = LandingZone.objects.create(
        name="Central",
        slug="central",
        subscription_id=str(uuid.uuid4()),
        resource_group="rg",
        allowed_regions=[],
    )
    deployment = ModelDeployment.objects.create(
        department=department,
        display_name="Marketing copy assistant",
        landing_zone=zone,
        region="swedencentral",
        name="copy",
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        capacity=100,
        state=ModelDeployment.State.ACTIVE,
    )
    Price.objects.get_or_create(
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        valid_from=timezone.localdate().replace(day=1),
        defaults={"input_per_million": Decimal("0.15"), "output_per_million": Decimal("0.60")},
    )
    lead = User.objects.create_user("lead@example.com", first_name="Lena")
    Membership.objects.create(user=lead, department=department, role=Membership.Role.LEAD)
    return department, deployment


def race(department, deployment, callers: int) -> int:
    from django.utils import timezone

    from money.budgets import department_spend
    from money.limits import Claim
    from money.models import UsageRecord
    from money.usage import usage_record_create

    usage_record_create(
        department=department,
        user=None,
        deployment=deployment,
        input_tokens=0,
        cached_input_tokens=0,
        output_tokens=int((BUDGET - LEFT) * 1_000_000 / Decimal("0.60")),
    )
    claim = Claim(
        department=department,
        deployment=deployment,
        prompt_tokens=PROMPT_TOKENS,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        source=UsageRecord.Source.API,
    )
    admitted = refused = rounds = 0
    while True:  # rounds of callers at once, until a round admits nobody
        rounds += 1
        round_admitted, round_refused = race_round(claim, callers, seed=rounds * 10_000)
        admitted, refused = admitted + round_admitted, refused + round_refused
        if round_admitted == 0:
            break
    spent = department_spend(department=department, on=timezone.localdate())
    overshoot = max(spent - department.monthly_budget, Decimal(0))
    print(
        f"race: {callers} callers at once, {rounds} rounds: {admitted} admitted, {refused} refused "
        f"(budget ${department.monthly_budget}, ${LEFT} left at the start)"
    )
    print(f"recorded spend: ${spent:.6f} of ${department.monthly_budget}")
    print(f"budget overshoot: ${overshoot:.6f}")
    return 0 if overshoot == 0 else 1


def race_round(claim, callers: int, *, seed: int) -> tuple[int, int]:
    """`callers` threads ask for the claim at the same moment; each one admitted settles after a
    short call using a random share of its answer. Returns (admitted, refused)."""
    from django.db import connection

    from money.admission import AdmissionRefused, Usage, admission_reserve, admission_settle

    counts = {"admitted": 0, "refused": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(callers)

    def caller(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 (a workload, not a secret)
        try:
            barrier.wait()
            try:
                admission = admission_reserve(claim=claim)
            except AdmissionRefused:
                with lock:
                    counts["refused"] += 1
                return
            with lock:
                counts["admitted"] += 1
            time.sleep(rng.uniform(0.001, 0.02))
            share = rng.uniform(0.1, 1.0)
            admission_settle(
                reservation_id=admission.reservation_id,
                usage=Usage(input_tokens=PROMPT_TOKENS, output_tokens=int(MAX_OUTPUT_TOKENS * share)),
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=caller, args=(seed + n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["admitted"], counts["refused"]


def cost(department, deployment, calls: int) -> None:
    from django.core.cache import cache
    from django.utils import timezone

    from money.admission import Usage, admission_reserve, admission_settle
    from money.limits import Claim
    from money.models import UsageRecord
    from money.usage import usage_record_create
    from org.models import User

    department.monthly_budget = Decimal("1000000.00")
    department.save()
    user = User.objects.get()
    claim = Claim(
        department=department,
        deployment=deployment,
        prompt_tokens=PROMPT_TOKENS,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        source=UsageRecord.Source.CHAT,
        user=user,
    )

    def reservation() -> None:
        # As the chat does it: the turn has its department, deployment and person at hand.
        admission = admission_reserve(claim=claim)
        admission_settle(
            reservation_id=admission.reservation_id,
            usage=Usage(PROMPT_TOKENS, 300),
            facts=(department, deployment, user),
        )

    def before() -> None:
        # What a turn did before: a remembered spend read, the request counted, the record
        # written with its rollups, the spend counted up.
        key = f"bench:spend:{department.pk}"
        cache.get(key)
        cache.add(f"bench:requests:{user.pk}", 0, 70)
        cache.incr(f"bench:requests:{user.pk}")
        usage_record_create(
            department=department,
            user=user,
            deployment=deployment,
            input_tokens=PROMPT_TOKENS,
            cached_input_tokens=0,
            output_tokens=300,
            at=timezone.now(),
        )
        cache.add(key, 0, 60)
        cache.incr(key, 1)

    report_interleaved({"reserve + settle": reservation, "before reservations": before}, calls)


def report_interleaved(sides: dict[str, Callable[[], None]], calls: int) -> None:
    """Time each side `calls` times, interleaved so that both see the same machine at the same
    moment, and print median, p95 and CPU per call, then the first side's ratio to the second."""
    timings: dict[str, list[float]] = {name: [] for name in sides}
    cpu = dict.fromkeys(sides, 0.0)
    for _ in range(20):  # warm up every side
        for work in sides.values():
            work()
    order = list(sides.items())
    for n in range(calls):
        for name, work in order[:: 1 if n % 2 else -1]:
            started, cpu_started = time.perf_counter(), time.process_time()
            work()
            timings[name].append((time.perf_counter() - started) * 1000)
            cpu[name] += time.process_time() - cpu_started
    for name, values in timings.items():
        print(
            f"{name}: median {statistics.median(values):.3f} ms, p95 {percentile(values, 0.95):.3f} ms, "
            f"CPU {cpu[name] / calls * 1000:.3f} ms per call"
        )
    first, second = (timings[name] for name, _ in order[:2])
    ratio_median = statistics.median(first) / statistics.median(second)
    ratio_p95 = percentile(first, 0.95) / percentile(second, 0.95)
    print(f"ratio to before: median {ratio_median:.2f}, p95 {ratio_p95:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args()

    print(f"machine: a 10-million-step Python loop takes {machine_speed():.2f} s")
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-admission-bench-"))
    database_url, postgres_name = scratch_database(workdir)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": database_url,
            "AZURE_MODE": "emulator",
            "DEBUG": "false",
            "SECRET_KEY": "benchmark-" + uuid.uuid4().hex,
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
            # The cost part is one person calling many times a minute.
            "CHAT_USER_REQUESTS_PER_MINUTE": "1000000",
            "CHAT_USER_TOKENS_PER_MINUTE": "1000000000",
        }
    )
    backend = "Redis" if os.environ.get("REDIS_URL") else "the database"
    print(f"database: {'PostgreSQL' if postgres_name else 'SQLite'}; per-minute counters on {backend}")
    try:
        import django

        django.setup()
        department, deployment = setup()
        failed = race(department, deployment, arguments.callers)
        cost(department, deployment, arguments.calls)
        return failed
    finally:
        from django.db import connections

        connections.close_all()
        if postgres_name:
            drop_database(postgres_name)


if __name__ == "__main__":
    sys.exit(main())
