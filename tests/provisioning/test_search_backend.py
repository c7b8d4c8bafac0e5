"""A landing zone's search backend, provisioned through the engine against the emulator with the
official SDKs: the keyless search service, the embeddings deployment, the portal's roles."""

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.search.documents.indexes.models import SearchIndex, SimpleField
from django.utils import timezone

from audit.models import AuditEvent
from provisioning.azure import authorization_client, search_index_client, search_management_client
from provisioning.models import ModelDeployment, SearchService
from provisioning.search import search_backend_for, search_service_name, search_services_resume_stalled
from provisioning.steps.search import PORTAL_SEARCH_ROLES
from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION
from tests.factories import make_department, make_deployment, make_landing_zone
from tests.grounding.backend import drive_search_service, provision_search_backend


def test_the_backend_is_provisioned_keyless_with_the_portals_roles(search_backend):
    service = search_backend
    assert service.name == search_service_name(service.landing_zone)
    assert service.endpoint
    assert service.resource_id.endswith(f"/searchServices/{service.name}")
    assert service.provisioned_at is not None
    azure = search_management_client(SUBSCRIPTION).services.get(RESOURCE_GROUP, service.name)
    assert azure.disable_local_auth is True
    assert azure.sku.name == "basic"
    roles = {
        assignment.role_definition_id.rsplit("/", 1)[-1]
        for assignment in authorization_client(SUBSCRIPTION).role_assignments.list_for_scope(
            service.resource_id, filter="atScope()"
        )
    }
    assert set(PORTAL_SEARCH_ROLES) <= roles
    # The portal's token may manage indexes on it: what ingestion needs to make the passages index.
    indexes = search_index_client(service.endpoint)
    indexes.create_or_update_index(
        SearchIndex(name="probe", fields=[SimpleField(name="id", type="Edm.String", key=True)])
    )
    assert [index.name for index in indexes.list_indexes()] == ["probe"]


def test_the_embeddings_deployment_is_a_shared_service_run_by_the_platform(
    search_backend, platform_department, settings
):
    embeddings = search_backend.embeddings_deployment
    assert embeddings.state == ModelDeployment.State.ACTIVE
    assert embeddings.model_name == settings.GROUNDING_EMBEDDINGS_MODEL
    assert embeddings.model_version == settings.GROUNDING_EMBEDDINGS_VERSION
    assert embeddings.scope == ModelDeployment.Scope.SHARED
    assert embeddings.department == platform_department
    # No department is granted it: no chat offers an embeddings model as an assistant.
    assert not embeddings.grants.exists()
    assert embeddings.account is not None
    assert embeddings.account.endpoint


def test_asking_again_makes_nothing_twice(search_backend, search_zone):
    again = search_backend_for(search_zone)
    assert again.pk == search_backend.pk
    assert SearchService.objects.count() == 1
    assert ModelDeployment.objects.filter(name="grounding-embeddings").count() == 1
    # A repeated provisioning message finds the service active and does nothing.
    assert drive_search_service(search_backend.pk).state == SearchService.State.ACTIVE
    verbs = list(
        AuditEvent.objects.filter(object_type="provisioning.searchservice").values_list("verb", flat=True)
    )
    assert verbs == ["search_service.requested", "search_service.active"]


def test_a_departments_own_zone_runs_its_own_embeddings(emulator, settings, db):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    marketing = make_department(name="Marketing")
    zone = make_landing_zone(
        slug="marketing_AI--zone",
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        owner_department=marketing,
        allowed_regions=["swedencentral"],
    )
    service = provision_search_backend(zone)
    assert service.state == SearchService.State.ACTIVE
    assert service.embeddings_deployment.department == marketing
    assert service.name.startswith("srch-marketing-ai-zone-")
    assert len(service.name) <= 60


def test_a_shared_zone_is_run_by_the_department_of_its_shared_services(emulator, db):
    central = make_department(name="Central IT")
    zone = make_landing_zone(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP)
    make_deployment(department=central, landing_zone=zone, shared_with=[make_department(name="Sales")])
    service = search_backend_for(zone, requested_for=make_department(name="HR"))
    assert service.state == SearchService.State.PROVISIONING
    assert service.embeddings_deployment.department == central


def test_azure_refusing_the_service_fails_it_with_a_message(
    emulator, settings, search_zone, platform_department
):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    emulator.inject(operation="searchServices.put", kind="lro_failure", count=2)
    service = provision_search_backend(search_zone, requested_for=platform_department)
    assert service.state == SearchService.State.FAILED
    assert "Azure failed to create the search service" in service.status_message
    assert "twice" in service.status_message


def test_a_service_azure_failed_once_is_asked_again(emulator, settings, search_zone, platform_department):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    emulator.inject(operation="searchServices.put", kind="lro_failure", count=1)
    service = provision_search_backend(search_zone, requested_for=platform_department)
    assert service.state == SearchService.State.ACTIVE


def test_a_failed_embeddings_deployment_fails_the_backend(
    emulator, settings, search_zone, platform_department
):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    service = search_backend_for(search_zone, requested_for=platform_department)
    ModelDeployment.objects.filter(pk=service.embeddings_deployment.pk).update(
        state=ModelDeployment.State.FAILED, status_message="No quota left."
    )
    service = drive_search_service(service.pk)
    assert service.state == SearchService.State.FAILED
    assert "No quota left." in service.status_message


def test_the_passages_index_needs_the_portals_role(search_backend):
    """Without the roles the grant step gave, the same token is refused: the roles are real."""
    client = authorization_client(SUBSCRIPTION)
    for assignment in list(
        client.role_assignments.list_for_scope(search_backend.resource_id, filter="atScope()")
    ):
        client.role_assignments.delete_by_id(assignment.id)
    with pytest.raises(HttpResponseError):
        list(search_index_client(search_backend.endpoint).list_indexes())


def test_a_provisioning_whose_next_look_was_lost_is_sent_again(emulator, search_zone, platform_department):
    service = search_backend_for(search_zone, requested_for=platform_department)
    assert search_services_resume_stalled(overdue_seconds=60) == []  # just made: not overdue
    SearchService.objects.filter(pk=service.pk).update(next_step_at=timezone.now() - timedelta(minutes=5))
    assert search_services_resume_stalled(overdue_seconds=60) == [service.pk]
    # Sent again now: not overdue again until that look is lost too.
    assert search_services_resume_stalled(overdue_seconds=60) == []


def test_an_active_service_has_no_next_look(search_backend):
    assert search_backend.next_step_at is None
    SearchService.objects.filter(pk=search_backend.pk).update(
        next_step_at=timezone.now() - timedelta(hours=1)
    )
    assert search_services_resume_stalled(overdue_seconds=60) == []


def test_an_admin_provisions_a_failed_service_again(
    emulator, settings, search_zone, platform_department, platform_admin, client_for
):
    settings.PROVISIONING_POLL_SECONDS = 0.05
    emulator.inject(operation="searchServices.put", kind="lro_failure", count=2)
    failed = provision_search_backend(search_zone, requested_for=platform_department)
    assert failed.state == SearchService.State.FAILED
    response = client_for(platform_admin).post(
        "/admin/provisioning/searchservice/",
        {"action": "provision_again", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    assert SearchService.objects.get(pk=failed.pk).state == SearchService.State.PROVISIONING
    assert drive_search_service(failed.pk).state == SearchService.State.ACTIVE
    retried = AuditEvent.objects.get(verb="search_service.retried")
    assert retried.actor == platform_admin


def test_a_department_lead_cannot_use_the_admin(search_backend, marketing_lead, client_for):
    response = client_for(marketing_lead).get("/admin/provisioning/searchservice/")
    assert response.status_code == 302  # to the admin's sign-in: not staff
