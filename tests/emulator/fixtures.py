"""The emulator for tests: one server per session on a free port, reset before each test."""

import time
from typing import Any

import pytest
import requests

from provisioning.emulator.app import build_app
from tests.servers import ThreadedServer

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-switchyard-test"
# Fast but not instant: long-running operations still report InProgress at least once.
TEST_SETTINGS = {"lro_delay_seconds": 0.3, "first_token_ms": 0, "per_token_ms": 0}


class Emulator:
    store: Any = None

    def __init__(self, server: ThreadedServer, state_path) -> None:
        self.server = server
        self.url = server.url
        self.state_path = state_path
        self.control_url = f"{server.url}/_emulator"

    def configure(self, **settings) -> None:
        response = requests.patch(f"{self.control_url}/settings", json=settings, timeout=10)
        assert response.status_code == 200, response.text

    def inject(self, **fault) -> None:
        response = requests.post(f"{self.control_url}/faults", json=fault, timeout=10)
        assert response.status_code == 201, response.text

    def faults(self) -> list[dict[str, object]]:
        return list(requests.get(f"{self.control_url}/", timeout=10).json()["faults"])

    def reset(self) -> None:
        assert requests.post(f"{self.control_url}/reset", timeout=10).status_code == 200
        self.configure(**TEST_SETTINGS)


@pytest.fixture(scope="session")
def emulator_server(tmp_path_factory):
    state_path = tmp_path_factory.mktemp("emulator") / "state.json"
    app = build_app(state_path=state_path)
    with ThreadedServer(app) as server:
        emulator = Emulator(server, state_path)
        # The emulator runs in the test's process: a test may arrange its directory in place.
        emulator.store = app.state.store
        yield emulator


@pytest.fixture
def emulator(emulator_server, settings):
    """A clean emulator, and the portal's Azure settings pointing at it."""
    emulator_server.reset()
    settings.AZURE_MODE = "emulator"
    settings.AZURE_EMULATOR_URL = emulator_server.url
    return emulator_server


@pytest.fixture
def cognitive(emulator):
    """The official management client, as the portal builds it, against the emulator."""
    from provisioning.azure import cognitive_services_client

    return cognitive_services_client(SUBSCRIPTION)


def arm_token() -> str:
    from provisioning.azure import ARM_SCOPE, credential

    return credential().get_token(ARM_SCOPE).token


def keyless_account(name: str = "oai-test", *, location: str = "swedencentral", private: bool = False):
    from azure.mgmt.cognitiveservices.models import Account, AccountProperties, NetworkRuleSet, Sku

    return Account(
        location=location,
        kind="OpenAI",
        sku=Sku(name="S0"),
        properties=AccountProperties(
            custom_sub_domain_name=f"{name}-sub",
            disable_local_auth=True,
            public_network_access="Disabled" if private else "Enabled",
            network_acls=NetworkRuleSet(default_action="Deny" if private else "Allow"),
        ),
    )


def model_deployment(
    model: str = "gpt-4o-mini",
    version: str | None = "2024-07-18",
    *,
    sku: str = "GlobalStandard",
    capacity: int = 20,
):
    from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

    return Deployment(
        sku=Sku(name=sku, capacity=capacity),
        properties=DeploymentProperties(
            model=DeploymentModel(format="OpenAI", name=model, version=version),
            version_upgrade_option="NoAutoUpgrade",
        ),
    )


def drive_run(deployment_id: int, *, limit_seconds: float = 60):
    """Drive the deployment's current provisioning or decommissioning run as the Celery task
    would, until it ends; returns the deployment as it ended."""
    from provisioning import services
    from provisioning.azure_errors import TransientAzureError
    from provisioning.models import ModelDeployment

    deployment = ModelDeployment.objects.get(pk=deployment_id)
    step = (
        services.deployment_decommission
        if deployment.state == ModelDeployment.State.DECOMMISSIONING
        else services.deployment_provision
    )
    token = deployment.run_token
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            wait = step(deployment_id=deployment_id, token=token)
        except TransientAzureError:
            wait = 0.05
        if wait is None:
            return ModelDeployment.objects.select_related("account").get(pk=deployment_id)
        time.sleep(min(wait, 0.05))
    raise AssertionError("the provisioning run did not finish")
