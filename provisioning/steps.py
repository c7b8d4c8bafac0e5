"""The Azure side of each provisioning step, through the official SDK.

Every step first asks Azure what exists and then does only what is missing (resource names are
deterministic), so a repeated or interrupted step creates nothing twice. Long-running operations
are started without waiting (`polling=False`): a step answers `Wait` and the run looks again
later. Azure's errors are sorted into "try again later" and "tell the lead, in their words".
"""

import contextlib
import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import (
    Account,
    AccountProperties,
    Deployment,
    DeploymentModel,
    DeploymentProperties,
    NetworkRuleSet,
    RaiPolicy,
    RaiPolicyProperties,
    Sku,
)
from django.conf import settings
from django.db import IntegrityError, transaction

from provisioning.azure import authorization_client
from provisioning.models import ModelDeployment, NetworkMode, OpenAIAccount, ProvisioningOperation

OPENAI_USER_ROLE_ID = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
IN_PROGRESS = {"Accepted", "Creating", "Updating", "Deleting", "Moving", "ResolvingDNS"}
# How often a failed Azure provisioning (provisioningState Failed) is re-tried before giving up.
MAX_PUT_ATTEMPTS = 3
MANAGED_BY_TAG = {"managed-by": "switchyard"}


class TransientAzureError(Exception):
    """Azure was busy or unreachable: try the same step again later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentAzureError(Exception):
    """Azure refused for a reason that retrying cannot fix; the message is for a lead to read.

    `created_nothing`: the refusal came before the run asked Azure to create anything.
    """

    def __init__(self, message: str, *, code: str = "", created_nothing: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.created_nothing = created_nothing


@dataclass(frozen=True)
class Wait:
    """The step started or found a long-running operation: look again in `seconds`."""

    seconds: float


DONE = None
StepResult = Wait | None


def poll_seconds() -> float:
    return float(getattr(settings, "PROVISIONING_POLL_SECONDS", 2.0))


StepFunction = Callable[
    [ModelDeployment, CognitiveServicesManagementClient, ProvisioningOperation], StepResult
]


def azure_call(deployment: ModelDeployment | None, action: str, call: Callable[[], Any]) -> Any:
    """Run one SDK call, sorting Azure's errors into "try again later" and "tell the lead" (in
    the words of the deployment's lead when the call is for one)."""
    try:
        return call()
    except ResourceNotFoundError:
        raise
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientAzureError(f"Azure could not be reached to {action}: {error}") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        code = error.error.code if error.error else ""
        if status == 429 or status >= 500 or code in {"Conflict", "AnotherOperationInProgress"}:
            raise TransientAzureError(
                f"Azure was busy ({status} {code}) when asked to {action}; retrying.",
                retry_after=_retry_after(error),
            ) from error
        raise PermanentAzureError(
            _explain(deployment, action, status, code or "", _message(error)), code=code or ""
        ) from error


def _retry_after(error: HttpResponseError) -> float | None:
    headers: Any = getattr(error.response, "headers", None) or {}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if headers.get(name):
            try:
                return float(headers[name]) / 1000
            except ValueError:
                pass
    try:
        return float(headers["retry-after"]) if headers.get("retry-after") else None
    except ValueError:
        return None


def _message(error: HttpResponseError) -> str:
    return (error.error.message if error.error and error.error.message else error.message) or str(error)


@functools.cache
def _region_names() -> dict[str, str]:
    data = json.loads((settings.BASE_DIR / "provisioning" / "data" / "catalog.json").read_text())
    return {region["name"]: region["displayName"] for region in data["regions"]}


def region_label(region: str) -> str:
    return _region_names().get(region, region)


def _explain(deployment: ModelDeployment | None, action: str, status: int, code: str, message: str) -> str:
    """Azure's refusal, said so that a department lead understands what to change."""
    if deployment is None:
        return f"Azure refused to {action} ({code or status}): {message}"
    where = region_label(deployment.region)
    unit = "PTU" if deployment.is_provisioned_sku else "K TPM"
    if code == "InsufficientQuota":
        available = re.search(r"current available capacity (\d+(?:\.\d+)?)", message)
        left = f"{float(available.group(1)):g}{unit}" if available else "not enough"
        return (
            f"{where} has {left} of {deployment.model_name} ({deployment.sku}) left in this subscription; "
            f"you asked for {deployment.capacity}{unit}. "
            "Ask for less, pick another region, or ask the platform team for more quota."
        )
    if code in {"DeploymentModelNotSupported", "InvalidResourceProperties", "InvalidCapacity"}:
        what = f"{deployment.model_name} {deployment.model_version}"
        what += f" ({deployment.sku}, {deployment.capacity_label})"
        return f"{what} cannot be deployed in {where}: {message}"
    if status in {401, 403} or code in {
        "AuthorizationFailed",
        "AuthenticationFailed",
        "LinkedAuthorizationFailed",
    }:
        zone = deployment.landing_zone
        return (
            f"Switchyard's identity may not {action} in subscription {zone.subscription_id} "
            f"(resource group {zone.resource_group}). Ask the platform team to grant it access there. "
            f"Azure said: {message}"
        )
    return f"Azure refused to {action} ({code or status}): {message}"


def _account_for(deployment: ModelDeployment) -> OpenAIAccount:
    """The one account per landing zone, region and network mode, created in the database once."""
    zone = deployment.landing_zone
    name = OpenAIAccount.deterministic_name(zone, deployment.region, deployment.network_mode)
    try:
        with transaction.atomic():
            account, _ = OpenAIAccount.objects.get_or_create(
                landing_zone=zone,
                region=deployment.region,
                network_mode=deployment.network_mode,
                defaults={"name": name, "custom_subdomain": name},
            )
    except IntegrityError:  # another run created it a moment ago
        account = OpenAIAccount.objects.get(
            landing_zone=zone, region=deployment.region, network_mode=deployment.network_mode
        )
    # Serialise the runs that share this account while one of them talks to Azure about it.
    return OpenAIAccount.objects.select_for_update().get(pk=account.pk)


def _wait_or_put_again(
    provisioning_state: str, operation: ProvisioningOperation, put: Callable[[], Wait], *, what: str
) -> Wait | None:
    """Wait while Azure is still working on a resource; PUT it again when Azure failed to
    create it (as Azure advises, a few times); None once it has succeeded."""
    if provisioning_state in IN_PROGRESS:
        return Wait(poll_seconds())
    if provisioning_state != "Failed":
        return None
    if operation.attempt >= MAX_PUT_ATTEMPTS:
        raise PermanentAzureError(f"Azure failed to create {what} {operation.attempt} times.")
    operation.attempt += 1
    operation.save(update_fields=["attempt"])
    return put()


def _preflight(deployment: ModelDeployment, client: CognitiveServicesManagementClient) -> None:
    """Refuse, in a lead's words, what the region does not offer or its quota cannot hold."""
    region = deployment.region
    models = azure_call(deployment, "read the region's models", lambda: list(client.models.list(region)))
    usage_name = next(
        (
            sku.usage_name
            for offer in models
            if offer.model.name == deployment.model_name and offer.model.version == deployment.model_version
            for sku in offer.model.skus or []
            if sku.name == deployment.sku
        ),
        None,
    )
    if usage_name is None:
        raise PermanentAzureError(
            _explain(
                deployment,
                "create the deployment",
                400,
                "DeploymentModelNotSupported",
                f"{region_label(region)} does not offer it.",
            ),
            code="DeploymentModelNotSupported",
            created_nothing=True,
        )
    usages = azure_call(deployment, "read the region's quota", lambda: list(client.usages.list(region)))
    quota = next((usage for usage in usages if usage.name.value == usage_name), None)
    if quota is not None and quota.current_value + deployment.capacity > quota.limit:
        available = max(quota.limit - quota.current_value, 0)
        raise PermanentAzureError(
            _explain(
                deployment,
                "create the deployment",
                400,
                "InsufficientQuota",
                f"current available capacity {available:g}",
            ),
            code="InsufficientQuota",
            created_nothing=True,
        )


def _desired_account(account: OpenAIAccount, deployment: ModelDeployment) -> Account:
    private = account.network_mode == NetworkMode.PRIVATE
    return Account(
        location=account.region,
        kind="OpenAI",
        sku=Sku(name="S0"),
        tags={**MANAGED_BY_TAG, "landing-zone": account.landing_zone.slug},
        properties=AccountProperties(
            custom_sub_domain_name=account.custom_subdomain,
            disable_local_auth=True,
            public_network_access="Disabled" if private else "Enabled",
            network_acls=NetworkRuleSet(default_action="Deny" if private else "Allow"),
        ),
    )


def ensure_account(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    account = _account_for(deployment)
    deployment.account = account
    deployment.save(update_fields=["account"])
    group = account.landing_zone.resource_group

    def put() -> Wait:
        try:
            azure_call(
                deployment,
                "create the Azure OpenAI account",
                lambda: client.accounts.begin_create(
                    group, account.name, _desired_account(account, deployment), polling=False
                ),
            )
        except PermanentAzureError as error:
            if error.code != "FlagMustBeSetForRestore":
                raise
            # A soft-deleted account of the same name holds it: purge, then create afresh.
            azure_call(
                deployment,
                "purge the soft-deleted account",
                lambda: client.deleted_accounts.begin_purge(
                    account.region, group, account.name, polling=False
                ),
            )
        return Wait(poll_seconds())

    try:
        azure = azure_call(
            deployment, "read the Azure OpenAI account", lambda: client.accounts.get(group, account.name)
        )
    except ResourceNotFoundError:
        # About to create an account: first make sure the deployment it is for can exist, so a
        # refusal leaves nothing behind in Azure.
        _preflight(deployment, client)
        return put()
    waiting = _wait_or_put_again(
        azure.properties.provisioning_state,
        operation,
        put,
        what=f"the account {account.name} in {region_label(account.region)}",
    )
    if waiting is not None:
        return waiting
    properties = azure.properties
    if (
        properties.disable_local_auth is not True
        or properties.custom_sub_domain_name != account.custom_subdomain
    ):
        return put()  # someone changed it behind our back: put it right
    capabilities = {capability.name: capability.value for capability in properties.capabilities or []}
    account.arm_id = azure.id
    account.endpoint = properties.endpoint
    account.local_auth_disabled = True
    account.content_logging_disabled = capabilities.get("ContentLogging", "").lower() == "false"
    account.state = OpenAIAccount.State.ACTIVE
    account.save()
    return DONE


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


def _desired_deployment(deployment: ModelDeployment) -> Deployment:
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


def ensure_deployment(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    assert deployment.account is not None
    group, account = deployment.landing_zone.resource_group, deployment.account.name

    def put() -> Wait:
        azure_call(
            deployment,
            "create the model deployment",
            lambda: client.deployments.begin_create_or_update(
                group, account, deployment.name, _desired_deployment(deployment), polling=False
            ),
        )
        return Wait(poll_seconds())

    try:
        azure = azure_call(
            deployment,
            "read the model deployment",
            lambda: client.deployments.get(group, account, deployment.name),
        )
    except ResourceNotFoundError:
        return put()
    waiting = _wait_or_put_again(
        azure.properties.provisioning_state, operation, put, what=f"the deployment {deployment.name}"
    )
    if waiting is not None:
        return waiting
    if (
        azure.sku.capacity != deployment.capacity
        or azure.properties.model.version != deployment.model_version
    ):
        return put()
    deployment.drift = None
    deployment.save(update_fields=["drift"])
    return DONE
