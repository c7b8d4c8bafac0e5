"""Leftovers on the Deployments pages: who sees them, what they hold, and the ladder for
removing one (anonymous, lead, finance approver, platform admin)."""

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from provisioning.models import LeftoverResource, ModelDeployment
from tests.factories import make_account, make_deployment, make_landing_zone

LOGIN = "/accounts/login/"
Kind = LeftoverResource.Kind
Reason = LeftoverResource.Reason


def text(response) -> str:
    return str(response.content.decode())


@pytest.fixture
def failed_copy(marketing) -> ModelDeployment:
    zone = make_landing_zone(name="Marketing subscription", owner_department=marketing)
    return make_deployment(
        department=marketing,
        display_name="Marketing copy assistant",
        name="marketing-copy",
        landing_zone=zone,
        account=make_account(landing_zone=zone),
        state=ModelDeployment.State.FAILED,
        status_message="Azure failed to create the deployment marketing-copy 3 times.",
    )


@pytest.fixture
def left_deployment(failed_copy) -> LeftoverResource:
    """What the drift check records for the failed deployment Azure still has."""
    now = timezone.now()
    return LeftoverResource.objects.create(
        landing_zone=failed_copy.landing_zone,
        kind=Kind.DEPLOYMENT,
        reason=Reason.FAILED,
        region="swedencentral",
        account_name=failed_copy.account.name,
        deployment_name="marketing-copy",
        azure_state="Failed",
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        capacity=20,
        deployment=failed_copy,
        first_seen_at=now,
        last_seen_at=now,
    )


@pytest.fixture
def left_ptu_account(db) -> LeftoverResource:
    now = timezone.now()
    return LeftoverResource.objects.create(
        landing_zone=make_landing_zone(name="Central IT shared"),
        kind=Kind.ACCOUNT,
        reason=Reason.UNUSED,
        region="eastus2",
        account_name="oai-by-hand",
        azure_state="Succeeded",
        first_seen_at=now,
        last_seen_at=now,
    )


def remove_path(leftover: LeftoverResource) -> str:
    return f"/deployments/leftovers/{leftover.pk}/remove/"


class TestDeploymentListShowsLeftovers:
    @pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
    def test_those_who_see_every_department_see_what_is_left_and_what_it_holds(
        self, request, client_for, left_deployment, left_ptu_account, who
    ):
        page = text(client_for(request.getfixturevalue(who)).get("/deployments/"))

        assert "Left over in Azure" in page
        assert "2 resources no Switchyard deployment uses" in page
        assert 'Model deployment <code class="wrap">marketing-copy</code>' in page
        assert "Failed in Azure" in page
        assert "20K TPM of gpt-4o-mini (GlobalStandard)" in page
        assert "swedencentral" in page
        assert 'was <a href="/deployments/' in page
        assert 'Azure OpenAI account <code class="wrap">oai-by-hand</code>' in page
        assert "One of the region&#x27;s Azure OpenAI accounts" in page

    def test_only_a_platform_admin_gets_the_remove_button(
        self, client_for, left_deployment, platform_admin, finance_approver
    ):
        assert "Remove from Azure" in text(client_for(platform_admin).get("/deployments/"))
        assert "Remove from Azure" not in text(client_for(finance_approver).get("/deployments/"))

    def test_a_lead_does_not_see_the_estates_leftovers(self, client_for, left_ptu_account, marketing_lead):
        page = text(client_for(marketing_lead).get("/deployments/"))

        assert "Left over in Azure" not in page

    def test_with_nothing_left_over_there_is_no_section(self, client_for, failed_copy, platform_admin):
        assert "Left over in Azure" not in text(client_for(platform_admin).get("/deployments/"))

    def test_a_removal_under_way_or_failed_says_so(self, client_for, left_deployment, platform_admin):
        left_deployment.state = LeftoverResource.State.REMOVAL_FAILED
        left_deployment.error = "Azure failed to delete the deployment marketing-copy 3 times."
        left_deployment.save()

        page = text(client_for(platform_admin).get("/deployments/"))

        assert "Removal failed" in page
        assert "Azure failed to delete the deployment marketing-copy 3 times." in page
        assert "Remove from Azure" in page  # it can be tried again


class TestDeploymentPageShowsItsLeftovers:
    def test_the_owning_lead_sees_what_its_failed_run_left_behind(
        self, client_for, left_deployment, marketing_lead
    ):
        page = text(client_for(marketing_lead).get(f"/deployments/{left_deployment.deployment.pk}/"))

        assert "Left behind in Azure" in page
        assert "20K TPM of gpt-4o-mini (GlobalStandard)" in page
        assert "A platform admin can remove it." in page
        assert "Remove from Azure" not in page

    def test_a_clean_up_under_way_is_followed_live(self, client_for, failed_copy, marketing_lead):
        failed_copy.run_token = "cleaning"
        failed_copy.save()

        page = text(client_for(marketing_lead).get(f"/deployments/{failed_copy.pk}/"))

        assert "Removing what the failed run created in Azure" in page
        assert 'hx-trigger="every 2s"' in page


class TestRemovingALeftover:
    def test_anonymous_visitors_are_sent_to_sign_in(self, client, left_deployment):
        response = client.post(remove_path(left_deployment))

        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)

    @pytest.mark.parametrize("who", ["marketing_lead", "finance_approver"])
    def test_anyone_but_a_platform_admin_is_refused(self, request, client_for, left_deployment, who):
        response = client_for(request.getfixturevalue(who)).post(remove_path(left_deployment))

        assert response.status_code == 403
        assert LeftoverResource.objects.get(pk=left_deployment.pk).state == LeftoverResource.State.FOUND

    def test_a_get_does_not_remove(self, client_for, left_deployment, platform_admin):
        assert client_for(platform_admin).get(remove_path(left_deployment)).status_code == 405

    def test_an_unknown_leftover_is_not_found(self, client_for, platform_admin):
        assert client_for(platform_admin).post("/deployments/leftovers/999999/remove/").status_code == 404

    def test_a_platform_admin_starts_the_removal_and_it_is_audited(
        self, client_for, left_deployment, platform_admin
    ):
        response = client_for(platform_admin).post(
            remove_path(left_deployment), {"next": "/deployments/?state=failed"}, follow=True
        )

        assert response.redirect_chain == [("/deployments/?state=failed", 302)]
        page = text(response)
        assert "Removing the deployment marketing-copy on" in page
        assert '<span class="badge badge--warning">Removing</span>' in page
        assert LeftoverResource.objects.get(pk=left_deployment.pk).state == LeftoverResource.State.REMOVING
        event = AuditEvent.objects.get(verb="leftover.removal_requested")
        assert event.actor == platform_admin
        assert event.after["holds"] == "20K TPM of gpt-4o-mini (GlobalStandard)"

    def test_a_second_request_is_refused_with_a_message(self, client_for, left_deployment, platform_admin):
        signed_in = client_for(platform_admin)
        signed_in.post(remove_path(left_deployment))

        response = signed_in.post(remove_path(left_deployment), follow=True)

        assert response.status_code == 200
        assert "is already being removed" in text(response)

    def test_a_next_address_elsewhere_is_ignored(self, client_for, left_deployment, platform_admin):
        response = client_for(platform_admin).post(
            remove_path(left_deployment), {"next": "https://elsewhere.example.com/"}
        )

        assert response["Location"] == "/deployments/"


def test_the_admin_site_lists_leftovers_and_removes_them_through_the_same_service(
    client_for, left_deployment, left_ptu_account, platform_admin
):
    signed_in = client_for(platform_admin)
    changelist = "/admin/provisioning/leftoverresource/"
    assert "oai-by-hand" in text(signed_in.get(changelist))

    signed_in.post(changelist, {"action": "remove_from_azure", "_selected_action": [left_deployment.pk]})

    assert LeftoverResource.objects.get(pk=left_deployment.pk).state == LeftoverResource.State.REMOVING
    assert LeftoverResource.objects.get(pk=left_ptu_account.pk).state == LeftoverResource.State.FOUND
    assert AuditEvent.objects.get(verb="leftover.removal_requested").actor == platform_admin
