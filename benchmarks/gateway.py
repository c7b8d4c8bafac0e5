"""Benchmark: Switchyard's gateway against calling Azure OpenAI directly and against LiteLLM's proxy.

One emulator, three sides called with the same openai SDK client (`AsyncOpenAI(base_url, api_key)`)
and taking turns, so that whatever else the machine does weighs on all of them alike:
- direct: the emulator's Azure OpenAI data plane (`/openai/v1` on the account's endpoint), with
  the portal's own Entra ID token, as an application calling Azure itself would;
- Switchyard: the portal's gateway (`/openai/v1`), one uvicorn worker, with a department API key;
- LiteLLM: `litellm[proxy]` (pinned, in its own virtualenv under var/), one worker, with the same
  deployments as `azure/<deployment>` models and the portal's token as `azure_ad_token`.

Parts:
1. Latency: `--streams` streamed calls in flight per side (each lane sends its next call when the
   last one ends), the emulator taking 200 ms to the first token and 10 ms per token. Prints each
   side's time to the first token, what each gateway adds (median, p95) and the ratio, and the web
   process's CPU per call.
2. Throughput: non-streamed calls, emulator latency 0, `--concurrency` at a time through one
   worker; prints calls per second per side, and checks that Switchyard metered every call (as many
   new usage records as calls answered).
3. Budget race (Switchyard): `--race` calls at once from a department with `--budget-left` of its
   budget left; prints the calls admitted and refused (429) and `budget overshoot: $X`.
4. Failover: the primary deployment answers 429 to every call, a fallback is set; prints the share
   of calls that succeed and the p95 time to the first token added over a healthy deployment.

    .venv/bin/python -m benchmarks.gateway [--streams 50] [--rounds 3] [--cycles 2] [--calls 1500]
    .venv/bin/python -m benchmarks.gateway --quick
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sw_bench REDIS_URL=redis://127.0.0.1:6379/10 \\
      .venv/bin/python -m benchmarks.gateway

With a PostgreSQL DATABASE_URL the database it names is made afresh and dropped afterwards, and
the Redis database REDIS_URL names is emptied first; else a throw-away SQLite file. Exits 1 when a
call fails that should not have, or a figure misses its target.
"""

import argparse
import asyncio
import functools
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import openai
import requests

from benchmarks import gateway_setup
from benchmarks.admission import machine_speed
from benchmarks.chat_seed import start_portal, stop_portal
from benchmarks.chat_stream import Profiler, Stream, in_flight, portal_environment
from benchmarks.emulator import (
    capacity_for,
    free_port,
    raise_file_limit,
    start_emulator,
    stop_emulator,
)
from benchmarks.gateway_calls import Meter, Outcome, Side, closed_loop, plain_call, sdk_client, stream_call
from benchmarks.gateway_report import (
    DIRECT,
    LITELLM,
    SWITCHYARD,
    database_work,
    report_database_work,
    report_failover,
    report_latency,
    report_metering,
    report_race,
    report_throughput,
)
from benchmarks.gateway_setup import RACE_MAX_TOKENS, Estate

T = TypeVar("T")


# Parts ---------------------------------------------------------------------------------------


def turns(sides: list[Side], cycle: int) -> list[Side]:
    """The sides in a different order each cycle, so none always goes first."""
    shift = cycle % len(sides)
    return sides[shift:] + sides[:shift]


async def latency_part(
    arguments: argparse.Namespace, sides: list[Side], meter: Meter
) -> dict[str, list[Stream]]:
    for side in sides:  # connections, imports and the gateways' caches, before measuring
        client, model = side.for_role("main")
        await asyncio.gather(*(stream_call(client, model, max_tokens=arguments.tokens) for _ in range(5)))
    streams: dict[str, list[Stream]] = {side.name: [] for side in sides}
    for cycle in range(arguments.cycles):
        for side in turns(sides, cycle):
            client, model = side.for_role("main")
            streams[side.name] += await meter.phase(
                "latency",
                side.name,
                in_flight(
                    lambda _lane, client=client, model=model: stream_call(
                        client, model, max_tokens=arguments.tokens
                    ),
                    concurrency=arguments.streams,
                    rounds=arguments.rounds,
                    stagger_seconds=arguments.stagger_seconds,
                ),
            )
    return streams


async def throughput_part(
    arguments: argparse.Namespace, sides: list[Side], meter: Meter
) -> dict[str, list[Outcome]]:
    outcomes: dict[str, list[Outcome]] = {side.name: [] for side in sides}
    for side in sides:  # warm-up calls, kept apart: they count for the metering check only
        client, model = side.for_role("main")
        outcomes[f"{side.name} warm-up"] = await closed_loop(
            functools.partial(plain_call, client, model, max_tokens=20),
            calls=50,
            concurrency=10,
        )
    per_turn = arguments.calls // arguments.cycles
    for cycle in range(arguments.cycles):
        for side in turns(sides, cycle):
            client, model = side.for_role("main")
            outcomes[side.name] += await meter.phase(
                "throughput",
                side.name,
                closed_loop(
                    functools.partial(plain_call, client, model, max_tokens=20),
                    calls=per_turn,
                    concurrency=arguments.concurrency,
                ),
            )
    return outcomes


async def race_part(arguments: argparse.Namespace, side: Side) -> list[Outcome]:
    client, model = side.for_role("thrift")
    return await asyncio.gather(
        *(plain_call(client, model, max_tokens=RACE_MAX_TOKENS) for _ in range(arguments.race))
    )


async def failover_part(
    arguments: argparse.Namespace, sides: list[Side], meter: Meter
) -> dict[tuple[str, str], list[Stream]]:
    """Each gateway, by turns: calls to the deployment that answers 429 (failing over to its twin)
    and, for comparison, the same calls to a healthy deployment."""
    streams: dict[tuple[str, str], list[Stream]] = {}
    for side in sides:
        for role in ("failover", "main"):
            client, model = side.for_role(role)
            await stream_call(client, model, max_tokens=arguments.tokens)
    for cycle in range(arguments.cycles):
        for side in turns(sides, cycle):
            for role in ("failover", "main") if cycle % 2 == 0 else ("main", "failover"):
                client, model = side.for_role(role)
                streams.setdefault((side.name, role), [])
                streams[(side.name, role)] += await meter.phase(
                    f"failover-{role}",
                    side.name,
                    in_flight(
                        lambda _lane, client=client, model=model: stream_call(
                            client, model, max_tokens=arguments.tokens
                        ),
                        concurrency=arguments.streams,
                        rounds=arguments.rounds,
                        stagger_seconds=arguments.stagger_seconds,
                    ),
                )
    return streams


# The run -------------------------------------------------------------------------------------


def usage_records() -> int:
    from money.models import UsageRecord

    return UsageRecord.objects.filter(source=UsageRecord.Source.API).count()


def settled_usage_records(expected: int, *, timeout: float = 30) -> int:
    """The API usage records once they stop growing (settlement may trail the answers)."""
    deadline = time.monotonic() + timeout
    counted = usage_records()
    while counted < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        counted = usage_records()
    return counted


@dataclass(frozen=True)
class Servers:
    emulator_url: str
    portal_url: str
    litellm_url: str
    pids: dict[str, int]  # "emulator", SWITCHYARD, LITELLM


class Run:
    """The parts in order. Each part runs in an event loop of its own with clients of its own,
    so that the database work between parts (counting records, setting the budget) is plain
    synchronous ORM work."""

    def __init__(self, arguments: argparse.Namespace, estate: Estate, token: str, servers: Servers) -> None:
        self.arguments = arguments
        self.estate = estate
        self.token = token
        self.servers = servers
        self.meter = Meter({"client": os.getpid(), **servers.pids})

    def sides(self) -> list[Side]:
        arguments, estate, token = self.arguments, self.estate, self.token
        pool = max(arguments.streams, arguments.concurrency, arguments.race) + 10
        roles = {"main": estate.main, "failover": estate.failover, "thrift": estate.thrift}
        gateway, litellm = self.servers.portal_url + "/openai/v1", self.servers.litellm_url + "/v1"
        return [
            Side(
                DIRECT,
                sdk_client(estate.main.endpoint + "openai/v1", token, pool=pool),
                {"main": estate.main.deployment_name, "failover": estate.failover.deployment_name},
                others={"failover": sdk_client(estate.failover.endpoint + "openai/v1", token, pool=pool)},
            ),
            Side(
                SWITCHYARD,
                sdk_client(gateway, estate.main.key, pool=pool),
                {role: target.gateway_name for role, target in roles.items()},
                pid=self.servers.pids[SWITCHYARD],
                others={
                    "failover": sdk_client(gateway, estate.failover.key, pool=pool),
                    "thrift": sdk_client(gateway, estate.thrift.key, pool=pool),
                },
            ),
            Side(
                LITELLM,
                sdk_client(litellm, gateway_setup.LITELLM_MASTER_KEY, pool=pool),
                {role: target.gateway_name for role, target in roles.items()},
                pid=self.servers.pids[LITELLM],
            ),
        ]

    def in_loop(self, part: Callable[[list[Side]], Awaitable[T]], *, only: tuple[str, ...] = ()) -> T:
        async def run() -> T:
            sides = [side for side in self.sides() if not only or side.name in only]
            try:
                return await part(sides)
            finally:
                for side in sides:
                    for client in [side.client, *side.others.values()]:
                        await client.close()

        return asyncio.run(run())

    def pace(self, *, first_token_ms: float, per_token_ms: float) -> None:
        requests.patch(
            f"{self.servers.emulator_url}/_emulator/settings",
            json={"first_token_ms": first_token_ms, "per_token_ms": per_token_ms, "lro_delay_seconds": 0.1},
            timeout=10,
        ).raise_for_status()

    def all_parts(self) -> int:
        parts = {
            "latency": self.latency,
            "throughput": self.throughput,
            "race": self.race,
            "failover": self.failover,
        }
        return sum(parts[name]() for name in self.arguments.parts)

    def latency(self) -> int:
        arguments, meter = self.arguments, self.meter
        self.pace(first_token_ms=arguments.first_token_ms, per_token_ms=arguments.per_token_ms)
        streams = self.in_loop(lambda sides: latency_part(arguments, sides, meter))
        return report_latency(arguments, streams, [DIRECT, SWITCHYARD, LITELLM], meter)

    def throughput(self) -> int:
        arguments, meter = self.arguments, self.meter
        self.pace(first_token_ms=0, per_token_ms=0)
        before, database_before = usage_records(), database_work()
        outcomes = self.in_loop(lambda sides: throughput_part(arguments, sides, meter))
        failures = report_throughput(arguments, outcomes, [DIRECT, SWITCHYARD, LITELLM], meter)
        answered = sum(
            outcome.status == 200 for outcome in [*outcomes[SWITCHYARD], *outcomes[f"{SWITCHYARD} warm-up"]]
        )
        failures += report_metering(answered, settled_usage_records(before + answered) - before)
        report_database_work(database_before, answered)
        return failures

    def race(self) -> int:
        arguments = self.arguments
        self.pace(first_token_ms=arguments.first_token_ms, per_token_ms=arguments.per_token_ms)
        gateway_setup.spend_all_but(
            department_id=self.estate.thrift_department_id,
            left=Decimal(arguments.budget_left),
            deployment_name=self.estate.thrift.deployment_name,
        )
        started = time.perf_counter()
        race = self.in_loop(lambda sides: race_part(arguments, sides[0]), only=(SWITCHYARD,))
        return report_race(arguments, race, self.estate, time.perf_counter() - started)

    def failover(self) -> int:
        arguments, control = self.arguments, f"{self.servers.emulator_url}/_emulator/faults"
        self.pace(first_token_ms=arguments.first_token_ms, per_token_ms=arguments.per_token_ms)
        fault = {"operation": "chat", "kind": "429", "deployment": self.estate.failover.deployment_name}
        requests.post(control, json=fault, timeout=10).raise_for_status()
        try:
            primary = self.in_loop(check_primary, only=(DIRECT,))
            failover = self.in_loop(
                lambda sides: failover_part(arguments, sides, self.meter), only=(SWITCHYARD, LITELLM)
            )
        finally:
            requests.delete(control, timeout=10).raise_for_status()
        return report_failover(arguments, failover, [SWITCHYARD, LITELLM], primary)


async def check_primary(sides: list[Side]) -> str:
    """That the failover part's primary does answer 429, when called directly."""
    client, model = sides[0].for_role("failover")
    outcomes = [await plain_call(client, model, max_tokens=20) for _ in range(3)]
    return f"directly, {sum(outcome.status == 429 for outcome in outcomes)} of 3 calls answered 429"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a check that every part runs")
    parser.add_argument(
        "--parts",
        type=lambda value: value.split(","),
        default=["latency", "throughput", "race", "failover"],
        help="which parts to run, comma-separated (default: latency,throughput,race,failover)",
    )
    parser.add_argument("--streams", type=int, default=50, help="streamed calls in flight per side")
    parser.add_argument("--rounds", type=int, default=4, help="calls per lane in a turn")
    parser.add_argument("--cycles", type=int, default=2, help="turns of every side")
    parser.add_argument("--tokens", type=int, default=40, help="max_tokens of the streamed calls")
    parser.add_argument("--calls", type=int, default=1500, help="non-streamed calls per side (throughput)")
    parser.add_argument("--concurrency", type=int, default=32, help="non-streamed calls at a time")
    parser.add_argument("--race", type=int, default=200, help="calls at once in the budget race")
    parser.add_argument("--budget-left", default="0.05", help="USD left of the racing department's budget")
    parser.add_argument("--first-token-ms", type=float, default=200)
    parser.add_argument("--per-token-ms", type=float, default=10)
    parser.add_argument("--stagger-seconds", type=float, default=0.5, help="spread of the lanes' first call")
    parser.add_argument(
        "--postgres-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the benchmark's PostgreSQL database, to see what it changes "
        "(e.g. synchronous_commit=off); repeatable",
    )
    parser.add_argument("--profile", type=Path, help="py-spy recording of the web process (raw stacks)")
    parser.add_argument("--target-median-ms", type=float, default=3.0)
    parser.add_argument("--target-p95-ms", type=float, default=10.0)
    parser.add_argument("--target-calls-per-second", type=float, default=300.0)
    parser.add_argument("--target-failover-share", type=float, default=99.0)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.streams, arguments.rounds, arguments.cycles = 10, 3, 1
        arguments.calls, arguments.race = 200, 40
    return arguments


def fresh_database(workdir: Path, settings: list[str]) -> tuple[str, str | None]:
    """The database URL for this run and, for PostgreSQL, the database to drop afterwards: the
    one DATABASE_URL names, made afresh, with the `--postgres-setting`s given."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{workdir / 'bench.sqlite3'}", None
    import psycopg
    from psycopg import sql

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for setting in settings:
            parameter, _, value = setting.partition("=")
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(parameter.strip()), sql.Literal(value.strip())
                )
            )
    if os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # the run's rate windows start empty
    return url, name


def drop_database(url: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{url.rsplit('/', 1)[0]}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_machine(arguments: argparse.Namespace, database: str, litellm_python: Path) -> None:
    import uvicorn

    load = ", ".join(f"{figure:.1f}" for figure in os.getloadavg())
    print(
        f"machine: a 10-million-step Python loop takes {machine_speed():.2f} s; {os.cpu_count()} CPUs; "
        f"load average {load} before the run"
    )
    print(
        f"python {sys.version.split()[0]}; openai SDK {openai.__version__} (client and portal); "
        f"uvicorn {uvicorn.__version__}; {gateway_setup.litellm_version(litellm_python)}"
    )
    print(
        f"database {database}; emulator first token {arguments.first_token_ms:g} ms, "
        f"{arguments.per_token_ms:g} ms per token; client, emulator and both gateways share the CPUs"
    )


def run_all(arguments: argparse.Namespace, workdir: Path, emulator: Any, emulator_url: str) -> int:
    litellm_python = gateway_setup.litellm_python()
    database_url, postgres_name = fresh_database(workdir, arguments.postgres_setting)
    environment = portal_environment(database_url=database_url, emulator_url=emulator_url)
    os.environ.update(environment)
    portal = litellm = None
    profiler: Profiler | None = None
    try:
        import django

        django.setup()
        from provisioning.azure import COGNITIVE_SERVICES_SCOPE, credential

        # Capacity for every call of a part at once, so that the emulator's rate limits (which
        # refill as the minute goes) never refuse one.
        streamed = arguments.cycles * arguments.streams * arguments.rounds
        estate = gateway_setup.seed(
            emulator_url=emulator_url,
            capacity=capacity_for(3 * (streamed + arguments.calls) + 200, arguments.tokens),
            fallback_capacity=capacity_for(2 * streamed + 20, arguments.tokens),
            race_capacity=capacity_for(arguments.race, RACE_MAX_TOKENS),
        )
        from django.db import connections

        connections.close_all()
        portal_port, litellm_port = free_port(), free_port()
        portal = start_portal(portal_port, environment, workdir / "portal.log")
        token = credential().get_token(COGNITIVE_SERVICES_SCOPE).token
        config = gateway_setup.litellm_config(workdir, estate, token)
        litellm = gateway_setup.start_litellm(litellm_python, config, litellm_port, workdir / "litellm.log")
        database = "PostgreSQL" if postgres_name else "SQLite"
        if postgres_name and arguments.postgres_setting:
            database += f" ({', '.join(arguments.postgres_setting)})"
        print_machine(arguments, database, litellm_python)
        print(f"web processes: Switchyard pid {portal.pid}, LiteLLM pid {litellm.pid}; logs in {workdir}")
        profiler = Profiler(arguments.profile, portal.pid)
        profiler.start()
        servers = Servers(
            emulator_url=emulator_url,
            portal_url=f"http://127.0.0.1:{portal_port}",
            litellm_url=f"http://127.0.0.1:{litellm_port}",
            pids={"emulator": emulator.pid, SWITCHYARD: portal.pid, LITELLM: litellm.pid},
        )
        failures = Run(arguments, estate, token, servers).all_parts()
        print(f"\nload average {', '.join(f'{figure:.1f}' for figure in os.getloadavg())} after the run")
        logged = (workdir / "portal.log").read_text(errors="replace")
        print(f"\nSwitchyard's log: {logged.count('Traceback')} tracebacks")
        return failures
    finally:
        if profiler is not None:
            profiler.stop()
        for process in (portal, litellm):
            if process is not None:
                stop_portal(process)
        if postgres_name:
            drop_database(database_url, postgres_name)


def main() -> int:
    arguments = parse_arguments()
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-gateway-bench-"))
    emulator_port = free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    emulator = start_emulator(emulator_port, workdir / "emulator.json")
    try:
        failures = run_all(arguments, workdir, emulator, emulator_url)
    finally:
        stop_emulator(emulator)
    print(
        "\nall figures within their targets" if not failures else f"\n{failures} failures or missed targets"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
