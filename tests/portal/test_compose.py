"""docker-compose.yml keeps production running on its own: every long-running service restarts
when its process dies, and a failed migration is neither retried in a loop nor run past."""

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parent.parent.parent / "docker-compose.yml"


def services() -> dict[str, dict[str, Any]]:
    # YAML merge keys (`<<: *app`) resolve as Compose resolves them.
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_every_long_running_service_restarts_on_its_own():
    policies = {name: service.get("restart") for name, service in services().items() if name != "migrate"}

    assert {"web", "worker", "beat", "db", "redis"} <= set(policies)
    assert all(policy in {"always", "unless-stopped"} for policy in policies.values()), policies


def test_a_failed_migration_runs_once_and_holds_the_application_back():
    compose = services()

    assert compose["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert compose[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
