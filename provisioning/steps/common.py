"""What every step shares: what it answers (done, or wait and look again), and how it waits for
Azure's long-running operations."""

from collections.abc import Callable
from dataclasses import dataclass

from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from django.conf import settings

from provisioning.azure_errors import PermanentAzureError
from provisioning.models import ModelDeployment, ProvisioningOperation

# Azure's provisioningState while it is still working on a resource.
IN_PROGRESS = {"Accepted", "Creating", "Updating", "Deleting", "Moving", "ResolvingDNS"}
# How often a failed Azure provisioning (provisioningState Failed) is re-tried before giving up.
MAX_PUT_ATTEMPTS = 3
MANAGED_BY_TAG = {"managed-by": "switchyard"}


@dataclass(frozen=True)
class Wait:
    """The step started or found a long-running operation: look again in `seconds`."""

    seconds: float


DONE = None
StepResult = Wait | None

StepFunction = Callable[
    [ModelDeployment, CognitiveServicesManagementClient, ProvisioningOperation], StepResult
]


def poll_seconds() -> float:
    return float(getattr(settings, "PROVISIONING_POLL_SECONDS", 2.0))


def wait_or_put_again(
    provisioning_state: str, operation: ProvisioningOperation, put: Callable[[], Wait], *, what: str
) -> Wait | None:
    """Wait while Azure is still working on a resource; PUT it again when Azure failed to
    create it (as Azure advises, a few times); None once it has succeeded. The attempt is
    counted on `operation`, which the engine saves with the step's outcome."""
    if provisioning_state in IN_PROGRESS:
        return Wait(poll_seconds())
    if provisioning_state != "Failed":
        return None
    if operation.attempt >= MAX_PUT_ATTEMPTS:
        raise PermanentAzureError(f"Azure failed to create {what} {operation.attempt} times.")
    operation.attempt += 1
    return put()
