"""Failover before the first byte, shared by the chat and the gateway: when Azure answers 429 (the
deployment's rate limit, or a provisioned deployment's capacity) or 503 (the region is busy) to a
call, the call goes to the deployment's next fallback, until one accepts it. Only while nothing
has reached the caller: once Azure has accepted a call, its answer is the caller's, however it
ends. Each refused attempt is recorded, and the call is metered on the deployment that served it.

Which deployments may stand in for which (same model, same data-zone geography, the pay-as-you-go
twin of a provisioned one, never a lower data classification) is the estate's rule:
`provisioning.fallbacks.fallback_chain`.
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai

from provisioning.models import ModelDeployment

R = TypeVar("R")

# Azure's answers that say "not now, not here": another deployment may well take the call.
FAILOVER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Target:
    """A deployment a call may be sent to: what the call needs of it, read before the call."""

    deployment_id: int
    endpoint: str
    name: str  # the deployment's name on its Azure account

    @classmethod
    def of(cls, deployment: ModelDeployment) -> "Target":
        assert deployment.account is not None
        return cls(deployment.pk, deployment.account.endpoint, deployment.name)


@dataclass
class Failover:
    """One call's way through its targets (the deployment first, then its fallbacks): which
    served it and which refused it before."""

    targets: Sequence[Target]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    served: Target | None = None

    @property
    def primary(self) -> Target:
        return self.targets[0]

    async def open(self, start: Callable[[Target, bool], Awaitable[R]]) -> R:
        """`start(target, last)` on each target in turn until one is accepted; a 429 or 503 moves
        on to the next, any other error (or the last target's) is raised. `last` tells `start`
        whether another target remains (with one left, retrying the same deployment only delays
        the call)."""
        for index, target in enumerate(self.targets):
            last = index == len(self.targets) - 1
            started = time.monotonic()
            try:
                result = await start(target, last)
            except openai.APIStatusError as error:
                if last or error.status_code not in FAILOVER_STATUSES:
                    raise
                self.attempts.append(
                    {
                        "deployment": target.deployment_id,
                        "status": error.status_code,
                        "ms": int((time.monotonic() - started) * 1000),
                    }
                )
                continue
            self.served = target
            return result
        raise AssertionError("A failover needs at least one target.")
