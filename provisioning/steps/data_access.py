"""Step 3 of provisioning: the accounts are keyless, so the portal's identity gets Azure OpenAI's
data-plane role on the account; the department's group gets it only where direct access was
decided and the account is the department's alone, and loses it when another department's
deployment lands on the account (provisioning.direct_access)."""

from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from django.conf import settings

from provisioning.azure import authorization_client
from provisioning.direct_access import account_data_access_sync, grant_data_role
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.steps.common import DONE, StepResult


def grant_data_access(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    account = deployment.account
    assert account is not None
    authorization = authorization_client(deployment.landing_zone.subscription_id, retries=0)
    grant_data_role(
        authorization,
        account,
        settings.AZURE_PORTAL_PRINCIPAL_ID,
        "ServicePrincipal",
        for_deployment=deployment,
    )
    account_data_access_sync(account_id=account.pk, for_deployment=deployment)
    return DONE
