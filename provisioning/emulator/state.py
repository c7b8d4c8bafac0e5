"""The emulator's world: resources, settings, faults and metered usage, kept in memory and
written atomically to a JSON file after every change, so it survives a restart."""

import asyncio
import json
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.emulator.search.store import SearchData

logger = logging.getLogger("azure_emulator")

DEFAULT_SETTINGS: dict[str, Any] = {
    # How long a long-running operation (account, deployment, purge) reports InProgress.
    "lro_delay_seconds": 2.0,
    # Data plane pacing: time to the first content token, then between tokens.
    "first_token_ms": 250,
    "per_token_ms": 12,
    # A prompt containing one of these is refused with a 400 content_filter error.
    "prompt_block_words": ["build a bomb", "steal passwords"],
    # A prompt containing one of these gets an answer cut with finish_reason "content_filter".
    "stream_block_words": ["gory story"],
    # Sign-in (provisioning/emulator/oidc.py): how many groups an ID token lists before it carries
    # Entra's overage claim instead (200 for a JWT, as Entra), and how long an authorization
    # code may wait to be redeemed.
    "groups_claim_limit": 200,
    "authorization_code_seconds": 600,
}

FAULT_KINDS = {"429", "500", "503", "lro_failure", "drop_stream", "hang"}
OPERATIONS = {
    "*",
    "accounts.put",
    "accounts.get",
    "accounts.delete",
    "accounts.list",
    "accounts.listKeys",
    "deployments.put",
    "deployments.get",
    "deployments.delete",
    "deployments.list",
    "raiPolicies.put",
    "models.list",
    "usages.list",
    "modelCapacities.list",
    "deletedAccounts.purge",
    "roleAssignments.put",
    "roleAssignments.get",
    "roleAssignments.delete",
    "roleAssignments.list",
    "costManagement.query",
    "searchServices.put",
    "searchServices.get",
    "searchServices.delete",
    "searchServices.list",
    "searchServices.listAdminKeys",
    "searchServices.listQueryKeys",
    "search",
    "chat",
    "embeddings",
    "identity.keys",
    "identity.token",
    "graph",
}


class SettingsError(ValueError):
    """A control-endpoint request the emulator cannot take; the message says why."""


@dataclass
class Fault:
    operation: str
    kind: str
    rate: float = 1.0
    remaining: int | None = None
    after_chunks: int = 3
    retry_after_seconds: int = 2
    # A data-plane fault may hit one deployment only (by its name), so that its fallback answers.
    deployment: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> "Fault":
        if not isinstance(body, dict):
            raise SettingsError("a fault is a JSON object")
        unknown = set(body) - {
            "operation",
            "kind",
            "rate",
            "count",
            "after_chunks",
            "retry_after_seconds",
            "deployment",
        }
        if unknown:
            raise SettingsError(f"unknown fault fields: {sorted(unknown)}")
        operation = body.get("operation", "*")
        if operation not in OPERATIONS:
            raise SettingsError(f"operation must be one of {sorted(OPERATIONS)}, not {operation!r}")
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise SettingsError(f"kind must be one of {sorted(FAULT_KINDS)}, not {kind!r}")
        rate = body.get("rate", 1.0)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise SettingsError("rate is a share between 0 and 1")
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise SettingsError("count is a positive whole number of requests")
        after_chunks = body.get("after_chunks", 3)
        if not isinstance(after_chunks, int) or after_chunks < 0:
            raise SettingsError("after_chunks is a whole number of chunks, 0 or more")
        retry_after = body.get("retry_after_seconds", 2)
        if not isinstance(retry_after, int) or retry_after < 0:
            raise SettingsError("retry_after_seconds is a whole number of seconds, 0 or more")
        deployment = body.get("deployment")
        if deployment is not None and (not isinstance(deployment, str) or not deployment):
            raise SettingsError("deployment is a deployment's name")
        return cls(operation, kind, float(rate), count, after_chunks, retry_after, deployment)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "kind": self.kind,
            "rate": self.rate,
            "count": self.remaining,
            "after_chunks": self.after_chunks,
            "retry_after_seconds": self.retry_after_seconds,
            "deployment": self.deployment,
        }


@dataclass
class World:
    """Everything that persists. Resource ids are keyed in lower case (ARM ids are case-insensitive)."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rai_policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    deleted_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    role_assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Azure AI Search services (ARM); their indexes and documents are in `Store.search`.
    search_services: dict[str, dict[str, Any]] = field(default_factory=dict)
    quota_limits: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    faults: list[Fault] = field(default_factory=list)
    # The Entra ID tenant: signing keys, clients, APIs, users (provisioning/emulator/identity_registry.py).
    identity: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "accounts": self.accounts,
            "deployments": self.deployments,
            "rai_policies": self.rai_policies,
            "deleted_accounts": self.deleted_accounts,
            "operations": self.operations,
            "role_assignments": self.role_assignments,
            "search_services": self.search_services,
            "quota_limits": self.quota_limits,
            "usage": self.usage,
            "settings": self.settings,
            "faults": [fault.as_dict() for fault in self.faults],
            "identity": self.identity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "World":
        world = cls(
            accounts=data.get("accounts", {}),
            deployments=data.get("deployments", {}),
            rai_policies=data.get("rai_policies", {}),
            deleted_accounts=data.get("deleted_accounts", {}),
            operations=data.get("operations", {}),
            role_assignments=data.get("role_assignments", {}),
            search_services=data.get("search_services", {}),
            quota_limits=data.get("quota_limits", {}),
            usage=data.get("usage", {}),
            settings={**DEFAULT_SETTINGS, **data.get("settings", {})},
            identity=data.get("identity", {}),
        )
        world.faults = [Fault.parse(fault) for fault in data.get("faults", [])]
        return world


class Store:
    """The world plus its file. Handlers change the world under `lock` and then call `save()`.
    Search indexes and documents, too many for one JSON file, are kept in `search`, written
    through to a SQLite file beside it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = asyncio.Lock()
        self.world = self._load()
        self.search = SearchData(path.with_name(path.stem + ".search.sqlite3") if path is not None else None)
        self._usage_dirty = False

    def _load(self) -> World:
        if self.path is None or not self.path.exists():
            return World()
        try:
            return World.from_json(json.loads(self.path.read_text()))
        except (ValueError, SettingsError) as error:
            # A damaged file must not keep the emulator down; keep it aside for a look.
            aside = self.path.with_suffix(".damaged.json")
            self.path.replace(aside)
            logger.warning(
                "State file %s unreadable (%s); moved to %s, starting empty", self.path, error, aside
            )
            return World()

    def save(self) -> None:
        """Write the world atomically: a crash mid-write leaves the previous file intact."""
        self._usage_dirty = False
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".emulator-", suffix=".json")
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.world.as_json(), handle, separators=(",", ":"))
        os.replace(temporary, self.path)

    def mark_usage_dirty(self) -> None:
        """Metered usage changes on every chat call; it is written by `flush_usage` in batches."""
        self._usage_dirty = True

    async def flush_usage_forever(self, every_seconds: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            if self._usage_dirty:
                async with self.lock:
                    self.save()

    def account_by_subdomain(self, subdomain: str) -> dict[str, Any] | None:
        """A live account by its custom subdomain (the data plane's host name on Azure)."""
        wanted = subdomain.lower()
        for account in self.world.accounts.values():
            if str(account["properties"].get("customSubDomainName", "")).lower() == wanted:
                return account
        return None

    def search_service_by_name(self, name: str) -> dict[str, Any] | None:
        """A search service by its name (its data plane's host name on Azure; unique worldwide)."""
        wanted = name.lower()
        for service in self.world.search_services.values():
            if service["name"].lower() == wanted:
                return service
        return None

    def deployment(self, account: dict[str, Any], name: str) -> dict[str, Any] | None:
        return self.world.deployments.get(account["id"].lower(), {}).get(name)

    def record_usage(
        self,
        *,
        account: dict[str, Any],
        deployment: dict[str, Any],
        prompt_tokens: int,
        cached_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Meter one model call, per account, deployment and UTC day (for Cost Management)."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        key = f"{account['id'].lower()}|{deployment['name']}|{day}"
        row = self.world.usage.get(key)
        if row is None:
            model = deployment["properties"]["model"]
            row = self.world.usage[key] = {
                "accountId": account["id"],
                "location": account["location"],
                "deployment": deployment["name"],
                "model": model["name"],
                "version": model.get("version", ""),
                "sku": deployment["sku"]["name"],
                "date": day,
                "requests": 0,
                "inputTokens": 0,
                "cachedInputTokens": 0,
                "outputTokens": 0,
            }
        row["requests"] += 1
        row["inputTokens"] += prompt_tokens
        row["cachedInputTokens"] += cached_tokens
        row["outputTokens"] += completion_tokens
        self.mark_usage_dirty()

    def reset(self) -> None:
        # The tenant's signing keys outlive a reset, as a real tenant's outlive its resources:
        # tokens issued before still verify, and a relying party's cached key set stays good.
        signing_keys = self.world.identity.get("signing_keys")
        self.world = World()
        self.search.clear()
        if signing_keys:
            self.world.identity["signing_keys"] = signing_keys
        self.save()

    # Fault injection -------------------------------------------------------------------------

    def take_fault(
        self, operation: str, kinds: set[str] | None = None, *, deployment: str | None = None
    ) -> Fault | None:
        """The fault, if any, that hits this request of `operation` (on `deployment`); counted
        faults are used up."""
        for fault in self.world.faults:
            if fault.operation not in ("*", operation):
                continue
            if fault.deployment is not None and fault.deployment != deployment:
                continue
            if kinds is not None and fault.kind not in kinds:
                continue
            if random.random() >= fault.rate:  # noqa: S311  (fault sampling, not security)
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.world.faults.remove(fault)
                self.save()
            return fault
        return None


def now() -> float:
    return time.time()
