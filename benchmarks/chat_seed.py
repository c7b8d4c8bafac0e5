"""Setting up the chat benchmark (chat_stream.py): a deployment provisioned on the emulator
through the portal's services, signed-in people with a conversation each, and the portal itself as
one uvicorn worker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.emulator import PROJECT_DIR

SUBSCRIPTION = "00000000-0000-0000-0000-00000000c4a7"
REGION, MODEL, VERSION, SKU = "swedencentral", "gpt-4o-mini", "2024-07-18", "GlobalStandard"
SYSTEM_PROMPT = "You are a concise assistant for an engineering team."


def seed(*, people: int, capacity: int, emulator_url: str) -> tuple[str, list[tuple[str, str]]]:
    """A department, a deployment provisioned on the emulator through the portal's services,
    and `people` members, each with a signed-in session and a conversation. Returns the
    deployment's endpoint and (session key, conversation id) per person."""
    from django.core.management import call_command

    from org.models import Department

    call_command("migrate", verbosity=0)
    requests.put(
        f"{emulator_url}/_emulator/quotas",
        json={"location": REGION, "usageName": f"OpenAI.{SKU}.{MODEL}", "limit": capacity},
        timeout=10,
    ).raise_for_status()
    department = Department.objects.create(
        name="Benchmark", slug="benchmark", cost_center="CC-B", monthly_budget=10_000_000
    )
    deployment = provisioned_deployment(department, capacity=capacity)
    assert deployment.account is not None
    return deployment.account.endpoint, signed_in_people(department, deployment, people=people)


def provisioned_deployment(department: Any, *, capacity: int) -> Any:
    """The department's deployment, provisioned on the emulator as a worker would."""
    from provisioning import services
    from provisioning.models import LandingZone, ModelDeployment

    zone = LandingZone.objects.create(
        name="Bench", slug="bench", subscription_id=SUBSCRIPTION, resource_group="rg-chat-bench"
    )
    deployment = ModelDeployment.objects.create(
        department=department,
        display_name="Benchmark assistant",
        system_prompt=SYSTEM_PROMPT,
        landing_zone=zone,
        region=REGION,
        name="chat-bench",
        model_name=MODEL,
        model_version=VERSION,
        sku=SKU,
        capacity=capacity,
    )
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    deadline = time.monotonic() + 120
    while (wait := services.deployment_provision(deployment_id=deployment.pk, token=token)) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError("provisioning did not finish")
        time.sleep(min(wait, 0.2))
    deployment.refresh_from_db()
    if deployment.state != ModelDeployment.State.ACTIVE or deployment.account is None:
        raise RuntimeError(f"provisioning failed: {deployment.status_message}")
    return deployment


def signed_in_people(department: Any, deployment: Any, *, people: int) -> list[tuple[str, str]]:
    """`people` members of the department, each signed in with a conversation on the deployment:
    (session key, conversation id) per person."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from chat.models import Conversation
    from org.models import Membership, User

    sessions = []
    for number in range(people):
        user = User.objects.create_user(f"bench{number}@example.com", None)
        Membership.objects.create(user=user, department=department)
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


def start_portal(port: int, environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603  (our own app, fixed arguments)
        [
            *(sys.executable, "-m", "uvicorn", "portal.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=PROJECT_DIR,
        env=environment,
        start_new_session=True,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the portal exited with {process.returncode}; see {log}")
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                return process
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        raise RuntimeError("the portal did not start within 30 s")
    except BaseException:
        # Not handed to the caller, so not stopped by it either.
        if process.poll() is None:
            stop_portal(process)
        raise


def stop_portal(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
