"""The Azure side of a landing zone's search service (provisioning.search): the
Microsoft.Search/searchServices resource, keyless, and the portal's roles on it.

Like the deployment steps, each first asks Azure what exists and does only what is missing (the
service's name is deterministic), and a long-running creation is started without waiting
(`polling=False`): the step answers `Wait` and the task looks again later."""

import contextlib
import uuid
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.mgmt.search import SearchManagementClient
from azure.mgmt.search.models import SearchService as AzureSearchService
from azure.mgmt.search.models import Sku
from django.conf import settings

from provisioning.azure import authorization_client
from provisioning.azure_errors import PermanentAzureError, azure_call
from provisioning.models import SearchService
from provisioning.steps.common import DONE, MANAGED_BY_TAG, StepResult, Wait, poll_seconds

# Azure AI Search's built-in roles the portal's identity needs at the service: managing the
# passages index, and reading and writing its documents.
SEARCH_SERVICE_CONTRIBUTOR = "7ca78c08-252a-4471-8644-bb5ff32d4ba0"
SEARCH_INDEX_DATA_CONTRIBUTOR = "8ebe5a00-799e-43f5-93ac-243d3dce84a7"
PORTAL_SEARCH_ROLES = (SEARCH_SERVICE_CONTRIBUTOR, SEARCH_INDEX_DATA_CONTRIBUTOR)

# Microsoft.Search reports its provisioningState in lower case, unlike Cognitive Services.
SEARCH_IN_PROGRESS = {"provisioning", "updating", "deleting"}
CREATING_AGAIN = "Azure failed to create the search service; asking it again."


def ensure_search_service(service: SearchService, client: SearchManagementClient) -> StepResult:
    """The service in Azure, keyless (Entra ID tokens only): created when missing, put right when
    someone turned keys back on; its id and endpoint saved on the row once Azure has it."""
    group = service.landing_zone.resource_group
    try:
        azure = azure_call(None, "read the search service", lambda: client.services.get(group, service.name))
    except ResourceNotFoundError:
        return _put(service, client)
    state = str(azure.provisioning_state or "").lower()
    if state in SEARCH_IN_PROGRESS:
        return Wait(poll_seconds())
    if state == "failed":
        # A service Azure failed to create holds nothing: deleted and asked for afresh, once (the
        # note on the service is the attempt's mark).
        if service.status_message == CREATING_AGAIN:
            raise PermanentAzureError(
                f"Azure failed to create the search service {service.name} twice. A platform admin can "
                "provision it again from the admin."
            )
        service.status_message = CREATING_AGAIN
        service.save(update_fields=["status_message"])
        azure_call(
            None, "delete the failed search service", lambda: client.services.delete(group, service.name)
        )
        return _put(service, client)
    if azure.disable_local_auth is not True:
        return _put(service, client)
    service.resource_id = azure.id
    service.endpoint = azure.endpoint or ""
    service.location = azure.location or service.location
    service.save(update_fields=["resource_id", "endpoint", "location"])
    return DONE


def _put(service: SearchService, client: SearchManagementClient) -> Wait:
    group = service.landing_zone.resource_group
    azure_call(
        None,
        "create the search service",
        lambda: client.services.begin_create_or_update(group, service.name, _desired(service), polling=False),
    )
    return Wait(poll_seconds())


def _desired(service: SearchService) -> AzureSearchService:
    return AzureSearchService(
        location=service.location,
        sku=Sku(name=service.sku),
        tags={**MANAGED_BY_TAG, "landing-zone": service.landing_zone.slug},
        replica_count=1,
        partition_count=1,
        # Keyless: no admin key exists to leak; the portal's identity holds roles instead.
        disable_local_auth=True,
    )


def grant_search_roles(service: SearchService) -> StepResult:
    """The portal's identity may manage the service's indexes and read and write their documents."""
    authorization = authorization_client(service.landing_zone.subscription_id, retries=0)
    principal = settings.AZURE_PORTAL_PRINCIPAL_ID
    for role in PORTAL_SEARCH_ROLES:
        _grant(authorization, service, principal, role)
    return DONE


def _grant(client: Any, service: SearchService, principal: str, role: str) -> None:
    subscription = service.landing_zone.subscription_id
    body = {
        "properties": {
            "roleDefinitionId": (
                f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            "principalId": principal,
            "principalType": "ServicePrincipal",
        }
    }
    scope = service.resource_id
    # A name derived from scope, principal and role makes the PUT idempotent.
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal}|{role}"))
    # ResourceExistsError: the same role was granted under another name, which is all we need.
    with contextlib.suppress(ResourceExistsError):
        azure_call(
            None,
            "grant the portal's role on the search service",
            lambda: client.role_assignments.create(scope, name, body),
        )
