"""Step 1 of provisioning: the landing zone's Azure OpenAI account for the deployment's region
and network mode, keyless (Entra ID only), created once and shared by its deployments."""

import functools
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import Account, AccountProperties, NetworkRuleSet, Sku
from django.db import IntegrityError, transaction

from provisioning.azure_errors import PermanentAzureError, azure_call
from provisioning.catalog import region_label
from provisioning.claims import Claim, claimed
from provisioning.models import ModelDeployment, NetworkMode, OpenAIAccount, ProvisioningOperation
from provisioning.steps.common import DONE, MANAGED_BY_TAG, StepResult, Wait, poll_seconds, wait_or_put_again
from provisioning.steps.preflight import preflight


def ensure_account(
    deployment: ModelDeployment, client: CognitiveServicesManagementClient, operation: ProvisioningOperation
) -> StepResult:
    account = _account_row(deployment)
    # The runs that share this account (and a decommissioning run deleting it) take turns while
    # one of them talks to Azure about it.
    with claimed(Claim.ACCOUNT, account.pk):
        account = OpenAIAccount.objects.select_related("landing_zone").get(pk=account.pk)
        deployment.account = account
        return _ensure_in_azure(deployment, account, client, operation)


def _account_row(deployment: ModelDeployment) -> OpenAIAccount:
    """The one account per landing zone, region and network mode, created in the database once."""
    zone = deployment.landing_zone
    where = {"landing_zone": zone, "region": deployment.region, "network_mode": deployment.network_mode}
    account = OpenAIAccount.objects.filter(**where).first()
    if account is not None:
        return account
    name = OpenAIAccount.deterministic_name(zone, deployment.region, deployment.network_mode)
    try:
        with transaction.atomic():
            return OpenAIAccount.objects.create(**where, name=name, custom_subdomain=name)
    except IntegrityError:  # another run created it a moment ago
        return OpenAIAccount.objects.get(**where)


def _ensure_in_azure(
    deployment: ModelDeployment,
    account: OpenAIAccount,
    client: CognitiveServicesManagementClient,
    operation: ProvisioningOperation,
) -> StepResult:
    group = account.landing_zone.resource_group
    put = functools.partial(_put, deployment, account, client)
    try:
        azure = azure_call(
            deployment, "read the Azure OpenAI account", lambda: client.accounts.get(group, account.name)
        )
    except ResourceNotFoundError:
        # About to create an account: first make sure the deployment it is for can exist, so a
        # refusal leaves nothing behind in Azure.
        preflight(deployment, client)
        return put()
    waiting = wait_or_put_again(
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
    _save_as_azure_has_it(account, azure)
    return DONE


def _put(
    deployment: ModelDeployment, account: OpenAIAccount, client: CognitiveServicesManagementClient
) -> Wait:
    group = account.landing_zone.resource_group
    try:
        azure_call(
            deployment,
            "create the Azure OpenAI account",
            lambda: client.accounts.begin_create(group, account.name, _desired(account), polling=False),
        )
    except PermanentAzureError as error:
        if error.code != "FlagMustBeSetForRestore":
            raise
        # A soft-deleted account of the same name holds it: purge, then create afresh.
        azure_call(
            deployment,
            "purge the soft-deleted account",
            lambda: client.deleted_accounts.begin_purge(account.region, group, account.name, polling=False),
        )
    return Wait(poll_seconds())


def _desired(account: OpenAIAccount) -> Account:
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


def _save_as_azure_has_it(account: OpenAIAccount, azure: Any) -> None:
    """What Azure says of the account is true whichever run asked, so it is saved at once (under
    the account's claim), not with the step's outcome."""
    properties = azure.properties
    capabilities = {capability.name: capability.value for capability in properties.capabilities or []}
    account.arm_id = azure.id
    account.endpoint = properties.endpoint
    account.local_auth_disabled = True
    account.content_logging_disabled = capabilities.get("ContentLogging", "").lower() == "false"
    account.state = OpenAIAccount.State.ACTIVE
    account.save(
        update_fields=[
            "arm_id",
            "endpoint",
            "local_auth_disabled",
            "content_logging_disabled",
            "state",
            "updated_at",
        ]
    )
