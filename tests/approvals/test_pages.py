"""Request pages: who may open what (anonymous, other department, wrong role, right role), the
form's checks with the values kept, the live preview, decisions and the queue."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals.models import ApprovalStep, DeploymentRequest
from org.models import Membership
from provisioning.models import ModelDeployment
from tests.factories import make_deployment, make_request, make_user

State = DeploymentRequest.State

NEW = {
    "kind": "new_deployment",
    "department": "marketing",
    "display_name": "Copy assistant",
    "purpose": "Drafting campaign copy",
    "data_classification": "internal",
    "region": "swedencentral",
    "model_name": "gpt-4o-mini",
    "model_version": "2024-07-18",
    "sku": "GlobalStandard",
    "capacity": "30",
    "input_tokens_per_month": "10",
    "output_tokens_per_month": "2",
    "action": "submit",
}


@pytest.fixture
def marketing_request(marketing, marketing_lead, zone, offers, policy) -> DeploymentRequest:
    return make_request(department=marketing, requester=marketing_lead, capacity=50)


# Who may open what --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/requests/", "/requests/new/", "/approvals/", "/requests/1/"])
def test_anonymous_people_are_sent_to_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_lead_of_another_department_cannot_see_or_act_on_the_request(
    client_for, marketing_request, finance_lead
):
    client = client_for(finance_lead)
    assert client.get(f"/requests/{marketing_request.pk}/").status_code == 404
    assert client.post(f"/requests/{marketing_request.pk}/cancel/").status_code == 404
    assert client.get(f"/requests/{marketing_request.pk}/edit/").status_code == 404
    assert "Copy assistant" not in client.get("/requests/").content.decode()
    assert DeploymentRequest.objects.get(pk=marketing_request.pk).state == State.SUBMITTED


def test_a_member_cannot_open_the_form_or_the_requests(client_for, marketing_request, marketing_member):
    client = client_for(marketing_member)
    assert client.get("/requests/new/").status_code == 403
    assert client.post("/requests/new/", NEW).status_code == 403
    assert client.get("/requests/").status_code == 403
    assert client.get(f"/requests/{marketing_request.pk}/").status_code == 403
    assert client.get("/approvals/").status_code == 403


def test_a_lead_cannot_decide_or_retry_even_their_own_departments_request(
    client_for, marketing_request, marketing_lead
):
    client = client_for(marketing_lead)
    assert (
        client.post(f"/requests/{marketing_request.pk}/decide/", {"decision": "approve"}).status_code == 403
    )
    assert client.post(f"/requests/{marketing_request.pk}/retry/").status_code == 403
    assert client.get("/approvals/").status_code == 403


def test_the_lead_sees_their_request_with_the_reason_for_each_approval(
    client_for, marketing_request, marketing_lead
):
    page = client_for(marketing_lead).get(f"/requests/{marketing_request.pk}/").content.decode()
    assert "Copy assistant" in page
    assert "Waiting for approval" in page
    assert "50K TPM is more than the 20K TPM approved automatically" in page
    assert "another approver decides" in page


def test_approvers_see_every_request_and_the_queue_oldest_first(
    client_for, marketing_request, platform_admin, finance_approver, finance, zone
):
    lead = make_user(email="fin-lead@example.com", department=finance, role=Membership.Role.LEAD)
    newer = make_request(department=finance, requester=lead, capacity=40, display_name="Ledger helper")
    DeploymentRequest.objects.filter(pk=newer.pk).update(submitted_at=timezone.now() + timedelta(minutes=5))

    queue = client_for(platform_admin).get("/approvals/").content.decode()
    assert queue.index("Copy assistant") < queue.index("Ledger helper")
    assert "2 requests wait for you" in queue
    # Finance approvers see the requests but have no platform step to give here.
    assert client_for(finance_approver).get(f"/requests/{marketing_request.pk}/").status_code == 200
    assert "Nothing waits for you" in client_for(finance_approver).get("/approvals/").content.decode()


def test_the_navigation_counts_what_waits_for_the_signed_in_person(
    client_for, marketing_request, platform_admin
):
    page = client_for(platform_admin).get("/").content.decode()
    assert '<span class="nav-count" aria-label="1 waiting for you">1</span>' in page


# The form ---------------------------------------------------------------------------------------


def test_a_lead_submits_a_new_deployment_and_lands_on_its_page(
    client_for, marketing_lead, zone, offers, policy
):
    response = client_for(marketing_lead).post("/requests/new/", NEW)

    created = DeploymentRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{created.pk}/"
    assert (created.state, created.capacity, created.requester) == (State.SUBMITTED, 30, marketing_lead)
    assert created.estimated_monthly_cost == Decimal("10") * Decimal("0.15") + Decimal("2") * Decimal("0.60")


def test_save_as_draft_keeps_it_out_of_the_approvers_queue(
    client_for, marketing_lead, platform_admin, zone, offers
):
    client_for(marketing_lead).post("/requests/new/", {**NEW, "action": "draft"})
    assert DeploymentRequest.objects.get().state == State.DRAFT
    assert "Nothing waits for you" in client_for(platform_admin).get("/approvals/").content.decode()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"display_name": ""}, "display_name", "This field is required."),
        ({"purpose": ""}, "purpose", "This field is required."),
        ({"data_classification": "secret"}, "data_classification", "Select a valid choice."),
        ({"region": "westus"}, "region", "Central does not allow westus."),
        ({"region": "eastus2", "model_name": "gpt-4o"}, "model_name", "gpt-4o is not offered in East US 2."),
        (
            {"model_version": "2023-01-01"},
            "model_version",
            "gpt-4o-mini 2023-01-01 is not offered in Sweden Central.",
        ),
        ({"sku": "Standard"}, "sku", "gpt-4o-mini 2024-07-18 is not offered as Standard in Sweden Central."),
        ({"capacity": "0"}, "capacity", "Ensure this value is greater than or equal to 1."),
        ({"capacity": "lots"}, "capacity", "Enter a whole number."),
        ({"capacity": "600"}, "capacity", "Capacity for this model and SKU is 1 to 500 K TPM."),
        (
            {"capacity": "150"},
            "capacity",
            "Sweden Central has 100 K TPM of gpt-4o-mini (GlobalStandard) left",
        ),
        (
            {
                "model_name": "gpt-4o",
                "model_version": "2024-11-20",
                "sku": "ProvisionedManaged",
                "capacity": "17",
            },
            "capacity",
            "Capacity moves in steps of 5 PTU: try 15.",
        ),
        ({"expires_on": "2020-01-01"}, "expires_on", "The expiry date must be in the future."),
        ({"expires_on": "soon"}, "expires_on", "Enter a valid date."),
        ({"input_tokens_per_month": "-1"}, "input_tokens_per_month", "greater than or equal to 0"),
        (
            {"input_tokens_per_month": "50000"},
            "input_tokens_per_month",
            "This would exceed Marketing's monthly budget",
        ),
        ({"system_prompt": "x" * 8001}, "system_prompt", "at most 8000 characters"),
    ],
)
def test_bad_input_gets_its_message_next_to_the_field_and_keeps_what_was_typed(
    client_for, marketing_lead, zone, offers, policy, changes, field, message
):
    data = {**NEW, "purpose": "Drafting campaign copy for the spring launch", **changes}
    response = client_for(marketing_lead).post("/requests/new/", data)

    assert response.status_code == 400
    assert DeploymentRequest.objects.count() == 0
    form = response.context["form"]
    assert any(message in error for error in form.errors[field]), form.errors
    page = response.content.decode()
    assert f'id="field-{field}"' in page
    assert 'class="errorlist"' in page
    if field != "purpose":
        assert "Drafting campaign copy for the spring launch" in page
    typed = changes.get(field)
    if typed and field not in ("system_prompt", "data_classification"):
        assert f'value="{typed}"' in page or f">{typed}<" in page or f'"{typed}" selected' in page


def test_the_live_preview_shows_quota_estimate_and_budget_and_follows_the_region(
    client_for, marketing_lead, zone, offers, policy
):
    client = client_for(marketing_lead)
    preview = client.post(
        "/requests/new/preview/",
        {**NEW, "capacity": "20", "input_tokens_per_month": "100"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "$16.20" in preview  # 100M input x $0.15 + 2M output x $0.60
    assert "100K TPM</strong> in Sweden Central" in preview
    assert "2% of budget" in preview  # of Marketing's $1,000

    # East US 2 offers only gpt-4o-mini: a gpt-4o choice moves to what the region has.
    moved = client.post(
        "/requests/new/preview/", {**NEW, "region": "eastus2", "model_name": "gpt-4o"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert '<option value="gpt-4o-mini" selected>' in moved
    assert '<option value="gpt-4o"' not in moved

    over = client.post(
        "/requests/new/preview/", {**NEW, "capacity": "150"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "not enough" in over
    assert "left in this subscription" in over


def test_a_lead_asks_for_a_shared_service_and_gets_it_by_policy(
    client_for, marketing, marketing_lead, zone, policy
):
    shared = make_deployment(
        department=marketing, display_name="Company assistant", scope=ModelDeployment.Scope.SHARED
    )
    client = client_for(marketing_lead)
    form_page = client.get("/requests/new/?kind=shared_access").content.decode()
    assert "Company assistant" in form_page

    response = client.post(
        "/requests/new/",
        {
            "kind": "shared_access",
            "department": "marketing",
            "target": shared.pk,
            "purpose": "Everyday questions",
            "data_classification": "internal",
            "tpm_cap": "5",
            "input_tokens_per_month": "1",
            "output_tokens_per_month": "1",
            "action": "submit",
        },
    )
    assert response.status_code == 302
    assert DeploymentRequest.objects.get().state == State.COMPLETED
    assert shared.grants.get(department=marketing).tpm_cap == 5


# Deciding --------------------------------------------------------------------------------------


def test_an_admin_approves_from_the_request_page(client_for, marketing_request, platform_admin):
    client = client_for(platform_admin)
    page = client.get(f"/requests/{marketing_request.pk}/").content.decode()
    assert "Your decision" in page

    response = client.post(f"/requests/{marketing_request.pk}/decide/", {"decision": "approve"}, follow=True)

    assert "approved" in response.content.decode()
    assert DeploymentRequest.objects.get(pk=marketing_request.pk).state == State.PROVISIONING


def test_rejecting_without_a_reason_is_refused_and_keeps_the_page(
    client_for, marketing_request, platform_admin
):
    response = client_for(platform_admin).post(
        f"/requests/{marketing_request.pk}/decide/", {"decision": "reject", "comment": ""}
    )
    assert response.status_code == 400
    assert "Say why the request is rejected" in response.content.decode()
    assert DeploymentRequest.objects.get(pk=marketing_request.pk).state == State.SUBMITTED


def test_an_approver_whose_role_does_not_fit_is_told_why(client_for, marketing_request, finance_approver):
    response = client_for(finance_approver).post(
        f"/requests/{marketing_request.pk}/decide/",
        {"decision": "send_back", "comment": "Please explain the volume"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "your role cannot decide it" in page


def test_sent_back_the_lead_edits_and_resubmits_through_the_form(
    client_for, marketing_request, platform_admin, marketing_lead
):
    client_for(platform_admin).post(
        f"/requests/{marketing_request.pk}/decide/", {"decision": "send_back", "comment": "Start at 20K TPM"}
    )
    client = client_for(marketing_lead)
    edit = client.get(f"/requests/{marketing_request.pk}/edit/").content.decode()
    assert "Start at 20K TPM" in edit
    assert 'value="50"' in edit

    response = client.post(f"/requests/{marketing_request.pk}/edit/", {**NEW, "capacity": "25"})
    assert response.status_code == 302
    resubmitted = DeploymentRequest.objects.get(pk=marketing_request.pk)
    assert (resubmitted.state, resubmitted.round, resubmitted.capacity) == (State.SUBMITTED, 2, 25)
    assert resubmitted.steps.filter(round=2, kind=ApprovalStep.Kind.PLATFORM).exists()


def test_the_timeline_fragment_refreshes_while_provisioning(client_for, marketing_request, platform_admin):
    client = client_for(platform_admin)
    client.post(f"/requests/{marketing_request.pk}/decide/", {"decision": "approve"})
    fragment = client.get(
        f"/requests/{marketing_request.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="request-live"
    ).content.decode()
    assert fragment.strip().startswith('<div id="request-live"')
    assert 'hx-trigger="every 2s"' in fragment
    assert 'id="request-approvals" aria-labelledby="approvals-heading" hx-swap-oob="true"' in fragment
    assert "Handed to provisioning" in fragment
    assert 'id="request-state" hx-swap-oob="true"' in fragment


def test_the_lead_department_page_shows_deployments_shared_services_and_open_requests(
    client_for, marketing, marketing_request, marketing_lead, zone
):
    make_deployment(department=marketing, display_name="Brand voice", landing_zone=zone)
    make_deployment(department=marketing, display_name="Company assistant", shared_with=[marketing])
    page = client_for(marketing_lead).get("/departments/marketing/").content.decode()
    assert "Brand voice" in page
    assert "Shared services it uses" in page
    assert "Company assistant" in page
    assert f"#{marketing_request.pk} Copy assistant" in page


def test_home_says_what_waits_for_the_approver(client_for, marketing_request, platform_admin):
    page = client_for(platform_admin).get("/").content.decode()
    assert "1 request waits for your approval" in page


def test_a_department_deploys_into_its_own_landing_zone_before_the_shared_one(marketing, zone):
    from provisioning.models import LandingZone
    from tests.factories import make_landing_zone

    own = make_landing_zone(name="Marketing subscription", owner_department=marketing)
    assert LandingZone.for_department(marketing) == own


def test_an_admin_edits_the_policy_and_the_change_is_audited(client_for, platform_admin, policy):
    from audit.models import AuditEvent

    response = client_for(platform_admin).post(
        "/admin/approvals/approvalpolicy/1/change/",
        {
            "auto_approve_max_capacity": "30",
            "auto_approve_skus": ["GlobalStandard"],
            "auto_approve_shared_access": "on",
            "finance_cost_threshold": "500.00",
            "finance_for_provisioned": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert (policy.auto_approve_max_capacity, policy.auto_approve_skus) == (30, ["GlobalStandard"])
    assert policy.finance_for_restricted is False
    event = AuditEvent.objects.get(verb="policy.changed")
    assert event.actor == platform_admin
    assert (event.before["auto_approve_max_capacity"], event.after["auto_approve_max_capacity"]) == (
        "20",
        "30",
    )


def test_once_decided_the_live_update_takes_away_actions_that_no_longer_apply(
    client_for, marketing_request, platform_admin, marketing_lead
):
    lead = client_for(marketing_lead)
    waiting = lead.get(
        f"/requests/{marketing_request.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="request-live"
    ).content.decode()
    assert "Cancel request" in waiting
    # While it waits, an approver's half-written comment is never replaced by the poll.
    assert 'id="request-decision"' not in waiting

    client_for(platform_admin).post(f"/requests/{marketing_request.pk}/decide/", {"decision": "approve"})
    decided = lead.get(
        f"/requests/{marketing_request.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="request-live"
    ).content.decode()
    assert 'id="request-actions" hx-swap-oob="true"' in decided
    assert "Cancel request" not in decided
    assert 'id="request-decision" hx-swap-oob="true"' in decided
    assert "another approver decides" not in decided


@pytest.mark.parametrize("action", ["decide", "submit", "cancel", "retry", "edit"])
def test_every_action_walks_the_ladder(
    client, client_for, marketing_request, finance_lead, marketing_member, action
):
    url = f"/requests/{marketing_request.pk}/{action}/"
    assert client.post(url)["Location"].startswith("/accounts/login/")
    assert client_for(finance_lead).post(url).status_code == 404
    assert client_for(marketing_member).post(url).status_code == 403
    assert DeploymentRequest.objects.get(pk=marketing_request.pk).state == State.SUBMITTED


def test_the_live_preview_walks_the_ladder(
    client, client_for, marketing_request, finance_lead, marketing_member
):
    data = {**NEW, "request": marketing_request.pk}
    assert client.post("/requests/new/preview/", data)["Location"].startswith("/accounts/login/")
    assert client_for(marketing_member).post("/requests/new/preview/", data).status_code == 403
    # A lead of another department cannot preview against Marketing's request.
    assert client_for(finance_lead).post("/requests/new/preview/", data).status_code == 404
