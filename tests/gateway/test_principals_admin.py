"""Platform admins register service principals for departments in Django admin; every
registration, change and removal leaves an audit event."""

import uuid

import pytest

from audit.models import AuditEvent
from gateway.models import ServicePrincipal
from tests.factories import make_deployment

ADD = "/admin/gateway/serviceprincipal/add/"
LIST = "/admin/gateway/serviceprincipal/"


@pytest.fixture
def copy_assistant(marketing):
    return make_deployment(department=marketing, display_name="Copy assistant")


APPLICATION_ID = "3b2f6c1d-9e4a-4f7b-8c5d-6a1e2f3b4c5d"


def form(department, deployments, **changes):
    return {
        "name": "Campaign reporter",
        "department": department.pk,
        "object_id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
        "application_id": APPLICATION_ID,
        "enabled": "on",
        "deployments": [deployment.pk for deployment in deployments],
        "requests_per_minute": "60",
        "tokens_per_minute": "",
        **changes,
    }


def registered(department, deployments, **fields) -> ServicePrincipal:
    principal = ServicePrincipal.objects.create(
        department=department,
        name="Campaign reporter",
        object_id=uuid.uuid4(),
        application_id=APPLICATION_ID,
        **fields,
    )
    principal.deployments.set(deployments)
    return principal


class TestWhoMayRegister:
    def test_anonymous_is_sent_to_sign_in(self, client):
        response = client.get(ADD)

        assert response.status_code == 302
        assert "/login/" in response["Location"]

    def test_a_department_lead_is_not_let_in(self, client_for, marketing_lead):
        response = client_for(marketing_lead).get(ADD)

        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_finance_may_look_but_not_register(self, client_for, finance_approver, marketing, copy_assistant):
        finance_approver.is_staff = True
        finance_approver.save()
        finance_client = client_for(finance_approver)

        assert finance_client.get(LIST).status_code == 200
        assert finance_client.post(ADD, form(marketing, [copy_assistant])).status_code == 403
        assert not ServicePrincipal.objects.exists()

    def test_a_platform_admin_registers_one(self, client_for, platform_admin, marketing, copy_assistant):
        response = client_for(platform_admin).post(ADD, form(marketing, [copy_assistant]))

        assert response.status_code == 302, response.content.decode()[:2000]
        principal = ServicePrincipal.objects.get()
        assert principal.department == marketing
        assert str(principal.object_id) == "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
        assert list(principal.deployments.all()) == [copy_assistant]
        assert principal.requests_per_minute == 60
        assert principal.registered_by == platform_admin
        event = AuditEvent.objects.get(verb="service_principal.registered")
        assert event.actor == platform_admin
        assert event.after["department"] == "marketing"
        assert event.after["deployments"] == [copy_assistant.gateway_name]
        assert event.after["object_id"] == "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


class TestRegistrationRules:
    def test_deployments_the_department_may_not_use_are_refused(
        self, client_for, platform_admin, marketing, finance
    ):
        finance_only = make_deployment(department=finance, display_name="Ledger assistant")

        response = client_for(platform_admin).post(ADD, form(marketing, [finance_only]))

        assert response.status_code == 200
        assert "Marketing may not use Ledger assistant" in response.content.decode()
        assert not ServicePrincipal.objects.exists()

    def test_a_shared_deployment_granted_to_the_department_may_be_chosen(
        self, client_for, platform_admin, marketing, finance
    ):
        shared = make_deployment(
            department=finance, display_name="Company assistant", shared_with=[marketing]
        )

        response = client_for(platform_admin).post(ADD, form(marketing, [shared]))

        assert response.status_code == 302
        assert list(ServicePrincipal.objects.get().deployments.all()) == [shared]

    def test_an_object_id_is_registered_once(self, client_for, platform_admin, marketing, copy_assistant):
        admin_client = client_for(platform_admin)
        admin_client.post(ADD, form(marketing, [copy_assistant]))

        response = admin_client.post(ADD, form(marketing, [copy_assistant], name="Again"))

        assert response.status_code == 200
        assert "Service principal with this Object id already exists" in response.content.decode()
        assert ServicePrincipal.objects.count() == 1


class TestChangesAreAudited:
    def test_disabling_says_so(self, client_for, platform_admin, marketing, copy_assistant):
        principal = registered(marketing, [copy_assistant], requests_per_minute=60)
        data = form(marketing, [copy_assistant], object_id=str(principal.object_id))
        del data["enabled"]

        response = client_for(platform_admin).post(f"{LIST}{principal.pk}/change/", data)

        assert response.status_code == 302
        principal.refresh_from_db()
        assert principal.enabled is False
        event = AuditEvent.objects.get(verb="service_principal.disabled")
        assert (event.before, event.after) == ({"enabled": True}, {"enabled": False})

    def test_a_change_of_deployments_and_limits_records_before_and_after(
        self, client_for, platform_admin, marketing, copy_assistant
    ):
        other = make_deployment(department=marketing, display_name="Brief writer")
        principal = registered(marketing, [copy_assistant], requests_per_minute=60)
        data = form(
            marketing, [copy_assistant, other], object_id=str(principal.object_id), requests_per_minute=""
        )

        client_for(platform_admin).post(f"{LIST}{principal.pk}/change/", data)

        event = AuditEvent.objects.get(verb="service_principal.changed")
        assert event.before == {"deployments": [copy_assistant.gateway_name], "requests_per_minute": 60}
        assert event.after == {
            "deployments": sorted([copy_assistant.gateway_name, other.gateway_name]),
            "requests_per_minute": None,
        }

    def test_saving_without_changes_writes_nothing(
        self, client_for, platform_admin, marketing, copy_assistant
    ):
        principal = registered(marketing, [copy_assistant], requests_per_minute=60)
        data = form(marketing, [copy_assistant], object_id=str(principal.object_id))

        client_for(platform_admin).post(f"{LIST}{principal.pk}/change/", data)

        assert not AuditEvent.objects.filter(object_type="gateway.serviceprincipal").exists()

    def test_removal_is_recorded(self, client_for, platform_admin, marketing, copy_assistant):
        principal = registered(marketing, [copy_assistant])

        response = client_for(platform_admin).post(f"{LIST}{principal.pk}/delete/", {"post": "yes"})

        assert response.status_code == 302
        assert not ServicePrincipal.objects.exists()
        event = AuditEvent.objects.get(verb="service_principal.removed")
        assert event.before["name"] == "Campaign reporter"
        assert event.object_id == str(principal.pk)
