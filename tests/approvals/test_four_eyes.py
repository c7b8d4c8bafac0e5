"""Four eyes: whoever wrote a round of a request (created, edited or submitted it) does not decide
that round, admin or not; every decision keeps who edited what in the round it decided, and the
request page shows it."""

import importlib
import re
from dataclasses import replace

import pytest
from django.apps import apps

from approvals import services
from approvals.models import ApprovalStep, DeploymentRequest, RequestEdit
from approvals.spec import RequestSpec
from audit.models import AuditEvent
from org.models import PlatformGroup
from tests.approvals.test_pages import NEW
from tests.factories import make_request, make_user

State = DeploymentRequest.State
Refused = services.RequestActionRefused
EDITED_THIS_ROUND = "You edited this round of the request, so another approver decides."
SUBMITTED_THIS_ROUND = "You submitted this round of the request, so another approver decides."


@pytest.fixture
def ada(db):
    """A platform admin who helps leads with their drafts."""
    return make_user(email="ada@example.com", first_name="Ada", platform_group=PlatformGroup.ADMINS)


@pytest.fixture
def sam(db):
    """Another platform admin, who did not touch the request."""
    return make_user(email="sam@example.com", first_name="Sam", platform_group=PlatformGroup.ADMINS)


@pytest.fixture
def draft(marketing, marketing_lead, zone, offers, policy) -> DeploymentRequest:
    """The lead's draft for 50K TPM: above the automatic size, so a person decides."""
    return make_request(department=marketing, requester=marketing_lead, capacity=50, submit=False)


def reload(request: DeploymentRequest) -> DeploymentRequest:
    return DeploymentRequest.objects.get(pk=request.pk)


def test_an_admin_who_rewrote_a_leads_draft_cannot_approve_it_alone(
    client_for, draft, marketing_lead, ada, sam
):
    ada_client = client_for(ada)
    # Ada raises the capacity in the lead's draft through the form; the lead submits it.
    response = ada_client.post(f"/requests/{draft.pk}/edit/", {**NEW, "capacity": "60", "action": "draft"})
    assert response.status_code == 302
    services.request_submit(request=draft, actor=marketing_lead)

    page = ada_client.get(f"/requests/{draft.pk}/").content.decode()
    assert "Your decision" not in page
    assert EDITED_THIS_ROUND in page
    assert "Nothing waits for you" in ada_client.get("/approvals/").content.decode()

    refused = ada_client.post(f"/requests/{draft.pk}/decide/", {"decision": "approve"})
    assert refused.status_code == 400
    assert EDITED_THIS_ROUND in refused.content.decode()
    with pytest.raises(Refused, match=re.escape(EDITED_THIS_ROUND)):
        services.request_send_back(request=draft, actor=ada, comment="Looks fine to me")
    assert reload(draft).state == State.SUBMITTED

    # Someone who did not write the round decides it.
    assert "Your decision" in client_for(sam).get(f"/requests/{draft.pk}/").content.decode()
    services.request_approve(request=draft, actor=sam)
    assert reload(draft).state == State.PROVISIONING


def test_nobody_who_wrote_the_round_is_emailed_to_decide_it(
    client_for, draft, marketing_lead, ada, sam, mailoutbox, django_capture_on_commit_callbacks
):
    client_for(ada).post(f"/requests/{draft.pk}/edit/", {**NEW, "capacity": "60", "action": "draft"})

    with django_capture_on_commit_callbacks(execute=True):
        services.request_submit(request=draft, actor=marketing_lead)

    asked = [mail for mail in mailoutbox if "Waiting for your approval" in mail.subject]
    assert [mail.to for mail in asked] == [[sam.email]]


def test_whoever_submitted_the_round_does_not_decide_it(client_for, draft, ada):
    client = client_for(ada)
    client.post(f"/requests/{draft.pk}/submit/")
    assert reload(draft).state == State.SUBMITTED

    with pytest.raises(Refused, match=re.escape(SUBMITTED_THIS_ROUND)):
        services.request_approve(request=draft, actor=ada)
    assert DeploymentRequest.objects.awaiting(ada).count() == 0


def test_an_edit_in_an_earlier_round_does_not_bar_the_next(draft, marketing_lead, ada, sam):
    services.request_update(request=draft, actor=ada, spec=replace(RequestSpec.of(draft), capacity=60))
    services.request_submit(request=draft, actor=marketing_lead)
    services.request_send_back(request=draft, actor=sam, comment="40K TPM is enough")

    services.request_update(
        request=draft,
        actor=marketing_lead,
        spec=replace(RequestSpec.of(reload(draft)), capacity=40),
        submit=True,
    )

    # Round 2 was written by the lead alone: Ada may decide it.
    approved = services.request_approve(request=draft, actor=ada)
    assert (approved.round, approved.state) == (2, State.PROVISIONING)


@pytest.mark.parametrize(
    ("decide", "verb"),
    [
        (
            lambda request, actor: services.request_approve(request=request, actor=actor),
            "request.step_approved",
        ),
        (
            lambda request, actor: services.request_reject(request=request, actor=actor, reason="Not now"),
            "request.rejected",
        ),
        (
            lambda request, actor: services.request_send_back(request=request, actor=actor, comment="Why?"),
            "request.changes_requested",
        ),
    ],
)
def test_every_decision_keeps_who_edited_what_in_its_round(draft, marketing_lead, ada, sam, decide, verb):
    services.request_update(request=draft, actor=ada, spec=replace(RequestSpec.of(draft), capacity=60))
    services.request_submit(request=draft, actor=marketing_lead)

    decide(draft, sam)

    step = ApprovalStep.objects.get(request=draft, round=1)
    kept = [(edit["actor"], edit["action"], edit["changes"]) for edit in step.round_edits]
    assert kept == [
        ("Test", "created", []),
        ("Ada", "edited", [{"field": "capacity", "label": "Capacity", "before": "50", "after": "60"}]),
        ("Test", "submitted", []),
    ]
    event = AuditEvent.objects.get(verb=verb, object_id=str(draft.pk))
    assert event.after["edits"] == step.round_edits


def test_the_request_page_shows_the_rounds_edits_and_what_each_decision_decided(
    client_for, draft, marketing_lead, ada, sam
):
    services.request_update(request=draft, actor=ada, spec=replace(RequestSpec.of(draft), capacity=60))
    services.request_submit(request=draft, actor=marketing_lead)
    waiting = client_for(sam).get(f"/requests/{draft.pk}/").content.decode()
    assert "Written in round 1" in waiting
    assert "Ada changed Capacity: 50 → 60" in waiting

    services.request_send_back(request=draft, actor=sam, comment="Why 60?")
    page = client_for(marketing_lead).get(f"/requests/{draft.pk}/").content.decode()
    timeline = page[page.index('id="timeline-heading"') :]
    assert "Capacity: 50 → 60" in timeline  # the edit itself
    assert "In the round it decided:" in timeline
    assert timeline.index("Ada changed Capacity: 50 → 60") > timeline.index("Sent back for changes")


def test_a_policy_approval_keeps_the_rounds_edits_too(marketing, marketing_lead, zone, offers, policy):
    approved = make_request(department=marketing, requester=marketing_lead, capacity=10)

    step = approved.steps.get()
    assert step.kind == ApprovalStep.Kind.AUTOMATIC
    assert [edit["action"] for edit in step.round_edits] == ["created", "submitted"]


def test_requests_submitted_before_the_edit_log_learn_their_writers_from_the_audit_trail(
    draft, marketing_lead, ada
):
    services.request_update(request=draft, actor=ada, spec=replace(RequestSpec.of(draft), capacity=60))
    services.request_submit(request=draft, actor=marketing_lead)
    RequestEdit.objects.all().delete()
    migration = importlib.import_module("approvals.migrations.0003_round_edits_grant_changes_and_limits")

    migration.edits_from_audit_trail(apps, None)

    with pytest.raises(Refused, match=re.escape(EDITED_THIS_ROUND)):
        services.request_approve(request=draft, actor=ada)
    assert set(RequestEdit.objects.values_list("round", "action")) == {
        (1, "created"),
        (1, "edited"),
        (1, "submitted"),
    }


def test_the_admin_shows_the_edit_log_read_only(client_for, draft, ada):
    services.request_update(request=draft, actor=ada, spec=replace(RequestSpec.of(draft), capacity=60))

    page = client_for(ada).get(f"/admin/approvals/deploymentrequest/{draft.pk}/change/")

    assert page.status_code == 200
    assert "Request edits" in page.content.decode()
    assert "capacity" in page.content.decode()
