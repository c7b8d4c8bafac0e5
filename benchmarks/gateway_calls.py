"""The calls of the gateway benchmark (gateway.py), the same on every side: the openai SDK's
`AsyncOpenAI` with a base URL and a key, asking for a chat completion by model name. Only the base
URL, the key and the model's name differ between calling Azure directly, Switchyard's gateway and
LiteLLM's proxy."""

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from benchmarks.chat_stream import Stream
from benchmarks.emulator import process_figures

# The emulator answers this in 40 to 250 tokens; max_tokens decides how many are streamed.
PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Explain how to roll out a new internal search service."}
]


@dataclass
class Outcome:
    """One non-streamed call: its HTTP status (0 when no answer came) and how long it took."""

    status: int
    seconds: float
    error: str | None = None


@dataclass
class Side:
    """One way of calling the model: a client, the model's name on that side per deployment
    role ("main", "failover", "thrift"), and the web process in the way (none when direct)."""

    name: str
    client: openai.AsyncOpenAI
    models: dict[str, str]
    pid: int | None = None
    # Clients for roles served at another base URL (direct calls to another account).
    others: dict[str, openai.AsyncOpenAI] = field(default_factory=dict)

    def for_role(self, role: str) -> tuple[openai.AsyncOpenAI, str]:
        return self.others.get(role, self.client), self.models[role]


def sdk_client(base_url: str, api_key: str, *, pool: int) -> openai.AsyncOpenAI:
    """The openai SDK on its aiohttp transport (as the portal calls Azure), without retries: a
    429 is an answer the benchmark counts, not one the client should sleep out. Idle connections
    are dropped before the servers drop them (uvicorn after 5 s), so that no call goes out on a
    connection the server is closing (which the SDK reports as a timeout)."""
    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=2.0)
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(limits=limits, timeout=httpx2.Timeout(120.0)),
    )


def _has_content(data: str) -> bool:
    event = json.loads(data)
    if "error" in event:
        raise ValueError(f"error event: {data[:160]}")
    return any((choice.get("delta") or {}).get("content") for choice in event.get("choices") or [])


async def stream_call(client: openai.AsyncOpenAI, model: str, *, max_tokens: int) -> Stream:
    """One streamed call, timed to its first content token. Only the events up to that one are
    parsed: the client shares the machine with the servers it measures."""
    stream = Stream(started=time.perf_counter())
    try:
        async with client.chat.completions.with_streaming_response.create(
            model=model, messages=PROMPT, max_tokens=max_tokens, stream=True
        ) as response:
            done = False
            async for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    done = True
                elif stream.first_token is None and _has_content(data):
                    stream.first_token = time.perf_counter()
        if stream.first_token is None:
            stream.error = "no content"
        elif not done:
            stream.error = "stream ended without [DONE]"
    except openai.APIStatusError as error:
        stream.error = f"HTTP {error.status_code}: {str(error.message)[:120]}"
    except (openai.OpenAIError, httpx2.HTTPError, ValueError) as error:
        stream.error = f"{type(error).__name__}: {str(error)[:160]}"
    stream.finished = time.perf_counter()
    return stream


async def plain_call(client: openai.AsyncOpenAI, model: str, *, max_tokens: int) -> Outcome:
    """One call without streaming; the answer must carry a choice and its usage."""
    started = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=PROMPT, max_tokens=max_tokens
        )
        body = raw.http_response.json()
        error = None if body.get("choices") and body.get("usage") else f"no choices or usage: {body}"[:160]
        return Outcome(raw.http_response.status_code, time.perf_counter() - started, error)
    except openai.APIStatusError as error:
        return Outcome(error.status_code, time.perf_counter() - started, str(error.message)[:120])
    except (openai.OpenAIError, httpx2.HTTPError, ValueError) as error:
        return Outcome(0, time.perf_counter() - started, f"{type(error).__name__}: {str(error)[:160]}")


async def closed_loop(
    call: Callable[[], Awaitable[Outcome]], *, calls: int, concurrency: int
) -> list[Outcome]:
    """`calls` calls, `concurrency` at a time: each worker sends its next call when its last
    one is answered."""
    remaining = iter(range(calls))
    outcomes: list[Outcome] = []

    async def worker() -> None:
        for _ in remaining:
            outcomes.append(await call())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


class Meter:
    """CPU seconds of each process (client, emulator, each side's web process) and wall seconds,
    per part and side: the processes share the machine, so each side's figures are taken while
    it alone is being called."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seconds: dict[tuple[str, str], dict[str, float]] = {}
        self.calls: dict[tuple[str, str], int] = {}

    async def phase(self, part: str, side: str, work: Awaitable[list]) -> list:  # type: ignore[type-arg]
        before = {name: process_figures(pid)[1] for name, pid in self.pids.items()}
        started = time.perf_counter()
        done = await work
        figures = self.seconds.setdefault((part, side), dict.fromkeys([*self.pids, "wall"], 0.0))
        figures["wall"] += time.perf_counter() - started
        for name, pid in self.pids.items():
            figures[name] += process_figures(pid)[1] - before[name]
        self.calls[(part, side)] = self.calls.get((part, side), 0) + len(done)
        return done

    def wall(self, part: str, side: str) -> float:
        return self.seconds[(part, side)]["wall"]

    def report(self, part: str, sides: list[str]) -> None:
        print(f"  CPU per call, ms (client, emulator, web process); cores busy of {os.cpu_count()}:")
        for side in sides:
            figures, calls = self.seconds[(part, side)], self.calls[(part, side)]
            per_call = {name: figures[name] / calls * 1000 for name in self.pids}
            web = f"{per_call[side]:.2f}" if side in per_call else "-"
            busy = sum(figures[name] for name in self.pids) / figures["wall"]
            print(
                f"    {side:<11} client {per_call['client']:.2f}, emulator {per_call['emulator']:.2f}, "
                f"web process {web}; {busy:.2f} cores busy"
            )
