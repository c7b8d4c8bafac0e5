"""Benchmark: what the portal's streaming chat adds to the time to the first token.

The emulator answers with a fixed time to the first token (200 ms) and a delay per token (10 ms).
The portal runs as ONE uvicorn worker (a subprocess) on a scratch database, with a deployment
provisioned through the portal's own services and one signed-in session (and conversation) per
simulated person. The script measures:

1. the time to the first token calling the emulator directly with the openai SDK
   (`AsyncAzureOpenAI`, as the portal does), 50 streams in flight;
2. the same through the portal (`POST /chat/<id>/messages` to the first `delta` event: what the
   person waits for), 50 streams; the two sides take turns (`--cycles`), so that the machine's
   other work weighs on both alike, and only streams started while all 50 were under way count;
   prints median and p95 of both, the milliseconds the portal adds and the ratio;
3. 300 concurrent streams through the portal, all of which must end with a `done` event;
4. the web process's peak memory (VmHWM).

    .venv/bin/python -m benchmarks.chat_stream [--streams 50] [--rounds 4] [--cycles 2] [--burst 300]

The database is PostgreSQL when DATABASE_URL names one (a fresh database, dropped afterwards),
else a throw-away SQLite file. Exits 1 when a stream fails or the added latency misses the
target (5 ms median, 20 ms p95).
"""

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import openai
import requests

from benchmarks.chat_seed import SYSTEM_PROMPT, seed, start_portal, stop_portal
from benchmarks.emulator import (
    capacity_for,
    free_port,
    percentile,
    process_figures,
    raise_file_limit,
    start_emulator,
    stop_emulator,
)
from benchmarks.provisioning import drop_database, scratch_database

QUESTION = "Explain how to roll out a new internal search service."
DELTA_MARKER = b"event: delta"
CONTENT_MARKER = b'"content":"'

DONE_MARKER = b"event: done"
ERROR_MARKER = b"event: error"


@dataclass
class Stream:
    started: float
    first_token: float | None = None
    finished: float | None = None
    error: str | None = None
    # Started while every lane was under way: counted in the latency figures.
    steady: bool = False

    @property
    def ttft_ms(self) -> float:
        assert self.first_token is not None
        return (self.first_token - self.started) * 1000


# The streams -----------------------------------------------------------------------------------


async def direct_stream(client: openai.AsyncAzureOpenAI, history: list[dict[str, str]]) -> Stream:
    """One message straight to the model with the conversation so far, as the portal sends it
    (the emulator's answer, and so its length, follows from the whole conversation). The call is
    the portal's own (`calls.transport.chat_completion_stream`: the SDK, read as raw bytes), so
    that this side is the portal minus the portal."""
    from django.conf import settings

    from calls.transport import chat_completion_stream

    history.append({"role": "user", "content": QUESTION})
    stream = Stream(started=time.perf_counter())
    answer: list[str] = []
    try:
        response = await chat_completion_stream(
            client,
            deployment="chat-bench",
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, *history],
            max_output_tokens=settings.CHAT_MAX_ANSWER_TOKENS,
        )
        try:
            pending = b""
            async for received in response.aiter_bytes():
                pending += received
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    data = event.partition(b"data: ")[2]
                    if CONTENT_MARKER not in data:
                        continue
                    text = json.loads(data)["choices"][0]["delta"].get("content")
                    if text:
                        if stream.first_token is None:
                            stream.first_token = time.perf_counter()
                        answer.append(text)
        finally:
            await response.aclose()
        if stream.first_token is None:
            stream.error = "no content"
    except (openai.OpenAIError, httpx2.HTTPError) as error:
        stream.error = f"{type(error).__name__}: {error}"
    stream.finished = time.perf_counter()
    history.append({"role": "assistant", "content": "".join(answer)})
    return stream


async def portal_stream(
    client: aiohttp.ClientSession, base: str, session_key: str, conversation_id: str, question: str = QUESTION
) -> Stream:
    """One message through the portal, as the chat page sends it: a form POST with the session
    and CSRF cookies and the CSRF header; the answer read as raw server-sent events, with the
    same HTTP client (aiohttp) as the direct side, so that neither side's client is the slower."""
    csrf = uuid.uuid4().hex
    headers = {
        "cookie": f"sessionid={session_key}; csrftoken={csrf}",
        "x-csrftoken": csrf,
        "accept": "text/event-stream",
    }
    stream = Stream(started=time.perf_counter())
    try:
        async with client.post(
            f"{base}/chat/{conversation_id}/messages", data={"content": question}, headers=headers
        ) as response:
            if response.status != 200:
                stream.error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
                return stream
            tail = b""
            async for received in response.content.iter_any():
                if stream.first_token is None and DELTA_MARKER in received:
                    stream.first_token = time.perf_counter()
                tail = (tail + received)[-4096:]
            if ERROR_MARKER in tail:
                stream.error = (
                    "error event: " + tail[tail.rfind(ERROR_MARKER) :].decode(errors="replace")[:200]
                )
            elif DONE_MARKER not in tail:
                stream.error = "stream ended without a done event"
    except aiohttp.ClientError as error:
        stream.error = f"{type(error).__name__}: {error}"
    stream.finished = time.perf_counter()
    return stream


async def in_flight(
    make_stream: Any, *, concurrency: int, rounds: int, stagger_seconds: float
) -> list[Stream]:
    """`concurrency` streams in flight: each lane starts at a random moment within the stagger,
    then sends its next message as soon as the previous answer ends. The streams started while
    every lane was under way are marked steady: the latency figures count only those, not the
    ramps up and down."""

    async def lane(index: int) -> list[Stream]:
        await asyncio.sleep(random.uniform(0, stagger_seconds))  # noqa: S311  (spread, not security)
        return [await make_stream(index) for _ in range(rounds)]

    lanes = await asyncio.gather(*(lane(index) for index in range(concurrency)))
    all_started = max(streams[0].started for streams in lanes)
    first_done = min((streams[-1].finished or streams[-1].started) for streams in lanes)
    for streams in lanes:
        for stream in streams:
            stream.steady = all_started <= stream.started <= first_done
    return [stream for streams in lanes for stream in streams]


def summary(title: str, streams: list[Stream]) -> tuple[float, float]:
    ok = [stream for stream in streams if stream.error is None and stream.steady]
    errors = [stream.error for stream in streams if stream.error is not None]
    ttfts = [stream.ttft_ms for stream in ok]
    median, p95 = statistics.median(ttfts), percentile(ttfts, 0.95)
    print(f"\n{title}")
    print(f"  streams               {len(streams)}, {len(ok)} in the steady state  (errors: {len(errors)})")
    for error in sorted(set(errors))[:3]:
        print(f"    e.g. {error}")
    print(f"  time to first token   median {median:.1f} ms, p95 {p95:.1f} ms")
    full = [((stream.finished or stream.started) - stream.started) * 1000 for stream in ok]
    print(f"  full answer           median {statistics.median(full):.0f} ms")
    return median, p95


class CpuUse:
    """CPU seconds of each process, and wall seconds, per side (direct, portal): the client, the
    emulator and the portal share the machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seconds = {side: dict.fromkeys([*pids, "wall"], 0.0) for side in ("direct", "portal")}

    async def phase(self, side: str, streaming: Any) -> list[Stream]:
        """Run one side's streams (the awaitable `streaming`), counting what it costs."""
        before = {name: process_figures(pid)[1] for name, pid in self.pids.items()}
        started = time.perf_counter()
        streamed: list[Stream] = await streaming
        self.seconds[side]["wall"] += time.perf_counter() - started
        for name, pid in self.pids.items():
            self.seconds[side][name] += process_figures(pid)[1] - before[name]
        return streamed

    def report(self, *, streams: int, answers: int) -> None:
        print(f"\nCPU while {streams} streamed, in cores busy (the machine has {os.cpu_count()}):")
        for side, figures in self.seconds.items():
            busy = ", ".join(f"{name} {figures[name] / figures['wall']:.2f}" for name in self.pids)
            print(f"  {side:<7} {busy}")
        portal_cpu = self.seconds["portal"]["portal"]
        print(f"  web process: {portal_cpu / answers * 1000:.1f} ms of CPU per answer")


def clients(endpoint: str, pool: int) -> tuple[openai.AsyncAzureOpenAI, aiohttp.ClientSession]:
    """The SDK straight to the emulator, and the HTTP client that talks to the portal."""
    from provisioning.azure import data_plane_token_provider

    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint,
        api_version="2025-04-01-preview",
        azure_ad_token_provider=data_plane_token_provider(),
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(limits=limits, timeout=httpx2.Timeout(120.0)),
    )
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool),
        timeout=aiohttp.ClientTimeout(total=120),
        cookie_jar=aiohttp.DummyCookieJar(),  # each request carries its person's cookies
    )
    return sdk, http


async def measure(
    *,
    base: str,
    endpoint: str,
    sessions: list[tuple[str, str]],
    streams: int,
    rounds: int,
    burst: int,
    stagger_seconds: float,
    cycles: int,
    portal_pid: int,
    emulator_pid: int,
    before_portal: Any = None,
) -> tuple[list[Stream], list[Stream], list[Stream]]:
    sdk, http = clients(endpoint, pool=max(burst, streams) + 10)
    async with sdk, http:
        # Warm both paths (connections, the portal's SDK client, imports) before measuring.
        # One conversation per simulated person on each side, so that both send the same prompts.
        histories: list[list[dict[str, str]]] = [[] for _ in sessions]
        await asyncio.gather(*(direct_stream(sdk, histories[index]) for index in range(5)))
        await asyncio.gather(*(portal_stream(http, base, *sessions[index]) for index in range(5)))

        # Direct and through the portal by turns, so that whatever else the machine is doing
        # weighs on both sides alike.
        cpu = CpuUse({"client": os.getpid(), "emulator": emulator_pid, "portal": portal_pid})
        direct: list[Stream] = []
        portal: list[Stream] = []

        def lanes(make_stream: Any) -> Any:
            return in_flight(make_stream, concurrency=streams, rounds=rounds, stagger_seconds=stagger_seconds)

        for cycle in range(cycles):
            direct += await cpu.phase("direct", lanes(lambda index: direct_stream(sdk, histories[index])))
            if before_portal is not None and cycle == 0:
                before_portal()
            portal += await cpu.phase(
                "portal", lanes(lambda index: portal_stream(http, base, *sessions[index]))
            )
        many = await asyncio.gather(*(portal_stream(http, base, *sessions[index]) for index in range(burst)))
    cpu.report(streams=streams, answers=len(portal))
    return direct, portal, list(many)


# The run ---------------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--streams", type=int, default=50, help="streams in flight for the latency comparison"
    )
    parser.add_argument("--rounds", type=int, default=4, help="messages per lane in the latency comparison")
    parser.add_argument(
        "--cycles", type=int, default=2, help="turns of direct, then portal, in the latency comparison"
    )
    parser.add_argument("--burst", type=int, default=300, help="concurrent streams that must all complete")
    parser.add_argument("--first-token-ms", type=float, default=200)
    parser.add_argument("--per-token-ms", type=float, default=10)
    parser.add_argument("--stagger-seconds", type=float, default=2.0, help="spread of the lanes' first call")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the web process with py-spy (collapsed stacks) while the portal runs",
    )
    parser.add_argument("--target-median-ms", type=float, default=5.0)
    parser.add_argument("--target-p95-ms", type=float, default=20.0)
    return parser.parse_args()


def portal_environment(*, database_url: str, emulator_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "AZURE_MODE": "emulator",
        "AZURE_EMULATOR_URL": emulator_url,
        # Production settings, minus TLS (the benchmark speaks plain HTTP on loopback).
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-" + uuid.uuid4().hex,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "memory://",
        # Each simulated person sends up to cycles * rounds + 2 messages in the run.
        "CHAT_USER_REQUESTS_PER_MINUTE": "1000",
        "CHAT_USER_TOKENS_PER_MINUTE": "10000000",
    }


def prepare(
    arguments: argparse.Namespace, emulator_url: str, people: int
) -> tuple[str, list[tuple[str, str]]]:
    """The emulator's pace set, the scratch database migrated and seeded: the deployment's
    endpoint and (session key, conversation id) per person."""
    requests.patch(
        f"{emulator_url}/_emulator/settings",
        json={
            "lro_delay_seconds": 0.1,
            "first_token_ms": arguments.first_token_ms,
            "per_token_ms": arguments.per_token_ms,
        },
        timeout=10,
    ).raise_for_status()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    # Capacity for every call of the run at once, so that no 429 (and no SDK retry sleeping
    # out a retry-after) lands in the figures.
    calls = 2 * arguments.cycles * arguments.streams * arguments.rounds + arguments.burst + 20
    # Azure (and the emulator) count each call's max_tokens when they admit it.
    seeded = seed(
        people=people,
        capacity=capacity_for(calls * 4, 400 + settings.CHAT_MAX_ANSWER_TOKENS),
        emulator_url=emulator_url,
    )
    connections.close_all()
    return seeded


class Profiler:
    """py-spy recording the web process (`--profile`), from the first portal phase on."""

    def __init__(self, output: Path | None, pid: int) -> None:
        self.output = output
        self.pid = pid
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.output is None:
            return
        self.process = subprocess.Popen(  # noqa: S603  (fixed arguments)
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.pid)),
                *("--format", "raw", "--output", str(self.output), "--rate", "200"),
                # Sampling without pausing the process, which would add to its latency.
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on interrupt
            self.process.wait(timeout=30)


def report_latency(arguments: argparse.Namespace, direct: list[Stream], through_portal: list[Stream]) -> int:
    """Prints the latency figures; returns how many targets they miss."""
    direct_median, direct_p95 = summary(
        f"directly to the emulator with the openai SDK, {arguments.streams} in flight", direct
    )
    portal_median, portal_p95 = summary(
        f"through the portal (one uvicorn worker), {arguments.streams} in flight", through_portal
    )
    added_median, added_p95 = portal_median - direct_median, portal_p95 - direct_p95
    target_median: float = arguments.target_median_ms
    target_p95: float = arguments.target_p95_ms
    print(
        f"\nportal adds            median {added_median:+.1f} ms (target {target_median:g}), "
        f"p95 {added_p95:+.1f} ms (target {target_p95:g})"
    )
    ratio_median, ratio_p95 = portal_median / direct_median, portal_p95 / direct_p95
    print(f"ratio portal/direct    median {ratio_median:.3f}, p95 {ratio_p95:.3f}")
    return (added_median > target_median) + (added_p95 > target_p95)


def report_burst(arguments: argparse.Namespace, burst: list[Stream]) -> int:
    """Prints how the burst went; returns how many of its streams failed."""
    burst_errors = [stream.error for stream in burst if stream.error is not None]
    completed = len(burst) - len(burst_errors)
    print(f"\n{arguments.burst} concurrent streams through the portal")
    print(f"  completed             {completed}  (errors: {len(burst_errors)})")
    for error in sorted(set(burst_errors))[:3]:
        print(f"    e.g. {error}")
    full = [((s.finished or s.started) - s.started) * 1000 for s in burst if s.error is None]
    if full:
        median, p95 = statistics.median(full), percentile(full, 0.95)
        print(f"  full answer           median {median:.0f} ms, p95 {p95:.0f} ms")
    return len(burst_errors)


def benchmark(arguments: argparse.Namespace, *, emulator: Any, emulator_url: str, workdir: Path) -> int:
    """Seeds, starts the portal, measures and reports; returns the number of failures."""
    database_url, postgres_name = scratch_database(workdir)
    environment = portal_environment(database_url=database_url, emulator_url=emulator_url)
    os.environ.update(environment)
    portal: subprocess.Popen[bytes] | None = None
    profiler: Profiler | None = None
    try:
        endpoint, sessions = prepare(arguments, emulator_url, max(arguments.streams, arguments.burst, 5))
        portal_port, portal_log = free_port(), workdir / "portal.log"
        portal = start_portal(portal_port, environment, portal_log)
        database = "PostgreSQL" if postgres_name else "SQLite"
        emulator_port = emulator_url.rpartition(":")[2]
        print(f"portal pid {portal.pid} (one uvicorn worker) on :{portal_port}; emulator on :{emulator_port}")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared by client, portal and emulator; "
            f"database {database}; emulator first token {arguments.first_token_ms:g} ms, "
            f"{arguments.per_token_ms:g} ms per token"
        )
        profiler = Profiler(arguments.profile, portal.pid)
        direct, through_portal, burst = asyncio.run(
            measure(
                base=f"http://127.0.0.1:{portal_port}",
                endpoint=endpoint,
                sessions=sessions,
                streams=arguments.streams,
                rounds=arguments.rounds,
                burst=arguments.burst,
                stagger_seconds=arguments.stagger_seconds,
                cycles=arguments.cycles,
                portal_pid=portal.pid,
                emulator_pid=emulator.pid,
                before_portal=profiler.start,
            )
        )
        failures = report_latency(arguments, direct, through_portal) + report_burst(arguments, burst)
        peak_mib, cpu = process_figures(portal.pid)
        print(f"\nweb process peak memory {peak_mib:.0f} MiB (VmHWM); CPU time {cpu:.1f} s")
        logged = portal_log.read_text(errors="replace")
        print(f"web process log: {logged.count('Traceback')} tracebacks ({portal_log})")
        return failures + sum(stream.error is not None for stream in [*direct, *through_portal])
    finally:
        if profiler is not None:
            profiler.stop()
        if portal is not None:
            stop_portal(portal)
        if postgres_name:
            from django.db import connections

            connections.close_all()
            drop_database(postgres_name)


def main() -> int:
    arguments = parse_arguments()
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-chat-bench-"))
    emulator_port = free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    emulator = start_emulator(emulator_port, workdir / "emulator.json")
    try:
        failures = benchmark(arguments, emulator=emulator, emulator_url=emulator_url, workdir=workdir)
    finally:
        stop_emulator(emulator)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
