"""Removing resources from Azure: a decommissioned deployment and its empty account, what a
failed run created, or what an admin cleans up from the leftovers list. Deletes are started
without waiting; each function answers `Wait` until Azure no longer has the resource."""

import functools
from collections.abc import Callable
from typing import Any, Protocol

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

from provisioning.azure_errors import PermanentAzureError, azure_call
from provisioning.claims import Claim, claimed
from provisioning.models import ModelDeployment, OpenAIAccount, ProvisioningOperation
from provisioning.steps.common import DONE, StepResult, Wait, poll_seconds

# How often Azure may fail to delete a resource (it goes back to provisioningState Failed) before
# the step gives up.
MAX_DELETE_ATTEMPTS = 3


class StepRecord(Protocol):
    """What a step keeps between its looks at Azure: a run's operation row, or a leftover's. The
    step counts attempts on it; its caller saves them with the step's outcome."""

    status: str
    attempt: int


def _delete(
    provisioning_state: str | None, record: StepRecord, delete: Callable[[], Any], *, what: str
) -> Wait:
    """Ask Azure to delete a resource that is still there, unless it is deleting it already; a
    resource that is still there after we asked means Azure failed to delete it."""
    if provisioning_state == "Deleting":
        return Wait(poll_seconds())
    if record.status == ProvisioningOperation.Status.WAITING:
        if record.attempt >= MAX_DELETE_ATTEMPTS:
            raise PermanentAzureError(f"Azure failed to delete {what} {record.attempt} times.")
        record.attempt += 1
    delete()
    return Wait(poll_seconds())


def remove_model_deployment(
    client: CognitiveServicesManagementClient,
    record: StepRecord,
    *,
    group: str,
    account: str,
    name: str,
    deployment: ModelDeployment | None = None,
) -> StepResult:
    """Delete a model deployment; done once Azure no longer has it (or its account)."""
    try:
        azure = azure_call(
            deployment, "read the model deployment", lambda: client.deployments.get(group, account, name)
        )
    except ResourceNotFoundError:
        return DONE
    delete = functools.partial(
        azure_call,
        deployment,
        "delete the model deployment",
        lambda: client.deployments.begin_delete(group, account, name, polling=False),
    )
    return _delete(azure.properties.provisioning_state, record, delete, what=f"the deployment {name}")


def remove_account(
    client: CognitiveServicesManagementClient,
    record: StepRecord,
    *,
    group: str,
    name: str,
    deployment: ModelDeployment | None = None,
) -> StepResult:
    """Delete an account (Azure then keeps it soft-deleted); done once it is no longer live."""
    try:
        azure = azure_call(
            deployment, "read the Azure OpenAI account", lambda: client.accounts.get(group, name)
        )
    except ResourceNotFoundError:
        return DONE
    delete = functools.partial(
        azure_call,
        deployment,
        "delete the Azure OpenAI account",
        lambda: client.accounts.begin_delete(group, name, polling=False),
    )
    return _delete(azure.properties.provisioning_state, record, delete, what=f"the account {name}")


def purge_deleted_account(
    client: CognitiveServicesManagementClient,
    record: StepRecord,
    *,
    region: str,
    group: str,
    name: str,
    deployment: ModelDeployment | None = None,
) -> StepResult:
    """A deleted account holds its quota and name for 48 hours unless purged; done once purged."""
    try:
        azure_call(
            deployment,
            "read the deleted account",
            lambda: client.deleted_accounts.get(region, group, name),
        )
    except ResourceNotFoundError:
        return DONE
    if record.status != ProvisioningOperation.Status.WAITING:
        azure_call(
            deployment,
            "purge the deleted account",
            lambda: client.deleted_accounts.begin_purge(region, group, name, polling=False),
        )
    return Wait(poll_seconds())


def delete_deployment(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    if deployment.account is None:
        return DONE  # never reached Azure
    return remove_model_deployment(
        client,
        operation,
        group=deployment.landing_zone.resource_group,
        account=deployment.account.name,
        name=deployment.name,
        deployment=deployment,
    )


def delete_account(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    assert deployment.account is not None
    # Take turns with a run that is about to create a deployment on this account.
    with claimed(Claim.ACCOUNT, deployment.account.pk):
        account = OpenAIAccount.objects.select_related("landing_zone").get(pk=deployment.account.pk)
        group = account.landing_zone.resource_group
        return remove_account(client, operation, group=group, name=account.name, deployment=deployment)


def purge_account(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    assert deployment.account is not None
    with claimed(Claim.ACCOUNT, deployment.account.pk):
        account = OpenAIAccount.objects.select_related("landing_zone").get(pk=deployment.account.pk)
        return _purge(deployment, account, client, operation)


def _purge(
    deployment: ModelDeployment,
    account: OpenAIAccount,
    client: CognitiveServicesManagementClient,
    operation: ProvisioningOperation,
) -> StepResult:
    group = account.landing_zone.resource_group
    purged = purge_deleted_account(
        client, operation, region=account.region, group=group, name=account.name, deployment=deployment
    )
    if purged is not DONE:
        return purged
    try:
        # Another run may have created the account afresh meanwhile: then it is not deleted.
        azure_call(
            deployment, "read the Azure OpenAI account", lambda: client.accounts.get(group, account.name)
        )
    except ResourceNotFoundError:
        # Azure's truth whichever run asked: saved at once, under the account's claim.
        account.state = OpenAIAccount.State.DELETED
        account.arm_id = account.endpoint = ""
        account.save(update_fields=["state", "arm_id", "endpoint", "updated_at"])
    return DONE
