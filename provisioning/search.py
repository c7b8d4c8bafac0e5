"""A landing zone's search backend: its Azure AI Search service and embeddings deployment.

The first data set of a zone that needs them asks `search_backend_for(zone)`: the service's row
is made once (its Azure name is deterministic, so a repeated run PUTs the same resource), the
embeddings deployment is an ordinary `ModelDeployment` that the provisioning engine provisions
like any other, and `provision_search_service_task` takes the service's steps: the service in
Azure (keyless), then, once the embeddings deployment is up, the portal's roles on the service;
then the backend is active. The passages index is grounding's and is made by ingestion on first
use (provisioning knows nothing of passages).

Who runs the embeddings deployment: the zone's owner department when the zone is a department's
own subscription (its bill); in a shared zone, the department that runs the zone's shared
services (central IT, as for the company assistant); only when the zone has none, the department
whose data set asked first. Whoever runs it, every embedding call is metered to the department
whose documents or question it embeds, so this decides who sees it in the deployment list, not
who pays for its tokens. It is a shared deployment granted to no department, so no chat offers it.
"""

import hashlib
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from org.models import Department, User
from provisioning.azure import search_management_client
from provisioning.azure_errors import PermanentAzureError
from provisioning.claims import Claim, claimed, claimed_if_free
from provisioning.models import LandingZone, ModelDeployment, SearchService
from provisioning.services import deployment_request_provisioning
from provisioning.steps.common import DONE, StepResult, Wait, poll_seconds
from provisioning.steps.search import ensure_search_service, grant_search_roles

logger = logging.getLogger(__name__)

State = SearchService.State
EMBEDDINGS_DEPLOYMENT_NAME = "grounding-embeddings"
# Offered in most regions; 350K tokens a minute (GROUNDING_EMBEDDINGS_CAPACITY) embeds a few
# hundred pages a minute.
EMBEDDINGS_SKU = ModelDeployment.Sku.GLOBAL_STANDARD


class SearchBackendRefused(Exception):
    """The zone cannot have a search backend as it stands; the message says why, for an admin."""


def search_service_name(zone: LandingZone) -> str:
    """`srch-{zone}-{hash}`: lower case, at most 60 characters, no double dashes (Azure's rule);
    the hash keeps it unique worldwide, as search service names must be."""
    suffix = hashlib.sha256(f"{zone.subscription_id}/{zone.resource_group}".encode()).hexdigest()[:6]
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", zone.slug.lower())).strip("-")[:46]
    return f"srch-{slug}-{suffix}" if slug else f"srch-{suffix}"


def search_backend_for(zone: LandingZone, *, requested_for: Department | None = None) -> SearchService:
    """The zone's search service row; when it has none yet, creates it and queues its provisioning
    (the service through ARM, the embeddings deployment, the portal's data roles on both).
    Idempotent. The caller waits for `state == active` (ingestion retries until then).
    `requested_for`: the department whose data set needs it, which runs the embeddings deployment
    only when the zone has no department of its own to run it."""
    existing = SearchService.objects.select_related("embeddings_deployment").filter(landing_zone=zone).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _create(zone, requested_for)
    except IntegrityError:  # another worker made it a moment ago
        return SearchService.objects.select_related("embeddings_deployment").get(landing_zone=zone)


def _create(zone: LandingZone, requested_for: Department | None) -> SearchService:
    from provisioning.tasks import provision_search_service_task

    # The zone's row, locked: two first data sets of a zone make one backend between them.
    LandingZone.objects.select_for_update().get(pk=zone.pk)
    existing = SearchService.objects.filter(landing_zone=zone).first()
    if existing is not None:
        return existing
    if not zone.allowed_regions:
        raise SearchBackendRefused(f"{zone.name} allows no region to put a search service in.")
    region = zone.allowed_regions[0]
    embeddings = _embeddings_deployment(zone, region, _running_department(zone, requested_for))
    service = SearchService.objects.create(
        landing_zone=zone,
        name=search_service_name(zone),
        location=region,
        sku=settings.GROUNDING_SEARCH_SKU,
        embeddings_deployment=embeddings,
        status_message="Creating the search service and its embeddings deployment.",
        next_step_at=timezone.now(),
    )
    audit_record(
        actor=None,
        verb="search_service.requested",
        target=service,
        department=embeddings.department,
        after={"name": service.name, "location": region, "sku": service.sku, "embeddings": embeddings.pk},
    )
    service_id = service.pk
    transaction.on_commit(lambda: provision_search_service_task.delay(service_id))
    return service


def _running_department(zone: LandingZone, requested_for: Department | None) -> Department:
    if zone.owner_department is not None:
        return zone.owner_department
    shared = (
        ModelDeployment.objects.live()
        .filter(landing_zone=zone, scope=ModelDeployment.Scope.SHARED)
        .select_related("department")
        .order_by("pk")
        .first()
    )
    if shared is not None:
        return shared.department
    if requested_for is not None:
        return requested_for
    raise SearchBackendRefused(
        f"{zone.name} has no department to run its embeddings deployment: it is shared, runs no shared "
        "service yet, and no data set asked for it."
    )


def _embeddings_deployment(zone: LandingZone, region: str, department: Department) -> ModelDeployment:
    """The zone's embeddings deployment, through the engine like any deployment (reused when the
    zone already has a live one of the model under the same name)."""
    deployment = (
        ModelDeployment.objects.live()
        .filter(landing_zone=zone, region=region, name=EMBEDDINGS_DEPLOYMENT_NAME)
        .exclude(state=ModelDeployment.State.FAILED)
        .first()
    )
    if deployment is None:
        deployment = ModelDeployment.objects.create(
            department=department,
            scope=ModelDeployment.Scope.SHARED,
            display_name=f"Grounding embeddings ({zone.name})",
            system_prompt="",
            landing_zone=zone,
            region=region,
            name=EMBEDDINGS_DEPLOYMENT_NAME,
            model_name=settings.GROUNDING_EMBEDDINGS_MODEL,
            model_version=settings.GROUNDING_EMBEDDINGS_VERSION,
            sku=EMBEDDINGS_SKU,
            capacity=settings.GROUNDING_EMBEDDINGS_CAPACITY,
        )
        audit_record(
            actor=None,
            verb="deployment.created",
            target=deployment,
            department=department,
            after={"model": deployment.model_name, "purpose": "grounding embeddings", "zone": zone.slug},
        )
    return deployment_request_provisioning(deployment=deployment)


# Provisioning ----------------------------------------------------------------------------------


def search_service_provision(*, service_id: int) -> float | None:
    """Advance the service's provisioning as far as Azure allows now. Returns seconds until the
    next look, or None when it ended (active or failed). Raises TransientAzureError when Azure
    was busy or unreachable (the task retries with backoff)."""
    # One worker at a time: a duplicate message waits, then finds the service moved on.
    with claimed(Claim.SEARCH_SERVICE, service_id):
        service = SearchService.objects.select_related("landing_zone", "embeddings_deployment").get(
            pk=service_id
        )
        if service.state != State.PROVISIONING:
            return None
        try:
            outcome = _steps(service)
        except PermanentAzureError as error:
            search_service_fail(service_id=service_id, message=str(error))
            return None
        if isinstance(outcome, Wait):
            return outcome.seconds
        _activate(service_id)
        return None


def search_service_schedule_next_step(*, service_id: int, seconds: float) -> None:
    """The task looks again in `seconds`; noted, so a look lost with a worker is sent again."""
    SearchService.objects.filter(pk=service_id, state=State.PROVISIONING).update(
        next_step_at=timezone.now() + timedelta(seconds=seconds)
    )


def search_services_resume_stalled(*, overdue_seconds: float) -> list[int]:
    """Services whose provisioning's next look is long overdue: its message was lost with a worker
    that died holding it. Send it again, unless a worker is on it right now (its claim). Should the
    first message only be late, the two looks take turns under the claim and end together once
    the service is active."""
    from provisioning.tasks import provision_search_service_task

    cutoff = timezone.now() - timedelta(seconds=overdue_seconds)
    resumed = []
    stalled = SearchService.objects.filter(state=State.PROVISIONING, next_step_at__lt=cutoff)
    for service_id in stalled.values_list("pk", flat=True):
        with claimed_if_free(Claim.SEARCH_SERVICE, service_id) as free:
            if free:
                search_service_schedule_next_step(service_id=service_id, seconds=0)
                provision_search_service_task.delay(service_id)
                resumed.append(service_id)
    if resumed:
        logger.warning("Sent the overdue provisioning steps of search services %s again", resumed)
    return resumed


def _steps(service: SearchService) -> StepResult:
    client = search_management_client(service.landing_zone.subscription_id, retries=0)
    waiting = ensure_search_service(service, client)
    if waiting is not DONE:
        return waiting
    embeddings = service.embeddings_deployment
    if embeddings is None:
        raise PermanentAzureError("The search service has no embeddings deployment.")
    embeddings.refresh_from_db(fields=["state", "status_message"])
    if embeddings.state == ModelDeployment.State.FAILED:
        raise PermanentAzureError(
            f"Its embeddings deployment {embeddings.name} could not be provisioned: "
            f"{embeddings.status_message}"
        )
    if embeddings.state != ModelDeployment.State.ACTIVE:
        _note(service, "Waiting for the embeddings deployment to be provisioned.")
        return Wait(poll_seconds())
    return grant_search_roles(service)


def _note(service: SearchService, message: str) -> None:
    if service.status_message != message:
        SearchService.objects.filter(pk=service.pk, state=State.PROVISIONING).update(status_message=message)


def _activate(service_id: int) -> None:
    with transaction.atomic():
        service = SearchService.objects.select_for_update().get(pk=service_id)
        if service.state != State.PROVISIONING:
            return
        service.state = State.ACTIVE
        service.status_message = ""
        service.provisioned_at = timezone.now()
        service.next_step_at = None
        service.save(update_fields=["state", "status_message", "provisioned_at", "next_step_at"])
        _record(service, "search_service.active")
    logger.info("Search service %s is active", service.name)


def search_service_fail(*, service_id: int, message: str) -> None:
    """The provisioning gave up: the service is failed with `message`, for an admin to read."""
    with transaction.atomic():
        service = SearchService.objects.select_for_update().get(pk=service_id)
        if service.state != State.PROVISIONING:
            return
        service.state = State.FAILED
        service.status_message = message
        service.next_step_at = None
        service.save(update_fields=["state", "status_message", "next_step_at"])
        _record(service, "search_service.failed", note=message)
    logger.warning("Search service %s failed: %s", service_id, message)


def search_service_retry(*, service: SearchService, actor: User | None) -> SearchService:
    """Provision a failed service again (its embeddings deployment too, if that failed); a
    platform admin asks for it (the admin's action)."""
    from provisioning.tasks import provision_search_service_task

    with transaction.atomic():
        locked = (
            SearchService.objects.select_for_update(of=("self",))
            .select_related("embeddings_deployment")
            .get(pk=service.pk)
        )
        if locked.state != State.FAILED:
            return locked
        if locked.embeddings_deployment is not None:
            deployment_request_provisioning(deployment=locked.embeddings_deployment)
        locked.state = State.PROVISIONING
        locked.status_message = "Trying again."
        locked.next_step_at = timezone.now()
        locked.save(update_fields=["state", "status_message", "next_step_at"])
        _record(locked, "search_service.retried", actor=actor)
        transaction.on_commit(lambda: provision_search_service_task.delay(locked.pk))
    return locked


def _record(service: SearchService, verb: str, note: str = "", actor: User | None = None) -> None:
    department = service.embeddings_deployment.department if service.embeddings_deployment else None
    audit_record(
        actor=actor,
        verb=verb,
        target=service,
        department=department,
        after={"state": service.state, "endpoint": service.endpoint},
        note=note,
    )
