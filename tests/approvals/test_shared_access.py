"""Shared access never overwrites a grant behind a person's back: a department without a grant
gets one when its request is approved; for one that has a grant the request is a change of that
grant, decided by a person, and it applies only if the grant is still what the approver saw."""

from decimal import Decimal

import pytest

from approvals import services
from approvals.models import ApprovalStep, DeploymentRequest
from audit.models import AuditEvent
from provisioning.models import AccessGrant, ModelDeployment
from tests.factories import make_deployment, make_request

State = DeploymentRequest.State
Kind = DeploymentRequest.Kind


@pytest.fixture
def assistant(finance, zone) -> ModelDeployment:
    return make_deployment(
        department=finance,
        display_name="Company assistant",
        scope=ModelDeployment.Scope.SHARED,
        landing_zone=zone,
    )


@pytest.fixture
def old_draft(marketing, marketing_lead, assistant, policy) -> DeploymentRequest:
    """Written before Marketing had any grant: access with a cap of 3,000K TPM."""
    return make_request(
        department=marketing,
        requester=marketing_lead,
        kind=Kind.SHARED_ACCESS,
        target=assistant,
        tpm_cap=3000,
        submit=False,
    )


def grant_of(department, deployment) -> AccessGrant:
    return AccessGrant.objects.get(department=department, deployment=deployment)


def test_an_old_draft_submitted_after_an_admin_set_a_cap_waits_for_a_person(
    client_for, old_draft, marketing, marketing_lead, assistant, platform_admin
):
    AccessGrant.objects.create(deployment=assistant, department=marketing, tpm_cap=5)

    submitted = services.request_submit(request=old_draft, actor=marketing_lead)

    assert submitted.state == State.SUBMITTED
    [step] = submitted.steps.all()
    assert step.kind == ApprovalStep.Kind.PLATFORM
    assert "changes the cap from 5K TPM to 3,000K TPM" in step.reason
    assert grant_of(marketing, assistant).tpm_cap == 5
    page = client_for(platform_admin).get(f"/requests/{old_draft.pk}/").content.decode()
    assert "Changes the cap from 5K TPM to 3,000K TPM" in page
    queue = client_for(platform_admin).get("/approvals/").content.decode()
    assert "changes the cap from 5K TPM to 3,000K TPM" in queue


def test_approved_the_change_applies_to_the_grant_it_was_decided_on(
    old_draft, marketing, marketing_lead, assistant, platform_admin
):
    AccessGrant.objects.create(
        deployment=assistant, department=marketing, tpm_cap=5, monthly_budget_cap=Decimal("50")
    )
    services.request_submit(request=old_draft, actor=marketing_lead)

    done = services.request_approve(request=old_draft, actor=platform_admin)

    assert done.state == State.COMPLETED
    grant = grant_of(marketing, assistant)
    assert (grant.tpm_cap, grant.monthly_budget_cap) == (3000, Decimal("50"))
    event = AuditEvent.objects.get(verb="grant.changed")
    assert (event.before["tpm_cap"], event.after["tpm_cap"], event.actor) == (5, 3000, platform_admin)


@pytest.mark.parametrize(
    ("meanwhile", "now"),
    [
        (lambda grant: AccessGrant.objects.filter(pk=grant.pk).update(tpm_cap=7), "a grant with 7K TPM"),
        (
            lambda grant: AccessGrant.objects.filter(pk=grant.pk).update(monthly_budget_cap=Decimal("20")),
            "a grant with 5K TPM and a $20.00 monthly budget cap",
        ),
        (lambda grant: AccessGrant.objects.filter(pk=grant.pk).delete(), "no grant"),
    ],
)
def test_a_grant_changed_after_submission_is_left_alone_and_the_request_fails_saying_so(
    client_for, old_draft, marketing, marketing_lead, assistant, platform_admin, meanwhile, now
):
    grant = AccessGrant.objects.create(deployment=assistant, department=marketing, tpm_cap=5)
    services.request_submit(request=old_draft, actor=marketing_lead)
    meanwhile(grant)
    page = client_for(platform_admin).get(f"/requests/{old_draft.pk}/").content.decode()
    assert f"grant changed after this was submitted: it is now {now}" in page

    failed = services.request_approve(request=old_draft, actor=platform_admin)

    assert failed.state == State.FAILED
    assert "Marketing's access to Company assistant changed meanwhile" in failed.status_message
    assert f"is {now} now. Nothing was changed" in failed.status_message
    assert not AccessGrant.objects.filter(department=marketing, tpm_cap=3000).exists()


def test_a_grant_created_after_submission_is_not_overwritten(
    old_draft, marketing, marketing_lead, assistant, platform_admin, policy
):
    policy.auto_approve_shared_access = False
    policy.save()
    services.request_submit(request=old_draft, actor=marketing_lead)
    AccessGrant.objects.create(deployment=assistant, department=marketing, tpm_cap=5)

    failed = services.request_approve(request=old_draft, actor=platform_admin)

    assert failed.state == State.FAILED
    assert grant_of(marketing, assistant).tpm_cap == 5


def test_without_a_grant_the_approved_request_creates_one(old_draft, marketing, marketing_lead, assistant):
    done = services.request_submit(request=old_draft, actor=marketing_lead)

    assert done.state == State.COMPLETED  # approved by policy: nothing to overwrite
    assert grant_of(marketing, assistant).tpm_cap == 3000
    assert AuditEvent.objects.filter(verb="grant.created").exists()


def test_the_form_offers_a_service_in_use_as_a_change_and_refuses_the_same_cap(
    client_for, marketing, marketing_lead, assistant, policy
):
    AccessGrant.objects.create(deployment=assistant, department=marketing, tpm_cap=5)
    client = client_for(marketing_lead)
    form = client.get("/requests/new/?kind=shared_access").content.decode()
    assert "Company assistant · gpt-4o-mini · 20K TPM (in use, cap 5K TPM)" in form
    data = {
        "kind": "shared_access",
        "department": "marketing",
        "target": assistant.pk,
        "purpose": "More room for the spring campaign",
        "data_classification": "internal",
        "tpm_cap": "5",
        "action": "submit",
    }

    same = client.post("/requests/new/", data)
    assert same.status_code == 400
    assert (
        "Marketing already uses Company assistant with 5K TPM: ask for a different cap."
        in same.content.decode()
    )

    changed = client.post("/requests/new/", {**data, "tpm_cap": "8"})
    assert changed.status_code == 302
    assert DeploymentRequest.objects.get().state == State.SUBMITTED
    assert grant_of(marketing, assistant).tpm_cap == 5
