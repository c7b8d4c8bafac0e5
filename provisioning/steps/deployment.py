"""Step 4 of provisioning (and the one step of a later run): the model deployment on the account,
with the capacity and model version Switchyard's record says."""

import functools

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

from provisioning.azure_errors import azure_call
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.steps.common import DONE, MANAGED_BY_TAG, StepResult, Wait, poll_seconds, wait_or_put_again


def ensure_deployment(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    assert deployment.account is not None
    group, account = deployment.landing_zone.resource_group, deployment.account.name
    put = functools.partial(_put, deployment, client, group, account)
    try:
        azure = azure_call(
            deployment,
            "read the model deployment",
            lambda: client.deployments.get(group, account, deployment.name),
        )
    except ResourceNotFoundError:
        return put()
    waiting = wait_or_put_again(
        azure.properties.provisioning_state, operation, put, what=f"the deployment {deployment.name}"
    )
    if waiting is not None:
        return waiting
    if (
        azure.sku.capacity != deployment.capacity
        or azure.properties.model.version != deployment.model_version
    ):
        return put()
    deployment.drift = None  # Azure has what Switchyard says, whatever the last drift check saw
    return DONE


def _put(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, group: str, account: str
) -> Wait:
    azure_call(
        deployment,
        "create the model deployment",
        lambda: client.deployments.begin_create_or_update(
            group, account, deployment.name, _desired(deployment), polling=False
        ),
    )
    return Wait(poll_seconds())


def _desired(deployment: ModelDeployment) -> Deployment:
    return Deployment(
        sku=Sku(name=deployment.sku, capacity=deployment.capacity),
        tags=MANAGED_BY_TAG,
        properties=DeploymentProperties(
            model=DeploymentModel(
                format="OpenAI", name=deployment.model_name, version=deployment.model_version
            ),
            rai_policy_name=deployment.content_filter,
            version_upgrade_option="NoAutoUpgrade",
        ),
    )
