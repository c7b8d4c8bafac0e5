"""Per-deployment rate limits, as Azure OpenAI applies them to chat calls.

A deployment of capacity N gets N x the model's requests-per-minute and tokens-per-minute per
unit (from the catalog). Azure admits a request on an *estimate* of its tokens (prompt tokens
plus `max_tokens`) and evaluates requests per minute over short windows, so a deployment may not
spend its whole minute in the first second. Two token buckets reproduce that:
- requests: holds a sixth of the per-minute figure (Azure's 10-second window), at least one;
- tokens: holds the whole per-minute figure.
Both refill continuously. The buckets live in memory only: a restarted emulator starts with full
buckets, as a restarted client would find Azure after a minute.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provisioning.emulator.state import World


@dataclass(frozen=True)
class Limits:
    requests_per_minute: float
    tokens_per_minute: float


@dataclass
class Bucket:
    capacity: float
    per_second: float
    level: float
    updated: float

    @classmethod
    def full(cls, capacity: float, per_minute: float, now: float) -> "Bucket":
        return cls(capacity=capacity, per_second=per_minute / 60, level=capacity, updated=now)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_second)
        self.updated = now

    def seconds_until(self, amount: float) -> float:
        """How long until `amount` can be taken (a minute when it never fits, as Azure answers)."""
        if amount > self.capacity or self.per_second <= 0:
            return 60.0
        return max(0.0, (amount - self.level) / self.per_second)


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted: `kind` is "call" (requests) or "token"."""

    kind: str
    retry_after_seconds: int


@dataclass
class DeploymentLimiter:
    limits: Limits
    requests: Bucket
    tokens: Bucket

    @classmethod
    def start(cls, limits: Limits, now: float) -> "DeploymentLimiter":
        return cls(
            limits=limits,
            requests=Bucket.full(max(1.0, limits.requests_per_minute / 6), limits.requests_per_minute, now),
            tokens=Bucket.full(limits.tokens_per_minute, limits.tokens_per_minute, now),
        )

    def admit(self, estimated_tokens: int, now: float | None = None) -> Refusal | None:
        """Take one request and `estimated_tokens`, or neither and say when to come back."""
        now = time.monotonic() if now is None else now
        self.requests.refill(now)
        self.tokens.refill(now)
        if self.requests.level < 1:
            return Refusal("call", _whole_seconds(self.requests.seconds_until(1)))
        if self.tokens.level < estimated_tokens:
            return Refusal("token", _whole_seconds(self.tokens.seconds_until(estimated_tokens)))
        self.requests.level -= 1
        self.tokens.level -= estimated_tokens
        return None

    def charge(self, tokens: int) -> None:
        """Tokens used beyond the admission estimate (the bucket may go below zero)."""
        self.tokens.level -= tokens

    def remaining(self) -> tuple[int, int]:
        return max(0, math.floor(self.requests.level)), max(0, math.floor(self.tokens.level))


@dataclass
class RateLimiter:
    """The limiters of one emulator world; a reset world (a new object) starts afresh."""

    world: World
    deployments: dict[tuple[str, str], tuple[Any, DeploymentLimiter]] = field(default_factory=dict)

    def for_deployment(
        self, key: tuple[str, str], signature: Any, limits: Callable[[], Limits]
    ) -> DeploymentLimiter:
        """The limiter of deployment `key`; rebuilt when its `signature` (model, SKU, capacity) changes."""
        known = self.deployments.get(key)
        if known is not None and known[0] == signature:
            return known[1]
        limiter = DeploymentLimiter.start(limits(), time.monotonic())
        self.deployments[key] = (signature, limiter)
        return limiter


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))
