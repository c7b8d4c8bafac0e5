"""The request state machine: every transition, legal and illegal, each in the audit trail; the
hand-over to provisioning and back; two approvals at the same moment."""

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection

from approvals import services
from approvals.models import ApprovalStep, DeploymentRequest
from approvals.spec import RequestSpec
from audit.models import AuditEvent
from audit.services import audit_trail
from org.models import PlatformGroup
from provisioning.models import ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION, drive_run
from tests.factories import make_landing_zone, make_offer, make_request, make_user

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind
Refused = services.RequestActionRefused


@pytest.fixture
def waiting(marketing, marketing_lead, zone, offers, policy) -> DeploymentRequest:
    """A request for 50K TPM: above the automatic size, so it waits for a platform admin."""
    return make_request(department=marketing, requester=marketing_lead, capacity=50)


def reload(request: DeploymentRequest) -> DeploymentRequest:
    return DeploymentRequest.objects.get(pk=request.pk)


def verbs(request: DeploymentRequest) -> list[str]:
    return [event.verb for event in audit_trail(request)]


def test_approval_hands_the_request_to_provisioning_and_audits_each_step(waiting, platform_admin):
    approved = services.request_approve(request=waiting, actor=platform_admin, comment="Fine for Q3")

    assert approved.state == State.PROVISIONING
    assert approved.deployment.state == ModelDeployment.State.PROVISIONING
    assert approved.provisioning_run == approved.deployment.run == 1
    assert verbs(waiting) == [
        "request.created",
        "request.submitted",
        "request.step_approved",
        "request.approved",
        "request.provisioning",
    ]
    approval = AuditEvent.objects.get(verb="request.approved", object_id=str(waiting.pk))
    assert approval.actor == platform_admin
    assert (approval.before["state"], approval.after["state"]) == ("submitted", "approved")
    step = approved.steps.get()
    assert (step.state, step.decided_by, step.comment) == (
        ApprovalStep.State.APPROVED,
        platform_admin,
        "Fine for Q3",
    )


def test_rejecting_needs_a_reason_and_closes_the_request(waiting, platform_admin):
    with pytest.raises(Refused, match="Say why"):
        services.request_reject(request=waiting, actor=platform_admin, reason="  ")
    assert reload(waiting).state == State.SUBMITTED

    rejected = services.request_reject(
        request=waiting, actor=platform_admin, reason="Use the shared assistant"
    )
    assert rejected.state == State.REJECTED
    assert rejected.steps.get().comment == "Use the shared assistant"
    with pytest.raises(Refused, match="is rejected: it cannot be approved"):
        services.request_approve(request=waiting, actor=platform_admin)
    with pytest.raises(Refused, match="cannot be cancelled"):
        services.request_cancel(request=waiting, actor=waiting.requester)


def test_sent_back_the_lead_edits_and_resubmits_in_a_new_round(waiting, platform_admin, marketing_lead):
    with pytest.raises(Refused, match="Say what should change"):
        services.request_send_back(request=waiting, actor=platform_admin, comment="")
    services.request_send_back(request=waiting, actor=platform_admin, comment="20K TPM is plenty to start")
    assert reload(waiting).state == State.CHANGES_REQUESTED

    resubmitted = services.request_update(
        request=waiting, actor=marketing_lead, spec=replace(RequestSpec.of(waiting), capacity=20), submit=True
    )

    # 20K TPM fits the automatic rule now: the second round is approved by policy.
    assert resubmitted.round == 2
    assert resubmitted.state == State.PROVISIONING
    rounds = [(step.round, step.kind, step.state) for step in resubmitted.steps.all()]
    assert rounds == [
        (1, ApprovalStep.Kind.PLATFORM, ApprovalStep.State.CHANGES_REQUESTED),
        (2, ApprovalStep.Kind.AUTOMATIC, ApprovalStep.State.APPROVED),
    ]
    assert "request.edited" in verbs(waiting)


def test_the_lead_may_cancel_while_it_waits_but_not_after_it_is_approved(
    waiting, marketing_lead, platform_admin
):
    cancelled = services.request_cancel(request=waiting, actor=marketing_lead)
    assert cancelled.state == State.CANCELLED
    assert cancelled.steps.get().state == ApprovalStep.State.WITHDRAWN

    other = make_request(department=waiting.department, requester=marketing_lead, capacity=50)
    services.request_approve(request=other, actor=platform_admin)
    with pytest.raises(Refused, match="is provisioning: it cannot be cancelled"):
        services.request_cancel(request=other, actor=marketing_lead)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            lambda r, lead, admin: services.request_approve(request=r, actor=admin),
            "is draft: it cannot be approved",
        ),
        (
            lambda r, lead, admin: services.request_retry(request=r, actor=admin),
            "is draft: it cannot be retried",
        ),
        (
            lambda r, lead, admin: services.request_reject(request=r, actor=admin, reason="no"),
            "is draft: it cannot be rejected",
        ),
    ],
)
def test_a_draft_cannot_be_decided_or_retried(
    marketing, marketing_lead, zone, offers, policy, platform_admin, action, message
):
    draft = make_request(department=marketing, requester=marketing_lead, submit=False)
    assert draft.state == State.DRAFT

    with pytest.raises(Refused, match=message):
        action(draft, marketing_lead, platform_admin)
    assert reload(draft).state == State.DRAFT


def test_a_submitted_request_cannot_be_edited_and_only_authors_may_change_a_draft(
    waiting, marketing_member, finance_lead
):
    with pytest.raises(Refused, match="is waiting for approval: it cannot be edited"):
        services.request_update(
            request=waiting, actor=waiting.requester, spec=replace(RequestSpec.of(waiting), capacity=10)
        )
    with pytest.raises(Refused, match="Only the department's leads"):
        services.request_cancel(request=waiting, actor=finance_lead)
    with pytest.raises(Refused, match="Only Marketing's leads and platform admins"):
        make_request(department=waiting.department, requester=marketing_member)


def test_the_request_follows_provisioning_to_completed_on_the_emulator(
    emulator, marketing, marketing_lead, platform_admin, policy
):
    zone = make_landing_zone(subscription_id=SUBSCRIPTION, allowed_regions=["swedencentral"])
    make_offer(subscription_id=SUBSCRIPTION)
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)
    services.request_approve(request=request, actor=platform_admin)

    deployment = drive_run(reload(request).deployment_id)
    services.requests_follow_provisioning()

    done = reload(request)
    assert deployment.state == ModelDeployment.State.ACTIVE
    assert deployment.landing_zone == zone
    assert done.state == State.COMPLETED
    assert done.finished_at is not None
    assert verbs(request)[-1] == "request.completed"


def test_a_failed_run_fails_the_request_with_its_reason_and_an_admin_can_retry(
    emulator, marketing, marketing_lead, platform_admin, policy
):
    make_landing_zone(subscription_id=SUBSCRIPTION, allowed_regions=["swedencentral"])
    make_offer(subscription_id=SUBSCRIPTION, quota_left=None)
    emulator.inject(kind="lro_failure", count=10)
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)
    services.request_approve(request=request, actor=platform_admin)

    drive_run(reload(request).deployment_id)
    services.request_follow_provisioning(deployment_id=reload(request).deployment_id)
    failed = reload(request)
    assert failed.state == State.FAILED
    assert failed.status_message

    with pytest.raises(Refused, match="Only platform admins can retry"):
        services.request_retry(request=failed, actor=marketing_lead)
    emulator.reset()
    retried = services.request_retry(request=failed, actor=platform_admin)
    assert retried.state == State.PROVISIONING
    assert retried.provisioning_run == 2
    drive_run(retried.deployment_id)
    services.requests_follow_provisioning()
    assert reload(request).state == State.COMPLETED


def test_a_capacity_change_and_a_decommission_run_through_provisioning(
    emulator, marketing, marketing_lead, platform_admin, policy
):
    zone = make_landing_zone(subscription_id=SUBSCRIPTION, allowed_regions=["swedencentral"])
    make_offer(subscription_id=SUBSCRIPTION)
    first = make_request(department=marketing, requester=marketing_lead, capacity=10)
    deployment = drive_run(reload(first).deployment_id)
    services.requests_follow_provisioning()
    assert deployment.landing_zone == zone
    assert deployment.state == ModelDeployment.State.ACTIVE

    resize = make_request(
        department=marketing,
        requester=marketing_lead,
        kind=Kind.CAPACITY_CHANGE,
        target=deployment,
        capacity=15,
    )
    assert resize.state == State.PROVISIONING  # 15K TPM: approved by policy
    assert drive_run(deployment.pk).capacity == 15
    services.requests_follow_provisioning()
    assert reload(resize).state == State.COMPLETED

    decommission = make_request(
        department=marketing, requester=marketing_lead, kind=Kind.DECOMMISSION, target=deployment
    )
    services.request_approve(request=decommission, actor=platform_admin)
    assert drive_run(deployment.pk).state == ModelDeployment.State.DECOMMISSIONED
    services.requests_follow_provisioning()
    assert reload(decommission).state == State.COMPLETED


def test_emails_tell_approvers_what_waits_and_the_requester_each_decision(
    marketing,
    marketing_lead,
    zone,
    offers,
    policy,
    platform_admin,
    finance_approver,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        request = make_request(
            department=marketing, requester=marketing_lead, capacity=5, data_classification="restricted"
        )
    waiting_mail = mail.outbox[-1]
    assert set(waiting_mail.to) == {platform_admin.email, finance_approver.email}
    assert "Waiting for your approval: Copy assistant (Marketing)" in waiting_mail.subject
    assert f"/requests/{request.pk}/" in waiting_mail.body

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(request=request, actor=platform_admin)
    assert [m.to for m in mail.outbox] == [[marketing_lead.email], [finance_approver.email]]
    assert "still waits for another approval" in mail.outbox[0].body

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_send_back(request=request, actor=finance_approver, comment="Which data exactly?")
    assert mail.outbox[0].to == [marketing_lead.email]
    assert "Which data exactly?" in mail.outbox[0].body


def test_expiry_warns_the_lead_two_weeks_ahead_and_asks_to_decommission_on_the_day(
    marketing, marketing_lead, zone, offers, policy, platform_admin, django_capture_on_commit_callbacks
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=10)
    today = request.created_at.date()
    DeploymentRequest.objects.filter(pk=request.pk).update(
        state=State.COMPLETED, expires_on=today + timedelta(days=14)
    )
    ModelDeployment.objects.filter(pk=request.deployment_id).update(state=ModelDeployment.State.ACTIVE)

    with django_capture_on_commit_callbacks(execute=True):
        first = services.requests_check_expiry(today=today)
        again = services.requests_check_expiry(today=today + timedelta(days=1))
    assert first["warned"] == [request.pk]
    assert again["warned"] == []
    assert "expires on" in mail.outbox[0].subject
    assert mail.outbox[0].to == [marketing_lead.email]

    on_the_day = services.requests_check_expiry(today=today + timedelta(days=14))
    [decommission_id] = on_the_day["decommission_requests"]
    decommission = DeploymentRequest.objects.get(pk=decommission_id)
    assert (decommission.kind, decommission.state, decommission.target_id) == (
        Kind.DECOMMISSION,
        State.SUBMITTED,
        request.deployment_id,
    )
    assert decommission.requester is None
    assert services.requests_check_expiry(today=today + timedelta(days=15))["decommission_requests"] == []


def test_audit_events_are_never_edited_or_deleted(waiting):
    event = AuditEvent.objects.first()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(verb="changed")


@pytest.mark.django_db(transaction=True)
def test_two_approvals_at_the_same_moment_give_one_approval_and_one_provisioning_run(marketing, zone, offers):
    lead = make_user(email="lead2@example.com", department=marketing, role="lead")
    first_admin = make_user(email="a1@example.com", platform_group=PlatformGroup.ADMINS)
    second_admin = make_user(email="a2@example.com", platform_group=PlatformGroup.ADMINS)
    request = make_request(department=marketing, requester=lead, capacity=50)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(admin):
        try:
            start.wait()
            services.request_approve(request=request, actor=admin)
            outcomes.append("approved")
        except Refused as refusal:
            outcomes.append(str(refusal))
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(admin,)) for admin in (first_admin, second_admin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes.count("approved") == 1
    assert [outcome for outcome in outcomes if outcome != "approved"] == [
        f"Request #{request.pk} is provisioning: it cannot be approved."
    ]
    done = reload(request)
    assert done.steps.filter(state=ApprovalStep.State.APPROVED).count() == 1
    assert ModelDeployment.objects.count() == 1
    assert done.deployment.run == 1
    assert AuditEvent.objects.filter(verb="request.approved").count() == 1
