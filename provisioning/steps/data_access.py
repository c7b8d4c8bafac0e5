"""Step 3 of provisioning: the accounts are keyless, so the portal's identity (and the
department's group) get Azure OpenAI's data-plane role on the account."""

import contextlib
import functools
import uuid

from azure.core.exceptions import ResourceExistsError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from django.conf import settings

from provisioning.azure import authorization_client
from provisioning.azure_errors import azure_call
from provisioning.models import ModelDeployment, ProvisioningOperation
from provisioning.steps.common import DONE, StepResult

OPENAI_USER_ROLE_ID = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User


def grant_data_access(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    """Keyless accounts: the portal's identity (and the department's group) need the data role."""
    assert deployment.account is not None
    scope = deployment.account.arm_id
    subscription = deployment.landing_zone.subscription_id
    role = f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/"
    role += OPENAI_USER_ROLE_ID
    principals = [(settings.AZURE_PORTAL_PRINCIPAL_ID, "ServicePrincipal")]
    if deployment.department.entra_member_group_id:
        principals.append((deployment.department.entra_member_group_id, "Group"))
    authorization = authorization_client(subscription, retries=0)
    for principal, principal_type in principals:
        # A name derived from scope, principal and role makes the PUT idempotent.
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal}|{OPENAI_USER_ROLE_ID}"))
        body = {
            "properties": {
                "roleDefinitionId": role,
                "principalId": principal,
                "principalType": principal_type,
            }
        }
        # ResourceExistsError: the same role was granted under another name, which is all we need.
        with contextlib.suppress(ResourceExistsError):
            azure_call(
                deployment,
                "grant data-plane access",
                functools.partial(authorization.role_assignments.create, scope, name, body),
            )
    return DONE
