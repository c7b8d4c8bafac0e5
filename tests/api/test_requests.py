"""Deployment requests through the API: every operation walks the ladder (anonymous, another
department, wrong role, right role), and each write is the page's service call, with the same
audit trail, the form's messages by field, and the page's rules for who may do what when."""

import json
from datetime import timedelta
from decimal import Decimal
from typing import get_args

import pytest
from django.utils import timezone

from api import request_schemas
from approvals.forms import DeploymentRequestForm
from approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest
from audit.models import AuditEvent
from audit.services import audit_trail
from org.models import PlatformGroup
from provisioning.models import DataClassification, ModelDeployment
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.factories import make_landing_zone, make_offer, make_request, make_user

State = DeploymentRequest.State
NEW = {
    "kind": "new_deployment",
    "department": "marketing",
    "display_name": "Copy assistant",
    "purpose": "Drafting campaign copy",
    "region": "swedencentral",
    "model_name": "gpt-4o-mini",
    "model_version": "2024-07-18",
    "sku": "GlobalStandard",
    "capacity": 30,
    "input_tokens_per_month": "10",
    "output_tokens_per_month": 2,
}


@pytest.fixture
def zone(db):
    return make_landing_zone(name="Central", slug="central", allowed_regions=["swedencentral", "eastus2"])


@pytest.fixture
def offers(zone):
    """gpt-4o-mini (GlobalStandard) in Sweden Central with 100K TPM of quota left."""
    return [make_offer(subscription_id=zone.subscription_id)]


@pytest.fixture
def policy(db) -> ApprovalPolicy:
    policy = ApprovalPolicy.current()
    policy.auto_approve_max_capacity = 20
    policy.finance_cost_threshold = Decimal("1000.00")
    policy.save()
    return policy


@pytest.fixture
def setting(marketing, zone, offers, policy):
    """Marketing deploys into the central landing zone, where the catalog offers gpt-4o-mini."""


@pytest.fixture
def waiting(setting, marketing, marketing_lead) -> DeploymentRequest:
    """Submitted, 50K TPM: above the automatic size, so it waits for a platform admin."""
    return make_request(department=marketing, requester=marketing_lead, capacity=50)


@pytest.fixture
def draft(setting, marketing, marketing_lead) -> DeploymentRequest:
    return make_request(department=marketing, requester=marketing_lead, capacity=50, submit=False)


def reload(request: DeploymentRequest) -> DeploymentRequest:
    return DeploymentRequest.objects.get(pk=request.pk)


def verbs(request: DeploymentRequest) -> list[str]:
    return [event.verb for event in audit_trail(request)]


# The ladder ------------------------------------------------------------------------------------

# (method, path, body): every operation on one request; `{pk}` is the request's id.
ONE_REQUEST = [
    ("get", "/api/v1/requests/{pk}", None),
    ("patch", "/api/v1/requests/{pk}", {"purpose": "Changed"}),
    ("post", "/api/v1/requests/{pk}/submit", None),
    ("post", "/api/v1/requests/{pk}/cancel", None),
    ("post", "/api/v1/requests/{pk}/approve", {}),
    ("post", "/api/v1/requests/{pk}/reject", {"reason": "No budget"}),
    ("post", "/api/v1/requests/{pk}/send-back", {"comment": "Less capacity"}),
    ("post", "/api/v1/requests/{pk}/retry", None),
]
LISTS = [("get", "/api/v1/requests", None), ("get", "/api/v1/approvals", None)]
CREATE = ("post", "/api/v1/requests", NEW)


def call(client, method: str, path: str, body=None, **headers):
    if body is None:
        return getattr(client, method)(path, headers=headers)
    return getattr(client, method)(path, body, content_type="application/json", headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), [*ONE_REQUEST, *LISTS, CREATE])
def test_anonymous_callers_get_a_401(anonymous, waiting, method, path, body):
    assert_problem(call(anonymous, method, path.format(pk=waiting.pk), body), 401)
    assert reload(waiting).state == State.SUBMITTED


@pytest.mark.parametrize(("method", "path", "body"), ONE_REQUEST)
def test_another_departments_lead_gets_a_404_and_nothing_changes(
    api_as, waiting, finance_lead, method, path, body
):
    before = verbs(waiting)

    body = assert_problem(call(api_as(finance_lead), method, path.format(pk=waiting.pk), body), 404)

    assert body["detail"] == "No such request."
    assert verbs(waiting) == before


@pytest.mark.parametrize(("method", "path", "body"), [*ONE_REQUEST, *LISTS, CREATE])
def test_a_plain_member_gets_a_403(api_as, waiting, marketing_member, method, path, body):
    assert_problem(call(api_as(marketing_member), method, path.format(pk=waiting.pk), body), 403)
    assert DeploymentRequest.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("post", "/api/v1/requests/{pk}/approve", {}, "Only platform admins and finance approvers decide"),
        (
            "post",
            "/api/v1/requests/{pk}/reject",
            {"reason": "No"},
            "Only platform admins and finance approvers",
        ),
        ("post", "/api/v1/requests/{pk}/send-back", {"comment": "Less"}, "Only platform admins and finance"),
        ("post", "/api/v1/requests/{pk}/retry", None, "Only platform admins can retry"),
        (
            "get",
            "/api/v1/approvals",
            None,
            "The approval queue is for platform admins and finance approvers.",
        ),
    ],
)
def test_a_lead_may_not_decide_retry_or_open_the_queue(
    api_as, waiting, marketing_lead, method, path, body, detail
):
    problem = assert_problem(call(api_as(marketing_lead), method, path.format(pk=waiting.pk), body), 403)
    assert detail in problem["detail"]
    assert reload(waiting).state == State.SUBMITTED


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/api/v1/requests/{pk}", {"purpose": "Changed"}),
        ("post", "/api/v1/requests/{pk}/submit", None),
        ("post", "/api/v1/requests/{pk}/cancel", None),
    ],
)
def test_a_finance_approver_sees_a_request_but_may_not_change_it(
    api_as, draft, finance_approver, method, path, body
):
    client = api_as(finance_approver)
    assert client.get(f"/api/v1/requests/{draft.pk}").status_code == 200

    problem = assert_problem(call(client, method, path.format(pk=draft.pk), body), 403)

    assert problem["detail"] == "Only the department's leads and platform admins can change this request."
    assert reload(draft).state == State.DRAFT


def test_a_finance_approver_may_not_create_a_request(api_as, setting, finance_approver):
    problem = assert_problem(call(api_as(finance_approver), *CREATE), 403)
    assert problem["detail"] == "Department leads and platform admins ask for deployments."


def test_a_lead_may_not_ask_for_another_department(api_as, setting, finance_lead, finance):
    problem = assert_problem(call(api_as(finance_lead), *CREATE), 400)

    assert problem["errors"]["department"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert DeploymentRequest.objects.count() == 0


# Creating --------------------------------------------------------------------------------------


def test_a_lead_creates_a_draft_as_the_form_would(api_as, setting, marketing_lead):
    response = call(api_as(marketing_lead), *CREATE)

    assert response.status_code == 201, response.content
    created = DeploymentRequest.objects.get()
    assert response["Location"] == f"/api/v1/requests/{created.pk}"
    assert response["ETag"]
    body = response.json()
    assert (body["id"], body["state"], body["kind"], body["department"]) == (
        created.pk,
        "draft",
        "new_deployment",
        "marketing",
    )
    assert (created.capacity, created.input_tokens_per_month, created.requester) == (
        30,
        Decimal(10),
        marketing_lead,
    )
    assert body["requester"] == {"email": "lead@example.com", "name": marketing_lead.display_name}
    assert body["data_classification"] == "internal"
    assert body["estimated_monthly_cost"]["currency"] == "USD"
    assert Decimal(body["estimated_monthly_cost"]["amount"]) == created.estimated_monthly_cost.quantize(
        Decimal("0.01")
    )
    assert body["your_actions"] == ["edit", "submit", "cancel"]
    assert [entry["title"] for entry in body["timeline"]] == ["Created"]
    event = AuditEvent.objects.get(verb="request.created")
    assert (event.actor, event.object_id) == (marketing_lead, str(created.pk))


def test_an_admin_asks_on_behalf_of_any_department(api_as, setting, platform_admin):
    response = call(api_as(platform_admin), *CREATE)

    assert response.status_code == 201, response.content
    assert DeploymentRequest.objects.get().requester == platform_admin


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"purpose": None}, "purpose", "This field is required."),
        ({"region": "westeurope"}, "region", "Central does not allow West Europe."),
        ({"model_name": "gpt-5"}, "model_name", "gpt-5 is not offered in Sweden Central."),
        (
            {"capacity": 150},
            "capacity",
            "Sweden Central has 100 K TPM of gpt-4o-mini (GlobalStandard) left in this subscription; "
            "this asks for 150 K TPM more.",
        ),
        ({"expires_on": "2000-01-01"}, "expires_on", "The expiry date must be in the future."),
    ],
)
def test_the_forms_rules_answer_400_by_field_with_its_messages(
    client_for, api_as, setting, marketing_lead, change, field, message
):
    problem = assert_problem(call(api_as(marketing_lead), "post", "/api/v1/requests", {**NEW, **change}), 400)

    assert problem["errors"][field] == [message]
    assert DeploymentRequest.objects.count() == 0
    # The page says the same next to the same field.
    posted = {
        name: value for name, value in {**NEW, **change, "action": "draft"}.items() if value is not None
    }
    page = client_for(marketing_lead).post("/requests/new/", posted)
    assert page.status_code == 400
    form_errors = page.context["form"].errors
    assert [str(m) for m in form_errors[field]] == problem["errors"][field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": "many"}, "capacity"),
        ({"sku": "Cheap"}, "sku"),
        ({"display_name": "x" * 121}, "display_name"),
        ({"input_tokens_per_month": "1.0001"}, "input_tokens_per_month"),
        ({"output_tokens_per_month": 2.5}, "output_tokens_per_month"),
        ({"input_tokens_per_month": "NaN"}, "input_tokens_per_month"),
        ({"colour": "blue"}, "colour"),
        ({"department": "no such\x00"}, "department"),
        ({"expires_on": 1798761600}, "expires_on"),
        ({"expires_on": "20270101"}, "expires_on"),
    ],
)
def test_malformed_values_are_422_before_the_form(api_as, setting, marketing_lead, change, field):
    problem = assert_problem(call(api_as(marketing_lead), "post", "/api/v1/requests", {**NEW, **change}), 422)

    assert list(problem["errors"]) == [field]
    assert DeploymentRequest.objects.count() == 0


def test_a_field_the_kind_does_not_take_is_refused(api_as, setting, marketing_lead):
    body = {
        "kind": "decommission",
        "department": "marketing",
        "purpose": "Unused",
        "system_prompt": "Be brief",
    }

    problem = assert_problem(call(api_as(marketing_lead), "post", "/api/v1/requests", body), 400)

    assert problem["errors"] == {
        "system_prompt": ["A request of the kind “Decommission” does not take this field."]
    }


def test_the_same_idempotency_key_replays_the_first_answer(setting, marketing_lead):
    client = bearer(token_for(marketing_lead))

    first = call(client, *CREATE, **{"Idempotency-Key": "create-1"})
    again = call(client, *CREATE, **{"Idempotency-Key": "create-1"})

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert DeploymentRequest.objects.count() == 1

    other = call(
        client, "post", "/api/v1/requests", {**NEW, "capacity": 40}, **{"Idempotency-Key": "create-1"}
    )
    problem = assert_problem(other, 409)
    assert "Idempotency-Key" in problem["detail"]
    assert DeploymentRequest.objects.count() == 1


# Reading ---------------------------------------------------------------------------------------


def test_a_request_comes_with_its_approvals_timeline_and_etag(
    api_as, waiting, marketing_lead, platform_admin
):
    response = api_as(marketing_lead).get(f"/api/v1/requests/{waiting.pk}")

    assert response.status_code == 200, response.content
    assert response["ETag"].startswith('"')
    body = response.json()
    assert body["state"] == "submitted"
    assert body["state_label"] == "Waiting for approval"
    [step] = body["approvals"]
    assert (step["role"], step["state"], step["decided_by"], step["round"]) == (
        "platform",
        "pending",
        None,
        1,
    )
    assert "50K TPM is more than the 20K TPM approved automatically" in step["reason"]
    titles = [entry["title"] for entry in body["timeline"]]
    assert titles == ["Created", "Submitted for approval", "Waiting for a platform admin"]
    assert body["timeline"][-1]["status"] == "waiting"
    assert body["your_actions"] == ["cancel"]
    # The admin may decide it.
    admin_view = api_as(platform_admin).get(f"/api/v1/requests/{waiting.pk}").json()
    assert admin_view["your_actions"] == ["cancel", "approve", "reject", "send_back"]


def test_an_unknown_request_is_a_404(api_as, platform_admin):
    client = api_as(platform_admin)
    assert_problem(client.get("/api/v1/requests/999999"), 404)
    assert_problem(client.get("/api/v1/requests/0"), 422)


# Changing a draft -----------------------------------------------------------------------------


def test_a_patch_changes_only_the_fields_sent_through_the_service(draft, marketing_lead):
    client = bearer(token_for(marketing_lead))
    etag = client.get(f"/api/v1/requests/{draft.pk}")["ETag"]

    response = call(
        client,
        "patch",
        f"/api/v1/requests/{draft.pk}",
        {"capacity": 40, "expires_on": None},
        **{"If-Match": etag},
    )

    assert response.status_code == 200, response.content
    changed = reload(draft)
    assert (changed.capacity, changed.display_name, changed.purpose) == (
        40,
        "Copy assistant",
        "Drafting campaign copy",
    )
    assert response["ETag"] != etag
    assert response.json()["capacity"] == 40
    edited = AuditEvent.objects.get(verb="request.edited")
    assert edited.actor == marketing_lead
    assert [change["field"] for change in edited.after["changes"]] == ["capacity"]
    assert "Edited" in [entry["title"] for entry in response.json()["timeline"]]


def test_a_patch_with_a_stale_etag_is_a_412_and_changes_nothing(draft, marketing_lead):
    client = bearer(token_for(marketing_lead))
    etag = client.get(f"/api/v1/requests/{draft.pk}")["ETag"]
    call(client, "patch", f"/api/v1/requests/{draft.pk}", {"purpose": "Someone else's change"})

    response = call(client, "patch", f"/api/v1/requests/{draft.pk}", {"capacity": 40}, **{"If-Match": etag})

    problem = assert_problem(response, 412)
    assert "changed since you read it" in problem["detail"]
    assert response["ETag"] == client.get(f"/api/v1/requests/{draft.pk}")["ETag"]
    assert reload(draft).capacity == 50


def test_a_patch_answers_the_forms_messages_and_keeps_the_draft(draft, marketing_lead):
    client = bearer(token_for(marketing_lead))

    problem = assert_problem(
        call(client, "patch", f"/api/v1/requests/{draft.pk}", {"capacity": 500, "purpose": ""}), 400
    )

    assert problem["errors"]["purpose"] == ["This field is required."]
    assert "left in this subscription" in problem["errors"]["capacity"][0]
    assert reload(draft).capacity == 50
    assert_problem(call(client, "patch", f"/api/v1/requests/{draft.pk}", {"kind": "decommission"}), 422)
    assert_problem(call(client, "patch", f"/api/v1/requests/{draft.pk}", {"target": 5}), 400)


def test_a_submitted_request_cannot_be_patched(waiting, marketing_lead):
    client = bearer(token_for(marketing_lead))

    problem = assert_problem(call(client, "patch", f"/api/v1/requests/{waiting.pk}", {"capacity": 40}), 409)

    assert problem["detail"] == f"Request #{waiting.pk} is waiting for approval: it cannot be edited."


# Submitting and cancelling ---------------------------------------------------------------------


def test_a_lead_submits_a_draft_and_a_second_submit_is_a_409(api_as, draft, marketing_lead):
    client = api_as(marketing_lead)

    response = client.post(f"/api/v1/requests/{draft.pk}/submit")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "submitted"
    assert [step["role"] for step in response.json()["approvals"]] == ["platform"]
    assert verbs(draft) == ["request.created", "request.submitted"]
    again = assert_problem(client.post(f"/api/v1/requests/{draft.pk}/submit"), 409)
    assert again["detail"] == f"Request #{draft.pk} is waiting for approval: it cannot be submitted."


def test_a_small_request_is_approved_by_policy_on_submit(setting, marketing, marketing_lead):
    small = make_request(department=marketing, requester=marketing_lead, capacity=10, submit=False)

    response = bearer(token_for(marketing_lead)).post(f"/api/v1/requests/{small.pk}/submit")

    assert response.json()["state"] == "provisioning"
    assert response.json()["approvals"][0]["role"] == "automatic"


def test_a_draft_that_no_longer_fits_is_a_400_by_field_on_submit(draft, marketing_lead, zone):
    zone.allowed_regions = ["eastus2"]
    zone.save()

    problem = assert_problem(
        bearer(token_for(marketing_lead)).post(f"/api/v1/requests/{draft.pk}/submit"), 400
    )

    assert problem["errors"] == {"region": ["Central does not allow Sweden Central."]}
    assert reload(draft).state == State.DRAFT


def test_cancel_withdraws_the_approvals_and_a_second_cancel_is_a_409(api_as, waiting, marketing_lead):
    client = api_as(marketing_lead)

    response = client.post(f"/api/v1/requests/{waiting.pk}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert response.json()["approvals"][0]["state"] == "withdrawn"
    assert verbs(waiting)[-1] == "request.cancelled"
    problem = assert_problem(client.post(f"/api/v1/requests/{waiting.pk}/cancel"), 409)
    assert problem["detail"] == f"Request #{waiting.pk} is cancelled: it cannot be cancelled."


# Deciding -------------------------------------------------------------------------------------


def _decision_events(request: DeploymentRequest) -> list[tuple[object, ...]]:
    return [
        (
            event.verb,
            event.actor_id,
            event.note,
            event.before and event.before.get("state"),
            event.after and event.after.get("state"),
            event.after and event.after.get("step"),
        )
        for event in audit_trail(request)
    ]


def test_an_approval_through_the_api_is_audited_as_the_pages(
    client_for, setting, marketing, marketing_lead, platform_admin
):
    on_page = make_request(department=marketing, requester=marketing_lead, capacity=50)
    by_api = make_request(department=marketing, requester=marketing_lead, capacity=50)

    client_for(platform_admin).post(
        f"/requests/{on_page.pk}/decide/", {"decision": "approve", "comment": "Fine for Q3"}
    )
    response = bearer(token_for(platform_admin)).post(
        f"/api/v1/requests/{by_api.pk}/approve", {"comment": "Fine for Q3"}, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "provisioning"
    assert _decision_events(by_api) == _decision_events(on_page)
    assert verbs(by_api) == [
        "request.created",
        "request.submitted",
        "request.step_approved",
        "request.approved",
        "request.provisioning",
    ]
    [step] = response.json()["approvals"]
    assert (step["state"], step["decided_by"]["email"], step["comment"]) == (
        "approved",
        platform_admin.email,
        "Fine for Q3",
    )
    assert step["decided_at"] is not None


def test_approving_a_draft_is_a_409(api_as, draft, platform_admin):
    problem = assert_problem(
        api_as(platform_admin).post(
            f"/api/v1/requests/{draft.pk}/approve", {}, content_type="application/json"
        ),
        409,
    )
    assert problem["detail"] == f"Request #{draft.pk} is draft: it cannot be approved."


def test_nobody_approves_their_own_request(setting, marketing, platform_admin):
    own = make_request(department=marketing, requester=platform_admin, capacity=50)

    problem = assert_problem(
        bearer(token_for(platform_admin)).post(
            f"/api/v1/requests/{own.pk}/approve", {}, content_type="application/json"
        ),
        403,
    )

    assert problem["detail"] == "Nobody approves their own request: another approver decides."
    assert reload(own).state == State.SUBMITTED


def test_a_finance_approver_cannot_give_a_platform_step(waiting, finance_approver):
    problem = assert_problem(
        bearer(token_for(finance_approver)).post(
            f"/api/v1/requests/{waiting.pk}/approve", {}, content_type="application/json"
        ),
        403,
    )
    assert problem["detail"] == "This request waits for a platform admin; your role cannot decide it."


def test_reject_needs_a_reason(waiting, platform_admin):
    client = bearer(token_for(platform_admin))
    path = f"/api/v1/requests/{waiting.pk}/reject"

    assert "reason" in assert_problem(client.post(path, {}, content_type="application/json"), 422)["errors"]
    blank = assert_problem(client.post(path, {"reason": "   "}, content_type="application/json"), 400)
    assert blank["errors"] == {"reason": ["Say why the request is rejected: the requester reads it."]}

    response = client.post(path, {"reason": "No budget this quarter"}, content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "rejected"
    assert response.json()["approvals"][0]["comment"] == "No budget this quarter"
    assert AuditEvent.objects.get(verb="request.rejected").note == "No budget this quarter"
    assert_problem(client.post(path, {"reason": "Again"}, content_type="application/json"), 409)


def test_send_back_then_the_lead_edits_and_resubmits(waiting, marketing_lead, platform_admin):
    admin, lead = bearer(token_for(platform_admin)), bearer(token_for(marketing_lead))
    blank = assert_problem(
        admin.post(
            f"/api/v1/requests/{waiting.pk}/send-back", {"comment": " "}, content_type="application/json"
        ),
        400,
    )
    assert blank["errors"] == {"comment": ["Say what should change: the requester reads it."]}

    sent_back = admin.post(
        f"/api/v1/requests/{waiting.pk}/send-back",
        {"comment": "Ask for 40K"},
        content_type="application/json",
    )
    assert sent_back.json()["state"] == "changes_requested"
    assert lead.get(f"/api/v1/requests/{waiting.pk}").json()["your_actions"] == ["edit", "submit", "cancel"]

    assert call(lead, "patch", f"/api/v1/requests/{waiting.pk}", {"capacity": 40}).status_code == 200
    resubmitted = lead.post(f"/api/v1/requests/{waiting.pk}/submit").json()

    assert (resubmitted["state"], resubmitted["round"]) == ("submitted", 2)
    assert [(s["round"], s["state"]) for s in resubmitted["approvals"]] == [
        (1, "changes_requested"),
        (2, "pending"),
    ]
    assert "Resubmitted for approval" in [entry["title"] for entry in resubmitted["timeline"]]


def test_an_admin_who_edited_the_round_does_not_decide_it(waiting, marketing_lead, platform_admin):
    admin = bearer(token_for(platform_admin))
    admin.post(
        f"/api/v1/requests/{waiting.pk}/send-back",
        {"comment": "Ask for 40K"},
        content_type="application/json",
    )
    call(admin, "patch", f"/api/v1/requests/{waiting.pk}", {"capacity": 40})
    bearer(token_for(marketing_lead)).post(f"/api/v1/requests/{waiting.pk}/submit")

    problem = assert_problem(
        admin.post(f"/api/v1/requests/{waiting.pk}/approve", {}, content_type="application/json"), 403
    )

    assert problem["detail"] == "You edited this round of the request, so another approver decides."


# Retrying --------------------------------------------------------------------------------------


def test_retry_of_a_request_that_did_not_fail_is_a_409(api_as, waiting, platform_admin):
    problem = assert_problem(api_as(platform_admin).post(f"/api/v1/requests/{waiting.pk}/retry"), 409)
    assert problem["detail"] == f"Request #{waiting.pk} is waiting for approval: it cannot be retried."


def test_an_admin_retries_a_failed_request(emulator, marketing, marketing_lead, platform_admin, policy):
    from approvals import services
    from tests.emulator.fixtures import SUBSCRIPTION, drive_run

    make_landing_zone(subscription_id=SUBSCRIPTION, allowed_regions=["swedencentral"])
    make_offer(subscription_id=SUBSCRIPTION, quota_left=None)
    emulator.inject(kind="lro_failure", count=10)
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)
    services.request_approve(request=request, actor=platform_admin)
    drive_run(reload(request).deployment_id)
    services.request_follow_provisioning(deployment_id=reload(request).deployment_id)
    assert reload(request).state == State.FAILED
    emulator.reset()
    admin = bearer(token_for(platform_admin))
    assert admin.get(f"/api/v1/requests/{request.pk}").json()["your_actions"] == ["retry"]

    response = admin.post(f"/api/v1/requests/{request.pk}/retry")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "provisioning"
    assert verbs(request)[-2:] == ["request.retried", "request.provisioning"]


# Lists -----------------------------------------------------------------------------------------


@pytest.fixture
def several(setting, marketing, marketing_lead, finance, platform_admin):
    """Marketing: a draft, two waiting; Finance: one waiting (a platform admin asked for it)."""
    finance_zone_request = make_request(
        department=finance, requester=platform_admin, capacity=50, display_name="Ledger"
    )
    drafted = make_request(
        department=marketing, requester=marketing_lead, capacity=50, submit=False, display_name="Draft"
    )
    first = make_request(department=marketing, requester=marketing_lead, capacity=50, display_name="First")
    second = make_request(department=marketing, requester=marketing_lead, capacity=60, display_name="Second")
    return {"finance": finance_zone_request, "draft": drafted, "first": first, "second": second}


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["items"]]


def test_a_lead_lists_their_departments_requests_newest_first(api_as, several, marketing_lead):
    assert titles(api_as(marketing_lead).get("/api/v1/requests")) == ["Second", "First", "Draft"]


def test_approvers_list_every_request_with_filters_and_sorts(several, finance_approver):
    client = bearer(token_for(finance_approver))

    assert titles(client.get("/api/v1/requests")) == ["Second", "First", "Draft", "Ledger"]
    assert titles(client.get("/api/v1/requests?department=finance")) == ["Ledger"]
    assert titles(client.get("/api/v1/requests?state=draft")) == ["Draft"]
    assert titles(client.get("/api/v1/requests?state=open&sort=created_at")) == [
        "Ledger",
        "Draft",
        "First",
        "Second",
    ]
    assert titles(client.get("/api/v1/requests?kind=decommission")) == []
    assert titles(client.get("/api/v1/requests?sort=-estimated_monthly_cost"))[0] == "Second"
    created = several["first"].created_at
    after = (created - timedelta(microseconds=1)).isoformat()
    assert titles(client.get("/api/v1/requests", {"created_after": after})) == ["Second", "First"]
    assert titles(client.get("/api/v1/requests", {"created_before": created.isoformat()})) == [
        "Draft",
        "Ledger",
    ]
    assert titles(client.get("/api/v1/requests?department=nowhere")) == []


@pytest.mark.parametrize(
    "query",
    [
        "state=lost",
        "kind=lunch",
        "sort=title",
        "created_after=2026-01-01T00:00:00",
        "created_after=0001-01-01T00:00:00%2B01:00",
        "created_after=1798761600",
        "created_before=1.1754943508222875e-38",
        "department=a%20b",
    ],
)
def test_bad_filters_are_422(several, finance_approver, query):
    assert_problem(bearer(token_for(finance_approver)).get(f"/api/v1/requests?{query}"), 422)


def test_pages_walk_the_list_once_and_a_cursor_keeps_to_its_filter(several, finance_approver):
    client = bearer(token_for(finance_approver))
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/requests", {"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Second", "First", "Draft", "Ledger"]

    cursor = client.get("/api/v1/requests?state=open&limit=1").json()["next_cursor"]
    assert_problem(client.get("/api/v1/requests", {"state": "submitted", "limit": 1, "cursor": cursor}), 400)


def test_the_queue_lists_what_waits_for_you_oldest_submission_first(
    several, platform_admin, finance_approver
):
    DeploymentRequest.objects.filter(pk=several["first"].pk).update(
        submitted_at=timezone.now() + timedelta(minutes=5)
    )

    admin = bearer(token_for(platform_admin))
    # The finance request is the admin's own: not theirs to decide.
    assert titles(admin.get("/api/v1/approvals")) == ["Second", "First"]
    assert titles(admin.get("/api/v1/approvals?sort=-estimated_monthly_cost")) == ["Second", "First"]
    assert titles(bearer(token_for(finance_approver)).get("/api/v1/approvals")) == []
    other_admin = make_user(email="admin2@example.com", platform_group=PlatformGroup.ADMINS)
    assert titles(bearer(token_for(other_admin)).get("/api/v1/approvals")) == ["Ledger", "Second", "First"]


# The document ---------------------------------------------------------------------------------


def test_the_literals_match_the_models():
    assert set(get_args(request_schemas.Kind)) == set(DeploymentRequest.Kind.values)
    assert set(get_args(request_schemas.FormKind)) == set(DeploymentRequest.Kind.on_the_form())
    assert set(get_args(request_schemas.State)) == set(State.values)
    assert set(get_args(request_schemas.Classification)) == set(DataClassification.values)
    assert set(get_args(request_schemas.Sku)) == set(ModelDeployment.Sku.values)
    assert set(get_args(request_schemas.StepKind)) == set(ApprovalStep.Kind.values)
    assert set(get_args(request_schemas.StepState)) == set(ApprovalStep.State.values)
    taken = {name for names in DeploymentRequestForm.FIELDS_BY_KIND.values() for name in names}
    assert taken - {"department"} == set(request_schemas.RequestFields.model_fields)


def test_answers_match_the_document(anonymous, waiting, marketing_lead, platform_admin, finance_lead):
    document = anonymous.get("/api/v1/openapi.json").json()
    lead, admin = bearer(token_for(marketing_lead)), bearer(token_for(platform_admin))
    one = "/api/v1/requests/{request_id}"
    checks = [
        (lead, "get", f"/api/v1/requests/{waiting.pk}", None, one),
        (lead, "get", "/api/v1/requests?limit=1", None, "/api/v1/requests"),
        (admin, "get", "/api/v1/approvals", None, "/api/v1/approvals"),
        (lead, "post", "/api/v1/requests", NEW, "/api/v1/requests"),
        (lead, "post", "/api/v1/requests", {**NEW, "capacity": 500}, "/api/v1/requests"),
        (lead, "patch", f"/api/v1/requests/{waiting.pk}", {"capacity": 40}, one),
        (bearer(token_for(finance_lead)), "get", f"/api/v1/requests/{waiting.pk}", None, one),
        (admin, "post", f"/api/v1/requests/{waiting.pk}/approve", {}, one + "/approve"),
        (admin, "post", f"/api/v1/requests/{waiting.pk}/approve", {}, one + "/approve"),
    ]
    statuses = []
    for client, method, url, body, path in checks:
        response = call(client, method, url, body)
        _validate(document, path, method, response)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 201, 400, 409, 404, 200, 409]


def test_a_lone_surrogate_is_refused_not_a_server_error(setting, marketing_lead):
    client = bearer(token_for(marketing_lead))
    body = json.dumps({**NEW, "purpose": "Copy \ud800"})

    response = client.post("/api/v1/requests", body, content_type="application/json")

    assert_problem(response, 422)
    assert DeploymentRequest.objects.count() == 0
