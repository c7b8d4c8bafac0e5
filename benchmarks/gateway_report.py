"""The gateway benchmark's reports (gateway.py): each part's figures, printed, and how many
targets or calls they miss. The targets are the issue's: Switchyard adds at most 3 ms to the first
token at the median and 10 ms at p95, answers 300 calls a second through one worker with every
call metered, never spends past a budget, and serves at least 99% of calls through a fallback."""

import argparse
import statistics
import time
from decimal import Decimal

from benchmarks.chat_stream import Stream
from benchmarks.emulator import percentile
from benchmarks.gateway_calls import Meter, Outcome
from benchmarks.gateway_setup import Estate

DIRECT, SWITCHYARD, LITELLM = "direct", "Switchyard", "LiteLLM"


def ttft(streams: list[Stream]) -> tuple[float, float, int, list[str]]:
    """Median and p95 time to the first token (steady-state streams only), how many counted,
    and the errors of all of them."""
    counted = [stream.ttft_ms for stream in streams if stream.error is None and stream.steady]
    errors = [stream.error for stream in streams if stream.error is not None]
    if not counted:
        return float("nan"), float("nan"), 0, errors
    return statistics.median(counted), percentile(counted, 0.95), len(counted), errors


def report_latency(
    arguments: argparse.Namespace, streams: dict[str, list[Stream]], sides: list[str], meter: Meter
) -> int:
    print(f"\n1. {arguments.streams} streamed calls in flight per side, time to the first token")
    figures = {}
    for side in sides:
        median, p95, counted, errors = ttft(streams[side])
        figures[side] = (median, p95)
        print(
            f"  {side:<11} median {median:.1f} ms, p95 {p95:.1f} ms  "
            f"({len(streams[side])} calls, {counted} in the steady state, {len(errors)} errors)"
        )
        for error in sorted(set(errors))[:3]:
            print(f"    e.g. {error}")
    direct_median, direct_p95 = figures[DIRECT]
    missed = 0
    for side in sides:
        if side == DIRECT:
            continue
        median, p95 = figures[side]
        print(
            f"  {side}: gateway adds: median {median - direct_median:.1f} ms, p95 {p95 - direct_p95:.1f} ms"
            f"  (ratio to direct: median {median / direct_median:.3f}, p95 {p95 / direct_p95:.3f})"
        )
        if side == SWITCHYARD:
            missed += (median - direct_median > arguments.target_median_ms) + (
                p95 - direct_p95 > arguments.target_p95_ms
            )
    targets = f"median {arguments.target_median_ms:g} ms, p95 {arguments.target_p95_ms:g} ms"
    print(f"  targets for Switchyard: {targets}")
    meter.report("latency", sides)
    return missed + sum(stream.error is not None for calls in streams.values() for stream in calls)


def report_throughput(
    arguments: argparse.Namespace, outcomes: dict[str, list[Outcome]], sides: list[str], meter: Meter
) -> int:
    print(f"\n2. non-streamed calls, emulator latency 0, {arguments.concurrency} at a time")
    failed = 0
    for side in sides:
        done = outcomes[side]
        ok = [outcome for outcome in done if outcome.status == 200 and outcome.error is None]
        errors = sorted({f"{outcome.status} {outcome.error}" for outcome in done if outcome not in ok})
        failed += len(done) - len(ok)
        rate = len(ok) / meter.wall("throughput", side)
        times = [outcome.seconds * 1000 for outcome in ok] or [float("nan")]
        print(
            f"  {side:<11} throughput: {rate:.0f} calls/s  ({len(ok)} of {len(done)} answered; "
            f"per call median {statistics.median(times):.1f} ms, p95 {percentile(times, 0.95):.1f} ms)"
        )
        for error in errors[:3]:
            print(f"    e.g. {error}")
        if side == SWITCHYARD and rate < arguments.target_calls_per_second:
            failed += 1
    print(f"  target for Switchyard: {arguments.target_calls_per_second:g} calls/s")
    meter.report("throughput", sides)
    return failed


def database_work() -> dict[str, int] | None:
    """PostgreSQL's counters of the benchmark's database (transactions committed, rows written):
    only Switchyard's side uses it, so their growth over a part is Switchyard's work."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        row = cursor.fetchone()
    return dict(zip(["commits", "rows inserted", "rows updated", "rows deleted"], row, strict=True))


def report_database_work(before: dict[str, int] | None, calls: int) -> None:
    if before is None or not calls:
        return
    time.sleep(1.5)  # a server process reports its counters at most once a second
    after = database_work()
    assert after is not None
    per_call = ", ".join(f"{(after[name] - before[name]) / calls:.1f} {name}" for name in before)
    print(f"  Switchyard's database work per call (PostgreSQL's counters): {per_call}")


def report_metering(made: int, recorded: int) -> int:
    verdict = "every call metered" if made == recorded else "MISMATCH"
    print(f"  Switchyard metering: {made} calls answered, {recorded} usage records made: {verdict}")
    return int(made != recorded)


def report_race(arguments: argparse.Namespace, outcomes: list[Outcome], estate: Estate, wall: float) -> int:
    from django.utils import timezone

    from money.budgets import department_spend
    from money.models import Reservation
    from org.models import Department

    admitted = sum(outcome.status == 200 for outcome in outcomes)
    refused = sum(outcome.status == 429 for outcome in outcomes)
    other = sorted({f"{o.status} {o.error}" for o in outcomes if o.status not in (200, 429)})
    department = Department.objects.get(pk=estate.thrift_department_id)
    # The last answers' settlement may trail them by a moment.
    deadline = time.monotonic() + 30
    while (open_reservations := Reservation.objects.filter(department=department).count()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    spent = department_spend(department=department, on=timezone.localdate())
    print(
        f"\n3. {arguments.race} calls at once, ${arguments.budget_left} of ${department.monthly_budget} left"
    )
    print(
        f"  {admitted} answered, {refused} refused with 429, {len(outcomes) - admitted - refused} other, "
        f"in {wall:.1f} s (longest call {max(outcome.seconds for outcome in outcomes):.1f} s)"
    )
    for error in other[:3]:
        print(f"    e.g. {error}")
    print(f"  recorded spend ${spent:.6f}, {open_reservations} reservations still open")
    overshoot = spent - department.monthly_budget
    print(f"  budget overshoot: ${max(overshoot, Decimal(0)):.6f}  (spend minus budget {overshoot:+.6f})")
    return int(overshoot > 0) + len(other) + int(admitted == 0)


def report_failover(
    arguments: argparse.Namespace, streams: dict[tuple[str, str], list[Stream]], sides: list[str], direct: str
) -> int:
    print(f"\n4. failover: the primary answers 429 to every call ({direct})")
    print(f"  {arguments.streams} streams in flight, to it and (for comparison) to a healthy deployment")
    missed = 0
    for side in sides:
        failing = streams[(side, "failover")]
        share = sum(stream.error is None for stream in failing) / len(failing) * 100
        healthy_median, healthy_p95, _, _ = ttft(streams[(side, "main")])
        median, p95, _, errors = ttft(failing)
        print(
            f"  {side}: failover: {share:.1f}% succeeded, adds p95 {p95 - healthy_p95:.1f} ms  "
            f"(first token median {median:.1f} ms, p95 {p95:.1f} ms; "
            f"to a healthy deployment median {healthy_median:.1f} ms, p95 {healthy_p95:.1f} ms)"
        )
        for error in sorted(set(errors))[:3]:
            print(f"    e.g. {error}")
        if side == SWITCHYARD:
            missed += share < arguments.target_failover_share
    return missed
