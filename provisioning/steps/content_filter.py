"""Step 2 of provisioning: the deployment's content filter (RAI policy) on its account, unless it
is one of Azure's built-in policies."""

import functools

from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import RaiPolicy, RaiPolicyProperties

from provisioning.azure_errors import azure_call
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.steps.common import DONE, StepResult


def ensure_content_filter(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    if deployment.content_filter.startswith("Microsoft."):
        return DONE  # Azure's built-in policies need no resource
    assert deployment.account is not None
    policy = RaiPolicy(
        properties=RaiPolicyProperties(base_policy_name="Microsoft.DefaultV2", mode="Blocking")
    )
    create = functools.partial(
        client.rai_policies.create_or_update,
        deployment.landing_zone.resource_group,
        deployment.account.name,
        deployment.content_filter,
        policy,
    )
    azure_call(deployment, "create the content filter", create)
    return DONE
