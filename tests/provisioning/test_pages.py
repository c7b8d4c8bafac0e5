"""The deployment pages walk the ladder: anonymous, other department, wrong role, right role."""

from datetime import timedelta

import pytest
from django.test import Client

from provisioning.models import ModelDeployment, ProvisioningOperation
from tests.factories import make_account, make_department, make_deployment, make_landing_zone, make_operation

LOGIN = "/accounts/login/"
HTMX = {"HX-Request": "true"}
DASH = "\N{EN DASH}"
State = ModelDeployment.State
Step = ProvisioningOperation.Step
Status = ProvisioningOperation.Status


def text(response) -> str:
    return str(response.content.decode())


@pytest.fixture
def marketing_copy(marketing) -> ModelDeployment:
    zone = make_landing_zone(name="Marketing subscription", owner_department=marketing)
    return make_deployment(
        department=marketing,
        display_name="Marketing copy assistant",
        landing_zone=zone,
        account=make_account(landing_zone=zone),
        system_prompt="You write upbeat product copy.\nKeep it under 80 words.",
    )


@pytest.fixture
def company_assistant(db, finance) -> ModelDeployment:
    central_it = make_department(name="Central IT")
    return make_deployment(
        department=central_it,
        display_name="Company assistant",
        shared_with=[finance, make_department(name="HR")],
    )


@pytest.mark.parametrize("path", ["/deployments/", "/deployments/1/"])
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={path}"


class TestDeploymentPage:
    def path(self, deployment: ModelDeployment) -> str:
        return f"/deployments/{deployment.pk}/"

    def test_another_departments_lead_gets_not_found(self, client_for, marketing_copy, finance_lead):
        response = client_for(finance_lead).get(self.path(marketing_copy))

        assert response.status_code == 404
        assert "There is nothing here" in text(response)

    def test_a_plain_member_is_refused(self, client_for, marketing_copy, marketing_member):
        response = client_for(marketing_member).get(self.path(marketing_copy))

        assert response.status_code == 403
        assert "department leads, platform admins and finance approvers" in text(response)

    def test_the_owning_lead_sees_facts_prompt_and_operation_log(
        self, client_for, marketing_copy, marketing_lead
    ):
        make_operation(deployment=marketing_copy, step=Step.ENSURE_ACCOUNT, duration=timedelta(seconds=4.26))
        make_operation(
            deployment=marketing_copy,
            step=Step.ENSURE_DEPLOYMENT,
            status=Status.FAILED,
            attempt=3,
            error="Sweden Central has 10K TPM of gpt-4o-mini left; you asked for 50K.",
        )

        response = client_for(marketing_lead).get(self.path(marketing_copy))

        assert response.status_code == 200
        page = text(response)
        assert "Marketing copy assistant" in page
        assert "Dedicated to Marketing" in page
        assert "Marketing subscription" in page
        assert marketing_copy.account.endpoint in page
        assert "Entra ID tokens only" in page
        assert "You write upbeat product copy." in page
        assert "Ensure account" in page
        assert "4.3 s" in page
        assert "Ensure deployment" in page
        assert "you asked for 50K" in page
        assert "Live · refreshes" not in page  # active: nothing left to follow

    def test_a_lead_whose_department_has_a_grant_sees_the_shared_service(
        self, client_for, company_assistant, finance_lead
    ):
        response = client_for(finance_lead).get(self.path(company_assistant))

        assert response.status_code == 200
        page = text(response)
        assert "Run by Central IT for 2 departments" in page
        assert "Access for Finance" in page
        assert "<td>Finance</td>" in page
        assert "<td>HR</td>" not in page  # another department's cap is not theirs to see

    def test_a_lead_without_a_grant_does_not_find_the_shared_service(
        self, client_for, company_assistant, marketing_lead
    ):
        assert client_for(marketing_lead).get(self.path(company_assistant)).status_code == 404

    @pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
    def test_admins_and_finance_see_every_deployment_and_every_grant(
        self, request, client_for, marketing_copy, company_assistant, who
    ):
        signed_in = client_for(request.getfixturevalue(who))

        assert signed_in.get(self.path(marketing_copy)).status_code == 200
        page = text(signed_in.get(self.path(company_assistant)))
        assert "Departments that use it" in page
        assert "<td>Finance</td>" in page
        assert "<td>HR</td>" in page

    def test_an_unknown_deployment_is_not_found_even_for_admins(self, client_for, platform_admin):
        assert client_for(platform_admin).get("/deployments/999999/").status_code == 404

    def test_drift_says_what_azure_and_switchyard_each_say(self, client_for, marketing, platform_admin):
        drifted = make_deployment(
            department=marketing,
            drift={
                "capacity": {"switchyard": 20, "azure": 10},
                "model_version": {"switchyard": "2024-07-18", "azure": "2024-05-13"},
            },
        )
        missing = make_deployment(
            department=marketing, drift={"exists": {"switchyard": True, "azure": False}}
        )
        signed_in = client_for(platform_admin)

        page = text(signed_in.get(self.path(drifted)))
        assert "Azure and Switchyard disagree" in page
        assert "<strong>Capacity</strong>: Azure says <code>10</code>, Switchyard says <code>20</code>" in (
            page
        )
        assert "Azure says <code>2024-05-13</code>" in page
        assert "Azure has no deployment by this name" in text(signed_in.get(self.path(missing)))

    def test_while_in_flight_the_operation_log_polls_and_stops_once_final(
        self, client_for, marketing, platform_admin
    ):
        deployment = make_deployment(department=marketing, state=State.PROVISIONING)
        make_operation(deployment=deployment, step=Step.ENSURE_ACCOUNT, status=Status.WAITING)
        signed_in = client_for(platform_admin)

        page = text(signed_in.get(self.path(deployment)))
        assert 'hx-trigger="every 2s"' in page
        assert "Waiting for Azure" in page

        deployment.state = State.ACTIVE
        deployment.save()
        page = text(signed_in.get(self.path(deployment)))
        assert "hx-trigger" not in page

    def test_the_htmx_poll_gets_only_the_operation_log_and_the_fresh_state(
        self, client_for, marketing, platform_admin
    ):
        deployment = make_deployment(department=marketing, state=State.PROVISIONING)
        make_operation(deployment=deployment, step=Step.ENSURE_ACCOUNT)

        response = client_for(platform_admin).get(
            self.path(deployment), headers={**HTMX, "HX-Target": "operation-log"}
        )

        fragment = text(response)
        assert response.status_code == 200
        assert "<html" not in fragment
        assert 'id="operation-log"' in fragment
        assert "Ensure account" in fragment
        assert 'id="deployment-state" hx-swap-oob="true"' in fragment
        assert "Provisioning" in fragment
        assert "HX-Request" in response["Vary"]

    def test_the_htmx_poll_is_refused_like_the_page(self, client_for, marketing_copy, finance_lead):
        response = client_for(finance_lead).get(
            self.path(marketing_copy), headers={**HTMX, "HX-Target": "operation-log"}
        )

        assert response.status_code == 404


class TestDeploymentList:
    path = "/deployments/"

    def test_a_plain_member_is_refused(self, client_for, marketing_member):
        assert client_for(marketing_member).get(self.path).status_code == 403

    def test_a_lead_sees_their_own_and_granted_deployments_only(
        self, client_for, marketing_copy, company_assistant, finance_lead, finance
    ):
        finance_own = make_deployment(department=finance, display_name="Invoice checker")

        page = text(client_for(finance_lead).get(self.path))

        assert "Finance deployments" in page
        assert f'href="/deployments/{finance_own.pk}/"' in page
        assert f'href="/deployments/{company_assistant.pk}/"' in page
        assert "Shared · 2 departments" in page
        assert "Marketing copy assistant" not in page

    @pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
    def test_admins_and_finance_see_everything(
        self, request, client_for, marketing_copy, company_assistant, who
    ):
        response = client_for(request.getfixturevalue(who)).get(self.path)

        assert response.status_code == 200
        page = text(response)
        assert "Marketing copy assistant" in page
        assert "Company assistant" in page
        assert f"Showing 1{DASH}2 of 2 deployments" in page

    def test_columns_show_model_sku_capacity_region_and_state(self, client_for, marketing, platform_admin):
        make_deployment(
            department=marketing,
            display_name="Reserved analyst",
            model_name="gpt-4o",
            model_version="2024-11-20",
            sku=ModelDeployment.Sku.PROVISIONED,
            capacity=50,
            region="eastus2",
            state=State.FAILED,
        )

        page = text(client_for(platform_admin).get(self.path))

        for shown in ["gpt-4o", "2024-11-20", "Provisioned (regional)", "50 PTU", "eastus2"]:
            assert shown in page
        assert '<span class="badge badge--danger">Failed</span>' in page

    def test_filtering_by_state(self, client_for, marketing, platform_admin):
        make_deployment(department=marketing, display_name="Broken one", state=State.FAILED)
        make_deployment(department=marketing, display_name="Working one")

        page = text(client_for(platform_admin).get(self.path, {"state": "failed"}))

        assert "Broken one" in page
        assert "Working one" not in page
        assert '<option value="failed" selected>' in page

    def test_filtering_by_drift(self, client_for, marketing, platform_admin):
        make_deployment(
            department=marketing,
            display_name="Drifted one",
            drift={"capacity": {"switchyard": 20, "azure": 5}},
        )
        make_deployment(department=marketing, display_name="Steady one")

        page = text(client_for(platform_admin).get(self.path, {"drift": "yes"}))

        assert "Drifted one" in page
        assert "Steady one" not in page
        assert 'title="Capacity: Azure says 5, Switchyard says 20"' in page

    def test_filtering_by_department_includes_what_it_is_granted(
        self, client_for, marketing_copy, company_assistant, platform_admin
    ):
        page = text(client_for(platform_admin).get(self.path, {"department": "finance"}))

        assert "Company assistant" in page
        assert "Marketing copy assistant" not in page

    def test_filtering_by_model(self, client_for, marketing, platform_admin):
        make_deployment(department=marketing, display_name="Big model", model_name="gpt-4o")
        make_deployment(department=marketing, display_name="Small model", model_name="gpt-4o-mini")

        page = text(client_for(platform_admin).get(self.path, {"model": "gpt-4o"}))

        assert "Big model" in page
        assert "Small model" not in page

    def test_nonsense_filters_are_ignored_not_an_error(self, client_for, marketing_copy, platform_admin):
        response = client_for(platform_admin).get(
            self.path, {"state": "exploded", "department": "nope", "sort": "password", "page": "x"}
        )

        assert response.status_code == 200
        assert "Marketing copy assistant" in text(response)

    def test_decommissioned_ones_are_hidden_until_asked_for(self, client_for, marketing, platform_admin):
        make_deployment(department=marketing, display_name="Retired one", state=State.DECOMMISSIONED)
        make_deployment(department=marketing, display_name="Current one")
        signed_in = client_for(platform_admin)

        page = text(signed_in.get(self.path))
        assert "Current one" in page
        assert "Retired one" not in page

        page = text(signed_in.get(self.path, {"decommissioned": "yes"}))
        assert "Retired one" in page
        assert '<span class="badge">Decommissioned</span>' in page

    def test_sorting_by_a_column_and_back(self, client_for, marketing, platform_admin):
        for name in ["Bravo", "Alpha", "Charlie"]:
            make_deployment(department=marketing, display_name=name)
        signed_in = client_for(platform_admin)

        ascending = text(signed_in.get(self.path, {"sort": "name"}))
        descending = text(signed_in.get(self.path, {"sort": "-name"}))

        assert ascending.index("Alpha") < ascending.index("Bravo") < ascending.index("Charlie")
        assert descending.index("Charlie") < descending.index("Bravo") < descending.index("Alpha")
        assert 'aria-sort="descending"' in descending
        assert 'href="?sort=name"' in descending  # a second click turns it round

    def test_sorting_by_state_follows_the_lifecycle(self, client_for, marketing, platform_admin):
        make_deployment(department=marketing, display_name="Zulu failed", state=State.FAILED)
        make_deployment(department=marketing, display_name="Yankee requested", state=State.REQUESTED)
        make_deployment(department=marketing, display_name="Xray active", state=State.ACTIVE)

        page = text(client_for(platform_admin).get(self.path, {"sort": "state"}))

        assert page.index("Yankee requested") < page.index("Xray active") < page.index("Zulu failed")

    def test_thirty_deployments_make_two_pages(self, client_for, marketing, platform_admin):
        zone = make_landing_zone()
        for number in range(30):
            make_deployment(department=marketing, display_name=f"Assistant {number:02}", landing_zone=zone)
        signed_in = client_for(platform_admin)

        first = text(signed_in.get(self.path))
        second = text(signed_in.get(self.path, {"page": 2}))

        assert f"Showing 1{DASH}25 of 30 deployments" in first
        assert "Page 1 of 2" in first
        assert "Assistant 24" in first
        assert "Assistant 25" not in first
        assert 'href="?page=2"' in first
        assert f"Showing 26{DASH}30 of 30 deployments" in second
        assert "Assistant 25" in second

    def test_the_htmx_filter_request_gets_only_the_results(self, client_for, marketing_copy, platform_admin):
        response = client_for(platform_admin).get(
            self.path, {"state": "active"}, headers={**HTMX, "HX-Target": "deployment-results"}
        )

        fragment = text(response)
        assert response.status_code == 200
        assert "<html" not in fragment
        assert "filter-bar" not in fragment
        assert fragment.lstrip().startswith('<section id="deployment-results"')
        assert "Marketing copy assistant" in fragment
        assert "HX-Request" in response["Vary"]

    def test_without_javascript_the_filter_bar_is_a_plain_form(self, client_for, platform_admin):
        page = text(client_for(platform_admin).get(self.path))

        assert '<form class="filter-bar" method="get" action="/deployments/"' in page
        assert 'hx-get="/deployments/"' in page

    def test_empty_states_say_what_to_do(self, client_for, marketing, platform_admin):
        signed_in = client_for(platform_admin)

        assert "No deployments yet" in text(signed_in.get(self.path))

        make_deployment(department=marketing, display_name="Old", state=State.DECOMMISSIONED)
        assert "Only decommissioned deployments" in text(signed_in.get(self.path))
        assert "No deployments match these filters" in text(signed_in.get(self.path, {"state": "failed"}))


def test_navigation_offers_deployments_to_admins_finance_and_leads(
    client_for, marketing_member, marketing_lead, platform_admin, finance_approver
):
    link = 'href="/deployments/">Deployments</a>'

    assert link not in text(client_for(marketing_member).get("/"))
    assert link in text(client_for(marketing_lead).get("/"))
    assert link in text(client_for(platform_admin).get("/"))
    assert link in text(client_for(finance_approver).get("/"))
