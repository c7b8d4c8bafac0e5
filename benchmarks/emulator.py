"""Benchmark: many concurrent streaming chat calls against the Azure emulator's data plane.

Starts the emulator as a subprocess on a free port with a throw-away state file, provisions an
account, a GlobalStandard gpt-4o-mini deployment big enough for the whole run and the caller's
data role (through the official management SDKs, as the portal does), sets the latencies (zero
unless asked otherwise) and fires the streaming calls at once. Prints errors, throughput,
latencies and the emulator's peak memory and CPU time, then stops the emulator (also when
something fails).

    .venv/bin/python -m benchmarks.emulator --requests 1000 --tokens 200 --concurrency 1000
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import openai
import requests
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import (
    Account,
    AccountProperties,
    Deployment,
    DeploymentModel,
    DeploymentProperties,
    Sku,
)
from openai.types.chat import ChatCompletionMessageParam

from provisioning.azure import (
    ARM_SCOPE,
    COGNITIVE_SERVICES_SCOPE,
    EmulatorCredential,
    LoopbackBearerTokenPolicy,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
SUBSCRIPTION = "00000000-0000-0000-0000-00000000b0b0"
RESOURCE_GROUP = "rg-benchmark"
PRINCIPAL = "b0b0b0b0-0000-4000-8000-000000000001"
TENANT = "00000000-0000-0000-0000-000000000000"
LOCATION = "swedencentral"
MODEL, VERSION, SKU = "gpt-4o-mini", "2024-07-18", "GlobalStandard"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
API_VERSION = "2025-04-01-preview"
# "in detail" makes the emulator answer at length, so every call runs to max_tokens.
PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a concise assistant for an engineering team."},
    {"role": "user", "content": "Explain in detail how to roll out a new internal search service."},
]
CONTENT_MARKER = b'"delta":{"content":"'
EMPTY_CONTENT = b'"delta":{"content":"",'  # the role chunk
CONNECTIONS_PER_POOL = 50


@dataclass
class CallResult:
    started: float
    first_token: float | None = None
    finished: float | None = None
    tokens: int = 0
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


# The emulator process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raise_file_limit() -> None:
    """Each concurrent stream holds a socket in the client and one in the emulator."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_emulator(port: int, state: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
        [
            *(sys.executable, "-m", "provisioning.emulator"),
            *("--port", str(port), "--state", str(state), "--log-level", "warning"),
        ],
        cwd=PROJECT_DIR,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}")
        try:
            requests.get(f"http://127.0.0.1:{port}/_emulator/", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the emulator did not start within 30 s")


def stop_emulator(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def process_figures(pid: int) -> tuple[float, float]:
    """Peak resident memory (MiB) and CPU time used so far (s) of a process."""
    peak_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return peak_kib / 1024, ticks / os.sysconf("SC_CLK_TCK")


def cpu_by_role(roles: dict[str, int]) -> dict[str, float]:
    """CPU time used so far (s) by every process on the machine, summed by role: a process belongs
    to the role whose pid is its own or its session's (a worker's pool processes share its
    session), PostgreSQL's backends to "postgres", anything else to "other"."""
    by_session = {pid: role for role, pid in roles.items()}
    seconds: dict[str, float] = dict.fromkeys([*roles, "postgres", "other"], 0.0)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        head, _, tail = text.rpartition(")")
        fields = tail.split()
        pid, session = int(entry.name), int(fields[3])
        role = by_session.get(pid) or by_session.get(session)
        if role is None:
            role = "postgres" if head.endswith("(postgres") else "other"
        seconds[role] += (int(fields[11]) + int(fields[12])) / tick
    return seconds


# Provisioning, through the official SDKs ----------------------------------------------------------


def provision(url: str, *, capacity: int, first_token_ms: float, per_token_ms: float) -> str:
    """Account, deployment and data role; returns the account's endpoint."""
    control = f"{url}/_emulator"
    response = requests.patch(
        f"{control}/settings",
        json={"first_token_ms": first_token_ms, "per_token_ms": per_token_ms, "lro_delay_seconds": 0.2},
        timeout=10,
    )
    response.raise_for_status()
    response = requests.put(
        f"{control}/quotas",
        json={"location": LOCATION, "usageName": f"OpenAI.{SKU}.{MODEL}", "limit": capacity},
        timeout=10,
    )
    response.raise_for_status()

    credential = EmulatorCredential(principal_id=PRINCIPAL, tenant_id=TENANT)
    options = {
        "base_url": url,
        "polling_interval": 1,
        "authentication_policy": LoopbackBearerTokenPolicy(credential, ARM_SCOPE),
    }
    cognitive = CognitiveServicesManagementClient(credential, SUBSCRIPTION, **options)  # type: ignore[arg-type]
    account = cognitive.accounts.begin_create(
        RESOURCE_GROUP,
        "oai-bench",
        Account(
            location=LOCATION,
            kind="OpenAI",
            sku=Sku(name="S0"),
            properties=AccountProperties(custom_sub_domain_name="oai-bench", disable_local_auth=True),
        ),
    ).result()
    cognitive.deployments.begin_create_or_update(
        RESOURCE_GROUP,
        "oai-bench",
        "chat",
        Deployment(
            sku=Sku(name=SKU, capacity=capacity),
            properties=DeploymentProperties(
                model=DeploymentModel(format="OpenAI", name=MODEL, version=VERSION)
            ),
        ),
    ).result()
    authorization = AuthorizationManagementClient(credential, SUBSCRIPTION, **options)  # type: ignore[arg-type]
    role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}"
    authorization.role_assignments.create(
        account.id, str(uuid.uuid4()), {"properties": {"roleDefinitionId": role, "principalId": PRINCIPAL}}
    )
    return str(account.properties.endpoint)


def capacity_for(calls: int, tokens: int) -> int:
    """Capacity units so that every call is admitted at once: gpt-4o-mini gets 1,000 TPM and 10
    RPM per unit, and the emulator (like Azure) lets a sixth of the RPM through in a burst."""
    prompt_estimate = 100
    for_tokens = math.ceil(calls * (tokens + prompt_estimate) / 1000)
    for_requests = math.ceil(calls * 6 / 10)
    return max(for_tokens, for_requests) + 10


# The calls ---------------------------------------------------------------------------------------


async def stream_raw(
    client: httpx2.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> CallResult:
    """One streaming call. The events are counted in the raw bytes rather than parsed one by one:
    the client shares the CPUs with the emulator and should not be what the run measures."""
    result = CallResult(started=time.perf_counter())
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return result
            pending = b""
            done = False
            async for received in response.aiter_raw():
                pending += received
                cut = pending.rfind(b"\n\n")
                if cut < 0:
                    continue
                events, pending = pending[: cut + 2], pending[cut + 2 :]
                tokens = events.count(CONTENT_MARKER) - events.count(EMPTY_CONTENT)
                if tokens and result.first_token is None:
                    result.first_token = time.perf_counter()
                result.tokens += tokens
                usage_at = events.find(b',"usage":')
                if usage_at >= 0:
                    event = events[events.rfind(b"data: ", 0, usage_at) : events.find(b"\n\n", usage_at)]
                    result.usage = json.loads(event[len(b"data: ") :])["usage"]
                done = done or b"data: [DONE]\n\n" in events
            if not done:
                result.error = "stream ended without [DONE]"
    except httpx2.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    result.finished = time.perf_counter()
    return result


async def run_raw(
    endpoint: str, token: str, *, calls: int, tokens: int, concurrency: int
) -> list[CallResult]:
    url = f"{endpoint}openai/deployments/chat/chat/completions?api-version={API_VERSION}"
    body = json.dumps(
        {"messages": PROMPT, "max_tokens": tokens, "stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    # httpcore's pool does work per pooled connection on every request, so one pool of a thousand
    # connections costs the client more than the emulator spends serving; shard it.
    pools = math.ceil(concurrency / CONNECTIONS_PER_POOL)
    limits = httpx2.Limits(
        max_connections=CONNECTIONS_PER_POOL, max_keepalive_connections=CONNECTIONS_PER_POOL
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx2.AsyncClient) -> CallResult:
        async with gate:
            return await stream_raw(client, url, body, headers)

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(120.0)))
            for _ in range(pools)
        ]
        return await asyncio.gather(*(one(clients[index % pools]) for index in range(calls)))


async def run_sdk(
    endpoint: str, token: str, *, calls: int, tokens: int, concurrency: int
) -> list[CallResult]:
    gate = asyncio.Semaphore(concurrency)

    async def one(client: openai.AsyncAzureOpenAI) -> CallResult:
        async with gate:
            result = CallResult(started=time.perf_counter())
            try:
                chunks = await client.chat.completions.create(
                    model="chat",
                    messages=PROMPT,
                    max_tokens=tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        result.first_token = result.first_token or time.perf_counter()
                        result.tokens += 1
                    if chunk.usage is not None:
                        result.usage = {"completion_tokens": chunk.usage.completion_tokens}
            except openai.OpenAIError as error:
                result.error = f"{type(error).__name__}: {error}"
            result.finished = time.perf_counter()
            return result

    async with openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint, api_version=API_VERSION, azure_ad_token=token, max_retries=0
    ) as client:
        return await asyncio.gather(*(one(client) for _ in range(calls)))


# Report ------------------------------------------------------------------------------------------


def check(results: list[CallResult], tokens: int) -> None:
    for result in results:
        if result.error is None and result.tokens != tokens:
            result.error = f"{result.tokens} content chunks, expected {tokens}"
        elif result.error is None and result.usage.get("completion_tokens") != result.tokens:
            result.error = f"usage says {result.usage.get('completion_tokens')}, streamed {result.tokens}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def report(title: str, results: list[CallResult], wall: float, tokens: int) -> None:
    check(results, tokens)
    ok = [result for result in results if result.error is None]
    errors = [result.error for result in results if result.error is not None]
    latencies = [(r.finished or r.started) - r.started for r in ok]
    first_tokens = [(r.first_token or r.started) - r.started for r in ok]
    delivered = sum(result.tokens for result in ok)
    print(f"\n{title}")
    print(f"  calls                 {len(results)}  (errors: {len(errors)})")
    for error in sorted(set(errors))[:5]:
        print(f"    e.g. {error}")
    print(f"  total time            {wall:.2f} s")
    print(f"  requests/s            {len(ok) / wall:.0f}")
    print(f"  tokens/s              {delivered / wall:.0f}  ({delivered} content chunks)")
    if ok:
        print(
            f"  full answer           median {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
        )
        print(
            f"  first token           median {statistics.median(first_tokens) * 1000:.0f} ms, "
            f"p95 {percentile(first_tokens, 0.95) * 1000:.0f} ms"
        )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="streaming calls in the raw-HTTP run")
    parser.add_argument("--tokens", type=int, default=200, help="max_tokens of every call (each runs to it)")
    parser.add_argument("--concurrency", type=int, default=1000, help="calls in flight at once")
    parser.add_argument("--sdk-requests", type=int, default=100, help="calls in the openai-SDK run (0: skip)")
    parser.add_argument("--first-token-ms", type=float, default=0, help="the emulator's time to first token")
    parser.add_argument("--per-token-ms", type=float, default=0, help="the emulator's delay between tokens")
    return parser.parse_args()


def raw_run(endpoint: str, token: str, pid: int, arguments: argparse.Namespace) -> int:
    """The raw-HTTP run with its report; returns the number of failed calls."""
    _, cpu_before = process_figures(pid)
    started = time.perf_counter()
    raw = asyncio.run(
        run_raw(
            endpoint,
            token,
            calls=arguments.requests,
            tokens=arguments.tokens,
            concurrency=arguments.concurrency,
        )
    )
    raw_wall = time.perf_counter() - started
    _, cpu_after = process_figures(pid)
    report(
        f"raw httpx2 client, {arguments.requests} streams x {arguments.tokens} tokens",
        raw,
        raw_wall,
        arguments.tokens,
    )
    print(f"  emulator CPU time     {cpu_after - cpu_before:.2f} s during the run")
    return sum(result.error is not None for result in raw)


def sdk_run(endpoint: str, token: str, arguments: argparse.Namespace) -> int:
    """The openai-SDK run with its report; returns the number of failed calls."""
    started = time.perf_counter()
    sdk = asyncio.run(
        run_sdk(
            endpoint,
            token,
            calls=arguments.sdk_requests,
            tokens=arguments.tokens,
            concurrency=min(arguments.sdk_requests, arguments.concurrency),
        )
    )
    report(
        f"openai SDK (AsyncAzureOpenAI), {arguments.sdk_requests} streams",
        sdk,
        time.perf_counter() - started,
        arguments.tokens,
    )
    return sum(result.error is not None for result in sdk)


def report_emulator(url: str, pid: int) -> None:
    usage = requests.get(f"{url}/_emulator/", timeout=10).json()["usage"]
    peak_mib, cpu_total = process_figures(pid)
    print(f"\nemulator peak memory  {peak_mib:.0f} MiB (VmHWM), CPU time in total {cpu_total:.2f} s")
    calls, output = sum(row["requests"] for row in usage), sum(row["outputTokens"] for row in usage)
    print(f"metered by emulator   {calls} calls, {output} output tokens")


def main() -> int:
    arguments = parse_arguments()
    raise_file_limit()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="emulator-bench-") as directory:
        emulator = start_emulator(port, Path(directory) / "state.json")
        try:
            capacity = capacity_for(arguments.requests + arguments.sdk_requests, arguments.tokens)
            endpoint = provision(
                url,
                capacity=capacity,
                first_token_ms=arguments.first_token_ms,
                per_token_ms=arguments.per_token_ms,
            )
            token = (
                EmulatorCredential(principal_id=PRINCIPAL, tenant_id=TENANT)
                .get_token(COGNITIVE_SERVICES_SCOPE)
                .token
            )
            print(f"emulator pid {emulator.pid} on {url}; deployment capacity {capacity} (x1,000 TPM)")
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs shared by client and emulator")
            failures = raw_run(endpoint, token, emulator.pid, arguments)
            if arguments.sdk_requests:
                failures += sdk_run(endpoint, token, arguments)
            report_emulator(url, emulator.pid)
        finally:
            stop_emulator(emulator)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
