"""Setting up the gateway benchmark (gateway.py): the estate on the emulator and in a scratch
database, the department keys, and the LiteLLM proxy that runs beside the portal as the third side.

The estate, provisioned through the portal's own services as a worker would:
- Marketing's assistant (GlobalStandard, big enough for the whole run): the latency and throughput
  parts call it on all three sides;
- Marketing's EU assistant (DataZoneStandard, swedencentral), with its twin in francecentral
  (same model, same data zone) as its fallback: the failover part has the emulator answer 429 to
  every call on the first;
- a Thrift department with its own assistant and only a little of its budget left, for the race.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from benchmarks.emulator import PROJECT_DIR

SUBSCRIPTION = "00000000-0000-0000-0000-0000000ga7e0"
MODEL, VERSION = "gpt-4o-mini", "2024-07-18"
REGION, FALLBACK_REGION = "swedencentral", "francecentral"
# The race's calls ask for long answers, so that each one's reservation is a good share of what
# the department has left.
RACE_MAX_TOKENS = 1_000
THRIFT_BUDGET = Decimal("100.00")

# LiteLLM, pinned; installed with wheels only into its own virtualenv under var/ (never into the
# project's), with uvicorn's C HTTP parser as the portal has it, so both servers parse alike.
LITELLM_VERSION = "1.81.13"
LITELLM_REQUIREMENTS = [f"litellm[proxy]=={LITELLM_VERSION}", "httptools==0.9.0"]
LITELLM_VENV = PROJECT_DIR / "var" / f"litellm-{LITELLM_VERSION}"
LITELLM_MASTER_KEY = "sk-benchmark-master-key"
API_VERSION = "2025-04-01-preview"


@dataclass(frozen=True)
class Target:
    """One deployment as the benchmark calls it: by gateway name through a gateway, by Azure
    deployment name on its account's endpoint when called directly."""

    gateway_name: str
    deployment_name: str
    endpoint: str
    key: str = ""


@dataclass(frozen=True)
class Estate:
    main: Target
    failover: Target  # the deployment that answers 429 to every call
    fallback: Target
    thrift: Target
    thrift_department_id: int
    marketing_department_id: int


# The estate ------------------------------------------------------------------------------------


def seed(*, emulator_url: str, capacity: int, fallback_capacity: int, race_capacity: int) -> Estate:
    """Migrate the scratch database and build the estate; returns what the sides call."""
    from django.core.management import call_command

    from org.models import Department
    from provisioning.models import Fallback, LandingZone, ModelDeployment

    call_command("migrate", verbosity=0)
    for region, sku, units in [
        (REGION, "GlobalStandard", capacity + race_capacity),
        (REGION, "DataZoneStandard", fallback_capacity),
        (FALLBACK_REGION, "DataZoneStandard", fallback_capacity),
    ]:
        requests.put(
            f"{emulator_url}/_emulator/quotas",
            json={"location": region, "usageName": f"OpenAI.{sku}.{MODEL}", "limit": units},
            timeout=10,
        ).raise_for_status()
    marketing = Department.objects.create(
        name="Marketing", slug="marketing", cost_center="CC-2100", monthly_budget=Decimal(10_000_000)
    )
    thrift = Department.objects.create(
        name="Thrift", slug="thrift", cost_center="CC-7700", monthly_budget=THRIFT_BUDGET
    )
    zone = LandingZone.objects.create(
        name="Bench",
        slug="gwbench",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-gateway-bench",
        allowed_regions=[REGION, FALLBACK_REGION],
    )

    def deployment(department: Any, title: str, name: str, region: str, sku: str, units: int) -> Any:
        return provisioned(
            ModelDeployment(
                department=department,
                display_name=title,
                landing_zone=zone,
                region=region,
                name=name,
                model_name=MODEL,
                model_version=VERSION,
                sku=sku,
                capacity=units,
            )
        )

    main = deployment(marketing, "Bench assistant", "bench", REGION, "GlobalStandard", capacity)
    # Thrift's own deployment on the same account: its cost lands on Thrift alone.
    thrifty = deployment(thrift, "Thrift assistant", "thrift", REGION, "GlobalStandard", race_capacity)
    failover = deployment(
        marketing, "Bench EU assistant", "bench-eu", REGION, "DataZoneStandard", fallback_capacity
    )
    fallback = deployment(
        marketing, "Bench EU twin", "bench-eu-twin", FALLBACK_REGION, "DataZoneStandard", fallback_capacity
    )
    Fallback.objects.create(deployment=failover, fallback=fallback, position=1)
    return Estate(
        main=target(main, key=api_key(marketing, "bench", main)),
        failover=target(failover, key=api_key(marketing, "bench-failover", failover)),
        fallback=target(fallback),
        thrift=target(thrifty, key=api_key(thrift, "bench-thrift", thrifty)),
        thrift_department_id=thrift.pk,
        marketing_department_id=marketing.pk,
    )


def provisioned(deployment: Any) -> Any:
    """The deployment saved and provisioned on the emulator through the portal's services."""
    from provisioning import services
    from provisioning.models import ModelDeployment

    deployment.save()
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    deadline = time.monotonic() + 120
    while (wait := services.deployment_provision(deployment_id=deployment.pk, token=token)) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"provisioning {deployment.name} did not finish")
        time.sleep(min(wait, 0.2))
    deployment.refresh_from_db()
    if deployment.state != ModelDeployment.State.ACTIVE or deployment.account is None:
        raise RuntimeError(f"provisioning {deployment.name} failed: {deployment.status_message}")
    return deployment


def target(deployment: Any, *, key: str = "") -> Target:
    return Target(
        gateway_name=deployment.gateway_name,
        deployment_name=deployment.name,
        endpoint=deployment.account.endpoint,
        key=key,
    )


def api_key(department: Any, name: str, deployment: Any) -> str:
    """A department key for one deployment: `manage.py create_api_key` (its last line is the
    key), as a script would make one; through the ORM where the command does not exist yet."""
    from django.core.management import get_commands

    if "create_api_key" in get_commands():
        made = subprocess.run(  # noqa: S603  (our own command, fixed arguments)
            [
                *(sys.executable, "manage.py", "create_api_key"),
                *("--department", department.slug, "--name", name, "--deployment", deployment.gateway_name),
            ],
            cwd=PROJECT_DIR,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip().splitlines()[-1].strip()
    from django.utils import timezone

    from gateway.models import ApiKey
    from gateway.secrets import new_key

    raw, prefix, secret_hash = new_key()
    key = ApiKey.objects.create(
        department=department,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        expires_at=timezone.now() + timedelta(days=1),
    )
    key.deployments.set([deployment])
    return raw


def spend_all_but(*, department_id: int, left: Decimal, deployment_name: str) -> None:
    """Record usage on the department's deployment until only `left` of its budget remains."""
    from money.usage import usage_record_create
    from org.models import Department
    from provisioning.models import ModelDeployment, Price

    department = Department.objects.get(pk=department_id)
    deployment = ModelDeployment.objects.get(department=department, name=deployment_name)
    price = Price.objects.filter(model_name=MODEL, model_version=VERSION, sku=deployment.sku).latest(
        "valid_from"
    )
    tokens = (department.monthly_budget - left) * 1_000_000 / price.output_per_million
    usage_record_create(
        department=department,
        user=None,
        deployment=deployment,
        input_tokens=0,
        cached_input_tokens=0,
        output_tokens=int(tokens),
    )


# LiteLLM -------------------------------------------------------------------------------------


def litellm_python() -> Path:
    """LiteLLM's own virtualenv, made on the first run (wheels only: no package's build code
    runs here), and its interpreter."""
    python = LITELLM_VENV / "bin" / "python"
    marker = LITELLM_VENV / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(LITELLM_REQUIREMENTS):
        return python
    print(f"installing LiteLLM {LITELLM_VERSION} into {LITELLM_VENV.relative_to(PROJECT_DIR)} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)  # noqa: S603
    with (LITELLM_VENV / "install.log").open("w") as log:
        subprocess.run(  # noqa: S603  (pinned requirements)
            [str(python), "-m", "pip", "install", "--only-binary=:all:", *LITELLM_REQUIREMENTS],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    marker.write_text("\n".join(LITELLM_REQUIREMENTS))
    return python


def litellm_config(workdir: Path, estate: Estate, azure_token: str) -> Path:
    """A proxy config with the same deployments under their gateway names, called with the
    portal's own Entra ID token (`azure_ad_token`), and the failover deployment falling back to
    its twin as the portal's does."""

    def model(target: Target) -> dict[str, Any]:
        return {
            "model_name": target.gateway_name,
            "litellm_params": {
                "model": f"azure/{target.deployment_name}",
                "api_base": target.endpoint,
                "api_version": API_VERSION,
                "azure_ad_token": azure_token,
            },
            # So that LiteLLM prices the calls as it would on Azure (its cost tracking).
            "model_info": {"base_model": f"azure/{MODEL}"},
        }

    config = {
        "model_list": [model(t) for t in (estate.main, estate.failover, estate.fallback)],
        "router_settings": {"fallbacks": [{estate.failover.gateway_name: [estate.fallback.gateway_name]}]},
        # One try per deployment, as the portal's gateway does: failover, not retries.
        # And its production advice: no verbose logging.
        "litellm_settings": {
            "num_retries": 0,
            "telemetry": False,
            "set_verbose": False,
            "request_timeout": 600,
        },
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }
    path = workdir / "litellm.json"
    path.write_text(json.dumps(config, indent=2))
    # uvicorn's access log off, as the portal runs without one.
    logging = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
    (workdir / "litellm-logging.json").write_text(json.dumps(logging))
    return path


def start_litellm(python: Path, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """LiteLLM's proxy as its CLI starts it: one uvicorn worker, in this process."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108  (only a fallback)
        # Its price list as shipped, rather than fetched from the internet at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
    }
    process = subprocess.Popen(  # noqa: S603  (fixed arguments)
        [
            *(str(python), str(python.parent / "litellm"), "--config", str(config)),
            *("--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"),
            *("--log_config", str(config.parent / "litellm-logging.json")),
        ],
        cwd=config.parent,
        env=environment,
        start_new_session=True,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LiteLLM exited with {process.returncode}; see {log}")
        try:
            requests.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=5)
            return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"LiteLLM did not start within 120 s; see {log}")


def litellm_version(python: Path) -> str:
    shown = subprocess.run(  # noqa: S603  (fixed arguments)
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'), m.version('openai'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    litellm, openai = shown.stdout.split()
    return f"LiteLLM {litellm} (its openai SDK {openai})"
