"""Benchmark: grounded assistants — ingestion, what retrieval adds to the chat, and isolation.

One emulator (Azure OpenAI and Azure AI Search), the portal as one uvicorn worker, and one Celery
worker with two processes, on a scratch database. Five departments each have a data set of
generated policy PDFs (benchmarks/grounding_corpus.py: a made-up rule per page) behind their own
assistant. The landing zone's search backend is provisioned by the worker through the engine, as
`make run` does. The emulator takes 200 ms to the first token and 10 ms per token.

1. Ingestion: the departments' documents (200 by default, ~10,000 passages) are uploaded through
   the upload service and ingested by the worker's two processes; prints pages per second. While
   they are ingested, people chat with an ungrounded assistant (`--streams` in flight); their time
   to the first token is compared with the same chats on the idle system before and after
   (p95 may move by at most 5 %). This runs `--ingestions` times (then as new versions of every
   file), between idle rounds, and the answers of all the runs are pooled.
2. Retrieval: the same people ask a grounded assistant (rule questions its documents answer) and
   its ungrounded twin (same model, same prompt size order) by turns; prints what retrieval adds
   to the time to the first token (target: median 50 ms, p95 150 ms) and the web process's CPU
   per answer on each side.
3. Isolation: every department's assistant is asked questions only another department's
   documents answer (and its own, for the hit rate); prints `cross-department retrievals: N`
   (must be 0) and how often the right page is among the passages.

    .venv/bin/python -m benchmarks.grounding [--documents-per-department 40] [--pages 25]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/11 \\
      .venv/bin/python -m benchmarks.grounding

With a PostgreSQL DATABASE_URL a fresh database is made and dropped afterwards; REDIS_URL names the
broker's Redis database (its Celery keys are cleared); else SQLite and a folder broker. Exits 1 when
a figure misses its target or a stream fails.
"""

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.admission import machine_speed
from benchmarks.chat_seed import start_portal, stop_portal
from benchmarks.chat_stream import Profiler, Stream, clients, in_flight, portal_environment, portal_stream
from benchmarks.emulator import (
    cpu_by_role,
    free_port,
    percentile,
    process_figures,
    raise_file_limit,
    start_emulator,
    stop_emulator,
)
from benchmarks.grounding_corpus import SUBJECTS, GeneratedDocument, Rule, corpus
from benchmarks.provisioning import (
    drop_database,
    scratch_broker,
    scratch_database,
    start_process,
    stop_processes,
)

SUBSCRIPTION = "00000000-0000-0000-0000-0000000067d5"
REGION, MODEL, VERSION, SKU = "swedencentral", "gpt-4o-mini", "2024-07-18", "GlobalStandard"
PLAIN_QUESTION = "Explain how to roll out a new internal search service."


# Setting up ------------------------------------------------------------------------------------


def seed(arguments: argparse.Namespace, emulator_url: str) -> dict[str, Any]:
    """Departments with a lead each, the zone, its search backend (provisioned by the worker),
    an assistant per department grounded on the department's data set, an ungrounded twin of the
    first one, and `--streams` people of that department signed in with a conversation on each."""
    from django.core.management import call_command

    from benchmarks.chat_seed import signed_in_people
    from grounding.models import DataSet, Grounding
    from org.models import Department, Membership, User
    from provisioning.models import LandingZone
    from provisioning.search import search_backend_for

    call_command("migrate", verbosity=0)
    for model in (MODEL, "text-embedding-3-small"):
        requests.put(
            f"{emulator_url}/_emulator/quotas",
            json={"location": REGION, "usageName": f"OpenAI.{SKU}.{model}", "limit": 1_000_000},
            timeout=10,
        ).raise_for_status()
    zone = LandingZone.objects.create(
        name="Central", slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-grounding-bench",
        allowed_regions=[REGION],
    )  # fmt: skip
    departments, assistants, data_sets = {}, {}, {}
    for slug in SUBJECTS:
        department = Department.objects.create(
            name=slug.upper() if len(slug) <= 2 else slug.title(), slug=slug, cost_center=f"CC-{slug}",
            monthly_budget=10_000_000,
        )  # fmt: skip
        lead = User.objects.create_user(f"lead-{slug}@example.com", None)
        Membership.objects.create(user=lead, department=department, role=Membership.Role.LEAD)
        departments[slug] = department
        data_sets[slug] = DataSet.objects.create(
            department=department, name=f"{department.name} policies", owner=lead, landing_zone=zone,
            created_by=lead,
        )  # fmt: skip
        assistants[slug] = _provisioned(department, zone, f"{slug}-assistant", arguments.capacity)
        Grounding.objects.create(
            deployment=assistants[slug],
            data_set=data_sets[slug],
            state=Grounding.State.ACTIVE,
            requested_by=lead,
        )
    first = next(iter(SUBJECTS))
    plain = _provisioned(departments[first], zone, f"{first}-plain", arguments.capacity)
    search_backend_for(zone, requested_for=departments[first])
    return {
        "zone": zone,
        "departments": departments,
        "assistants": assistants,
        "data_sets": data_sets,
        "grounded_sessions": signed_in_people(
            departments[first], assistants[first], people=arguments.streams
        ),
        "plain_sessions": _more_people(departments[first], plain, arguments.streams),
    }


def _more_people(department: Any, deployment: Any, people: int) -> list[tuple[str, str]]:
    """The same people with a conversation on the ungrounded twin (new sessions, same users)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from chat.models import Conversation
    from org.models import User

    sessions = []
    for number in range(people):
        user = User.objects.get(email=f"bench{number}@example.com")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        conversation = Conversation.objects.create(
            user=user, deployment=deployment, department=department, expires_at=timezone.now()
        )
        assert session.session_key is not None
        sessions.append((session.session_key, str(conversation.pk)))
    return sessions


def _provisioned(department: Any, zone: Any, name: str, capacity: int) -> Any:
    """A deployment whose provisioning is queued for the worker (as an approved request's is)."""
    from provisioning import services
    from provisioning.models import ModelDeployment

    deployment = ModelDeployment.objects.create(
        department=department, display_name=name.replace("-", " ").capitalize(), gateway_name=name,
        system_prompt="You answer questions about the department's policies.", landing_zone=zone,
        region=REGION, name=name, model_name=MODEL, model_version=VERSION, sku=SKU, capacity=capacity,
    )  # fmt: skip
    services.deployment_request_provisioning(deployment=deployment)
    return deployment


def wait_until_provisioned(timeout: float = 300) -> None:
    from provisioning.models import ModelDeployment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = set(ModelDeployment.objects.values_list("state", flat=True))
        if ModelDeployment.State.FAILED in states:
            failed = ModelDeployment.objects.filter(state=ModelDeployment.State.FAILED).first()
            raise RuntimeError(f"provisioning failed: {failed and failed.status_message}")
        if states == {ModelDeployment.State.ACTIVE}:
            return
        time.sleep(0.5)
    raise RuntimeError("the deployments were not provisioned in time")


def wait_for_backend(zone: Any, timeout: float = 180) -> None:
    from provisioning.models import SearchService

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = SearchService.objects.get(landing_zone=zone)
        if service.state == SearchService.State.ACTIVE:
            return
        if service.state == SearchService.State.FAILED:
            raise RuntimeError(f"the search backend failed: {service.status_message}")
        time.sleep(0.5)
    raise RuntimeError("the search backend was not ready in time")


# Part 1: ingestion -----------------------------------------------------------------------------


def upload(documents: list[GeneratedDocument], data_sets: dict[str, Any]) -> float:
    """Every document through the upload service (as the page does); returns when it began."""
    from grounding.services import document_upload

    started = time.perf_counter()
    for document in documents:
        data_set = data_sets[document.department]
        document_upload(data_set=data_set, name=document.name, data=document.data, actor=data_set.owner)
    return started


def ingestion_state() -> dict[str, int]:
    from django.db.models import Count

    from grounding.models import Document

    return dict(Document.objects.order_by().values_list("state").annotate(Count("pk")))


async def chats_while(
    http: Any, base: str, sessions: list[tuple[str, str]], *, streams: int, busy: Any, question: str
) -> list[Stream]:
    """Rounds of `streams` chats in flight, as long as `busy()` says the system is busy."""
    measured: list[Stream] = []
    while busy():
        measured += await in_flight(
            lambda index: ask(http, base, sessions[index], question),
            concurrency=streams,
            rounds=2,
            stagger_seconds=1.0,
        )
    return measured


def ask(http: Any, base: str, session: tuple[str, str], question: str) -> Any:
    """One chat message through the portal from this person's session and conversation."""
    session_key, conversation_id = session
    return portal_stream(http, base, session_key, conversation_id, question)


def ttft(streams: list[Stream]) -> tuple[float, float, int]:
    values = [stream.ttft_ms for stream in streams if stream.error is None and stream.steady]
    if not values:
        return float("nan"), float("nan"), 0
    return statistics.median(values), percentile(values, 0.95), len(values)


async def ingestion_part(
    arguments: argparse.Namespace,
    seeded: dict[str, Any],
    documents: list[GeneratedDocument],
    base: str,
    roles: dict[str, int],
) -> tuple[int, list[str]]:
    """Idle rounds, then `--ingestions` times: the documents uploaded (the first time new, then as
    new versions of every file), chats while they are ingested, and idle rounds again. The idle and
    the busy chats are interleaved so that both sides see the same machine over the same minutes,
    and pooled: the p95 of a hundred answers depends on which few arrived together."""
    _sdk, http = clients("http://127.0.0.1:1", pool=arguments.streams + 10)
    plain = seeded["plain_sessions"]
    failures, lines = 0, []
    idle: list[Stream] = []
    during: list[Stream] = []
    # Per phase: wall seconds and each role's CPU seconds, summed over the cycles.
    spent: dict[str, dict[str, float]] = {}
    ingested: list[tuple[int, float]] = []  # documents' pages and seconds, per cycle
    first = (0, 0)  # passages and embedding tokens after the first ingestion

    def idle_rounds() -> Any:
        rounds = iter(range(arguments.idle_rounds))
        return chats_while(
            http, base, plain, streams=arguments.streams, busy=lambda: next(rounds, None) is not None,
            question=PLAIN_QUESTION,
        )  # fmt: skip

    def ingesting() -> bool:
        state = ingestion_state()
        return any(state.get(name, 0) for name in ("queued", "extracting", "embedding", "indexing"))

    async with http:
        await asyncio.gather(
            *(ask(http, base, plain[index], PLAIN_QUESTION) for index in range(min(5, len(plain))))
        )
        mark = Mark(roles, spent)
        idle += await idle_rounds()
        mark.phase("idle")
        for cycle in range(arguments.ingestions):
            batch = (
                documents
                if cycle == 0
                else corpus(
                    documents_per_department=arguments.documents_per_department,
                    pages=arguments.pages,
                    revision=cycle,
                )
            )
            started = await asyncio.to_thread(upload, batch, seeded["data_sets"])
            mark.phase("uploading")
            during += await chats_while(
                http,
                base,
                plain,
                streams=arguments.streams,
                busy=ingesting,
                question=PLAIN_QUESTION,
            )
            while await asyncio.to_thread(ingesting):
                await asyncio.sleep(0.2)
            ingested.append((sum(document.pages for document in batch), time.perf_counter() - started))
            if cycle == 0:
                first = await asyncio.to_thread(passages_and_tokens)
            mark.phase("ingesting")
            idle += await idle_rounds()
            mark.phase("idle")
    state = ingestion_state()
    (first_pages, first_took), *again = ingested
    lines.append(
        f"ingestion: {len(documents)} documents, {first_pages} pages, {first[0]} passages, "
        f"{first[1]} embedding tokens in {first_took:.1f} s on 2 worker processes"
    )
    lines.append(f"  states at the end: {state}")
    lines.append(
        f"ingestion throughput: {first_pages / first_took:.1f} pages/s, {len(documents) / first_took:.2f} "
        "documents/s"
        + "".join(f"; new versions of all, again: {pages / took:.1f} pages/s" for pages, took in again)
    )
    failures += state.get("failed", 0)
    idle_median, idle_p95, idle_n = ttft(idle)
    busy_median, busy_p95, busy_n = ttft(during)
    lines.append(
        f"ungrounded chats, {arguments.streams} in flight, {arguments.ingestions} ingestions interleaved "
        f"with idle rounds: idle TTFT median {idle_median:.1f} / p95 {idle_p95:.1f} ms ({idle_n} answers); "
        f"while ingesting median {busy_median:.1f} / p95 {busy_p95:.1f} ms ({busy_n} answers)"
    )
    moved = busy_p95 / idle_p95 - 1
    lines.append(
        f"p95 moved while ingesting: {moved * 100:+.1f} % (target at most +5 %); "
        f"median moved {busy_median - idle_median:+.1f} ms"
    )
    lines.append("  cores busy by role (of 2), per phase over all cycles:")
    for phase, seconds in spent.items():
        wall = seconds.pop("wall")
        busy = ", ".join(f"{role} {cpu / wall:.2f}" for role, cpu in seconds.items())
        lines.append(f"    {phase:<10} {wall:6.1f} s: {busy}")
    failures += int(moved > 0.05) + sum(stream.error is not None for stream in [*idle, *during])
    return failures, lines


def passages_and_tokens() -> tuple[int, int]:
    """The passages the documents have, and the tokens embedded for them so far."""
    from django.db.models import Sum

    from grounding.models import Document

    totals = Document.objects.aggregate(Sum("passages"), Sum("embedding_tokens"))
    return totals["passages__sum"] or 0, totals["embedding_tokens__sum"] or 0


class Mark:
    """Adds the wall time and each role's CPU time since the last mark to a phase's totals."""

    def __init__(self, roles: dict[str, int], spent: dict[str, dict[str, float]]) -> None:
        self.roles, self.spent = roles, spent
        self.at, self.cpu = time.perf_counter(), cpu_by_role(roles)

    def phase(self, name: str) -> None:
        at, cpu = time.perf_counter(), cpu_by_role(self.roles)
        totals = self.spent.setdefault(name, {"wall": 0.0})
        totals["wall"] += at - self.at
        for role in cpu:
            totals[role] = totals.get(role, 0.0) + cpu[role] - self.cpu[role]
        self.at, self.cpu = at, cpu


# Part 2: retrieval -----------------------------------------------------------------------------


async def retrieval_part(
    arguments: argparse.Namespace,
    seeded: dict[str, Any],
    rules: list[Rule],
    base: str,
    pids: dict[str, int],
) -> tuple[int, list[str]]:
    portal_pid = pids["portal"]
    profilers = [
        Profiler(arguments.profile / f"{name}.txt" if arguments.profile else None, pid)
        for name, pid in pids.items()
    ]
    _sdk, http = clients("http://127.0.0.1:1", pool=arguments.streams + 10)
    grounded, plain = seeded["grounded_sessions"], seeded["plain_sessions"]
    own = [rule for rule in rules if rule.department == next(iter(SUBJECTS))]
    rng = random.Random(11)  # noqa: S311  (which questions, not secrets)
    sides: dict[str, list[Stream]] = {"plain": [], "grounded": []}
    cpu = {"plain": 0.0, "grounded": 0.0}
    async with http:

        def grounded_call(index: int) -> Any:
            return ask(http, base, grounded[index], rng.choice(own).question)

        def plain_call(index: int) -> Any:
            return ask(http, base, plain[index], PLAIN_QUESTION)

        await asyncio.gather(*(grounded_call(index) for index in range(min(5, len(grounded)))))
        for profiler in profilers:
            profiler.start()
        for _cycle in range(arguments.cycles):
            for side, call in (("plain", plain_call), ("grounded", grounded_call)):
                before = process_figures(portal_pid)[1]
                sides[side] += await in_flight(
                    call, concurrency=arguments.streams, rounds=arguments.rounds, stagger_seconds=1.0
                )
                cpu[side] += process_figures(portal_pid)[1] - before
        for profiler in profilers:
            profiler.stop()
    plain_median, plain_p95, plain_n = ttft(sides["plain"])
    grounded_median, grounded_p95, grounded_n = ttft(sides["grounded"])
    added_median, added_p95 = grounded_median - plain_median, grounded_p95 - plain_p95
    lines = [
        f"chats, {arguments.streams} in flight: ungrounded TTFT median {plain_median:.1f} / p95 "
        f"{plain_p95:.1f} ms ({plain_n}); grounded median {grounded_median:.1f} / p95 {grounded_p95:.1f} ms "
        f"({grounded_n})",
        f"retrieval adds: median {added_median:.1f} ms, p95 {added_p95:.1f} ms (targets 50 / 150); "
        f"ratio {grounded_median / plain_median:.3f} / {grounded_p95 / plain_p95:.3f}",
        "web process CPU per answer: ungrounded "
        f"{cpu['plain'] / max(len(sides['plain']), 1) * 1000:.2f} ms, grounded "
        f"{cpu['grounded'] / max(len(sides['grounded']), 1) * 1000:.2f} ms",
    ]
    errors = sum(stream.error is not None for streams in sides.values() for stream in streams)
    if errors:
        lines.append(f"  stream errors: {errors}")
    return int(added_median > 50) + int(added_p95 > 150) + errors, lines


# Part 3: isolation -----------------------------------------------------------------------------


async def isolation_part(
    arguments: argparse.Namespace, seeded: dict[str, Any], rules: list[Rule]
) -> tuple[int, list[str]]:
    from asgiref.sync import sync_to_async

    from grounding.retrieval import close_clients, grounded_data_sets, retrieve

    rng = random.Random(5)  # noqa: S311  (which questions, not secrets)
    cross, asked, found_own, asked_own = 0, 0, 0, 0
    for slug, assistant in seeded["assistants"].items():
        department = seeded["departments"][slug]
        data_sets = await sync_to_async(grounded_data_sets)(assistant)
        others = [rule for rule in rules if rule.department != slug]
        mine = [rule for rule in rules if rule.department == slug]
        for rule in rng.sample(others, arguments.questions) + rng.sample(mine, arguments.questions):
            passages = await retrieve(
                deployment=assistant, data_sets=data_sets, question=rule.question,
                paying_department_id=department.pk, user_id=None, source="chat",
            )  # fmt: skip
            cross += sum(passage.department_name != department.name for passage in passages)
            if rule.department == slug:
                asked_own += 1
                found_own += any(
                    passage.document_name == rule.document and passage.page == rule.page
                    for passage in passages
                )
            else:
                asked += 1
    await close_clients()
    return int(cross > 0), [
        f"isolation: {asked} questions only another department's documents answer, asked of "
        f"{len(seeded['assistants'])} departments' assistants",
        f"cross-department retrievals: {cross}",
        f"right page among the passages for a department's own questions: {found_own}/{asked_own} "
        f"({found_own / max(asked_own, 1) * 100:.0f} %)",
    ]


# The run ---------------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents-per-department", type=int, default=40)
    parser.add_argument("--pages", type=int, default=25, help="pages per generated document")
    parser.add_argument("--streams", type=int, default=20, help="chats in flight")
    parser.add_argument("--rounds", type=int, default=3, help="messages per lane and side in part 2")
    parser.add_argument("--cycles", type=int, default=4, help="turns of ungrounded, then grounded, in part 2")
    parser.add_argument(
        "--idle-rounds", type=int, default=2, help="idle rounds before and after each ingestion"
    )
    parser.add_argument(
        "--ingestions", type=int, default=3,
        help="in part 1: the documents ingested this many times (then as new versions), between idle rounds",
    )  # fmt: skip
    parser.add_argument("--questions", type=int, default=50, help="per department and kind in part 3")
    parser.add_argument("--capacity", type=int, default=5000, help="chat deployments' capacity (K TPM)")
    parser.add_argument(
        "--embeddings-capacity", type=int, default=20000,
        help="the embeddings deployment's capacity (K TPM): the machine, not the rate limit, sets the pace",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, help="a folder: py-spy records the web process and the emulator in part 2"
    )
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-grounding-bench-"))
    emulator_port = free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    emulator = start_emulator(emulator_port, workdir / "emulator.json")
    database_url, postgres_name = scratch_database(workdir)
    environment = {
        **portal_environment(database_url=database_url, emulator_url=emulator_url),
        **scratch_broker(workdir),
        "DOCUMENTS_DIR": str(workdir / "documents"),
        "GROUNDING_EMBEDDINGS_CAPACITY": str(arguments.embeddings_capacity),
    }
    os.environ.update(environment)
    # This script reads the database between awaits (how far ingestion is): it is alone on it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    processes: list[subprocess.Popen[bytes]] = []
    portal = None
    try:
        requests.patch(
            f"{emulator_url}/_emulator/settings",
            json={"lro_delay_seconds": 0.1, "first_token_ms": 200, "per_token_ms": 10},
            timeout=10,
        ).raise_for_status()
        import django

        django.setup()
        speed = machine_speed()
        processes.append(
            start_process(
                ["worker", "--loglevel=WARNING", "--concurrency=2", f"--logfile={workdir / 'worker.log'}"],
                environment,
                # As the Procfile and docker-compose run it: background work yields to the web.
                nice=10,
            )
        )
        worker_pid = processes[-1].pid
        seeded = seed(arguments, emulator_url)
        wait_for_backend(seeded["zone"])
        wait_until_provisioned()
        documents = corpus(documents_per_department=arguments.documents_per_department, pages=arguments.pages)
        rules = [rule for document in documents for rule in document.rules]
        portal_port = free_port()
        portal = start_portal(portal_port, environment, workdir / "portal.log")
        base = f"http://127.0.0.1:{portal_port}"
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared by client, portal, worker and "
            "emulator; "
            f"10-million-step loop {speed:.2f} s; database {'PostgreSQL' if postgres_name else 'SQLite'}; "
            f"emulator first token 200 ms, 10 ms per token"
        )
        failures = 0
        portal_pid = portal.pid
        for part in (
            lambda: ingestion_part(
                arguments,
                seeded,
                documents,
                base,
                {"client": os.getpid(), "web": portal_pid, "emulator": emulator.pid, "worker": worker_pid},
            ),
            lambda: retrieval_part(
                arguments, seeded, rules, base, {"portal": portal_pid, "emulator": emulator.pid}
            ),
            lambda: isolation_part(arguments, seeded, rules),
        ):
            missed, lines = asyncio.run(part())
            failures += missed
            print("\n" + "\n".join(lines), flush=True)
        return 1 if failures else 0
    finally:
        if portal is not None:
            stop_portal(portal)
        stop_processes(processes)
        stop_emulator(emulator)
        if postgres_name:
            from django.db import connections

            connections.close_all()
            drop_database(postgres_name)


if __name__ == "__main__":
    sys.exit(main())
