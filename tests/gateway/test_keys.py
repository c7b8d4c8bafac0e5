"""Department API keys through their services: what a key may call and for how long, rotation with
a grace period, revocation, the audit trail (never the key), and keys for restricted data waiting
for an approval that keeps four eyes."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services as requests
from approvals.models import ApprovalStep, DeploymentRequest
from audit.models import AuditEvent
from gateway.keys import (
    ApiKeyInvalid,
    ApiKeyRefused,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
)
from gateway.models import ApiKey
from gateway.secrets import key_hash
from provisioning.models import ModelDeployment
from tests.factories import make_deployment

pytestmark = pytest.mark.django_db
State = DeploymentRequest.State


def create(lead, department, deployments, **values):
    values.setdefault("name", "Website chat widget")
    return api_key_create(department=department, deployments=deployments, actor=lead, **values)


def usable_at(key, moment) -> bool:
    return ApiKey.objects.usable(moment).filter(pk=key.pk).exists()


def events_of(key) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(object_type="gateway.apikey", object_id=str(key.pk)))


def assert_no_secret_in(events, raw):
    """Neither the key nor its hash appears anywhere in the trail."""
    for event in events:
        written = json.dumps([event.before, event.after, event.note, event.object_repr])
        assert raw not in written
        assert key_hash(raw) not in written
        assert raw[11:] not in written  # not even the part after the visible prefix


# Creating ----------------------------------------------------------------------------------------


def test_a_lead_creates_a_key_that_is_shown_once_and_stored_as_a_hash(
    marketing, marketing_lead, company_assistant
):
    key, raw = create(
        marketing_lead, marketing, [company_assistant], requests_per_minute=60, tokens_per_minute=40_000
    )

    assert re.fullmatch(r"sy-[A-Za-z0-9_-]{40}", raw)
    key.refresh_from_db()
    assert key.secret_hash == key_hash(raw)
    assert key.prefix == raw[:11]
    assert key.state == ApiKey.State.ACTIVE
    assert key.status() == "active"
    assert list(key.deployments.all()) == [company_assistant]
    assert (key.requests_per_minute, key.tokens_per_minute) == (60, 40_000)
    assert key.created_by == marketing_lead
    assert abs(key.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)
    assert usable_at(key, timezone.now())
    [event] = events_of(key)
    assert event.verb == "api_key.created"
    assert event.actor == marketing_lead
    assert event.after["deployments"] == [company_assistant.gateway_name]
    assert_no_secret_in([event], raw)


@pytest.mark.parametrize(
    ("days", "accepted"), [(0, False), (1, True), (365, True), (366, False), (-5, False)]
)
def test_a_key_lasts_one_to_365_days(marketing, marketing_lead, company_assistant, days, accepted):
    if accepted:
        key, _ = create(marketing_lead, marketing, [company_assistant], expires_in_days=days)
        assert abs(key.expires_at - (timezone.now() + timedelta(days=days))) < timedelta(minutes=1)
        return
    with pytest.raises(ApiKeyInvalid) as refused:
        create(marketing_lead, marketing, [company_assistant], expires_in_days=days)
    assert refused.value.errors == {"expires_in_days": ["A key lasts from 1 to 365 days."]}
    assert not ApiKey.objects.exists()


def test_a_key_calls_only_what_the_department_may_use(
    marketing, marketing_lead, company_assistant, copywriter, ledger, central_it
):
    ungranted = make_deployment(department=central_it, display_name="IT helpdesk", shared_with=[central_it])
    gone = make_deployment(
        department=marketing, display_name="Old writer", state=ModelDeployment.State.DECOMMISSIONED
    )
    for deployment in (ledger, ungranted, gone):
        with pytest.raises(ApiKeyInvalid) as refused:
            create(marketing_lead, marketing, [copywriter, deployment])
        assert refused.value.errors["deployments"] == [
            f"{deployment.display_name} is not a deployment Marketing may use: only its own deployments "
            "and the shared services granted to it, active or being provisioned."
        ]
    with pytest.raises(ApiKeyInvalid, match="Choose at least one deployment"):
        create(marketing_lead, marketing, [])
    assert not ApiKey.objects.exists()

    # Its own deployment and a granted shared service are fine, together.
    key, _ = create(marketing_lead, marketing, [copywriter, company_assistant])
    assert set(key.deployments.all()) == {copywriter, company_assistant}


def test_names_and_limits_are_checked_with_a_message_per_field(marketing, marketing_lead, company_assistant):
    create(marketing_lead, marketing, [company_assistant], name="Newsletter bot")
    with pytest.raises(ApiKeyInvalid) as refused:
        create(
            marketing_lead,
            marketing,
            [company_assistant],
            name="newsletter BOT",
            requests_per_minute=0,
            tokens_per_minute=1_000_000_001,
        )
    assert refused.value.errors == {
        "name": ["Marketing already has a key named “newsletter BOT”: choose another name."],
        "requests_per_minute": ["Leave it empty for no limit, or give a number from 1 to 1,000,000."],
        "tokens_per_minute": ["Leave it empty for no limit, or give a number from 1 to 1,000,000,000."],
    }
    for name, message in [
        ("", "Name the key after"),
        ("two\nlines", "Use one line of text"),
        ("x" * 81, "at most 80"),
    ]:
        with pytest.raises(ApiKeyInvalid, match=message):
            create(marketing_lead, marketing, [company_assistant], name=name)


def test_a_revoked_keys_name_is_free_again(marketing, marketing_lead, company_assistant):
    key, _ = create(marketing_lead, marketing, [company_assistant], name="Newsletter bot")
    api_key_revoke(key=key, actor=marketing_lead)
    again, _ = create(marketing_lead, marketing, [company_assistant], name="Newsletter bot")
    assert again.pk != key.pk


def test_only_the_departments_leads_and_platform_admins_manage_its_keys(
    marketing,
    marketing_lead,
    marketing_member,
    finance_lead,
    finance_approver,
    platform_admin,
    company_assistant,
):
    for outsider in (marketing_member, finance_lead, finance_approver):
        with pytest.raises(
            ApiKeyRefused, match="Only Marketing's leads and platform admins manage its API keys"
        ):
            create(outsider, marketing, [company_assistant])
    key, _ = create(platform_admin, marketing, [company_assistant])
    for outsider in (marketing_member, finance_lead, finance_approver):
        with pytest.raises(ApiKeyRefused):
            api_key_rotate(key=key, actor=outsider)
        with pytest.raises(ApiKeyRefused):
            api_key_revoke(key=key, actor=outsider)
    assert ApiKey.objects.get().status() == "active"
    assert events_of(key)[0].actor == platform_admin


# Rotating ----------------------------------------------------------------------------------------


def test_rotation_gives_a_new_key_and_the_old_one_works_until_its_grace_ends(
    marketing, marketing_lead, company_assistant, copywriter
):
    old, old_raw = create(
        marketing_lead, marketing, [company_assistant, copywriter], requests_per_minute=30, expires_in_days=30
    )
    new, new_raw = api_key_rotate(key=old, grace_hours=24, actor=marketing_lead)
    now = timezone.now()

    assert new_raw != old_raw
    assert new.secret_hash == key_hash(new_raw)
    assert (new.name, new.requests_per_minute, new.replaces) == (old.name, 30, old)
    assert set(new.deployments.all()) == {company_assistant, copywriter}
    assert abs(new.expires_at - (now + timedelta(days=30))) < timedelta(minutes=1)
    old.refresh_from_db()
    assert old.status(now) == "rotated"
    assert usable_at(old, now + timedelta(hours=23))
    assert usable_at(new, now + timedelta(hours=23))
    assert not usable_at(old, now + timedelta(hours=25))
    assert usable_at(new, now + timedelta(hours=25))
    assert old.status(now + timedelta(hours=25)) == "replaced"

    rotated = [event for event in events_of(old) if event.verb == "api_key.rotated"]
    assert rotated[0].actor == marketing_lead
    assert rotated[0].after["successor"] == new.prefix
    assert [event.verb for event in events_of(new)] == ["api_key.created"]
    assert_no_secret_in(events_of(old) + events_of(new), old_raw)
    assert_no_secret_in(events_of(old) + events_of(new), new_raw)

    # The old key is done with: its successor is the one to rotate.
    with pytest.raises(ApiKeyRefused, match=rf"rotated already: rotate its successor \({new.prefix}…\)"):
        api_key_rotate(key=old, actor=marketing_lead)


def test_rotation_without_grace_stops_the_old_key_at_once(marketing, marketing_lead, company_assistant):
    old, _ = create(marketing_lead, marketing, [company_assistant])
    api_key_rotate(key=old, grace_hours=0, actor=marketing_lead)
    assert not usable_at(old, timezone.now())


@pytest.mark.parametrize("hours", [-1, 169])
def test_the_grace_period_is_at_most_a_week(marketing, marketing_lead, company_assistant, hours):
    old, _ = create(marketing_lead, marketing, [company_assistant])
    with pytest.raises(ApiKeyInvalid, match="0 to 168 hours"):
        api_key_rotate(key=old, grace_hours=hours, actor=marketing_lead)
    assert ApiKey.objects.count() == 1


def test_a_revoked_or_expired_key_is_not_rotated(marketing, marketing_lead, company_assistant):
    revoked, _ = create(marketing_lead, marketing, [company_assistant], name="Revoked")
    api_key_revoke(key=revoked, actor=marketing_lead)
    with pytest.raises(ApiKeyRefused, match="“Revoked” is revoked: only a working key can be rotated"):
        api_key_rotate(key=revoked, actor=marketing_lead)
    expired, _ = create(marketing_lead, marketing, [company_assistant], name="Expired")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApiKeyRefused, match="is expired"):
        api_key_rotate(key=expired, actor=marketing_lead)


# Revoking ----------------------------------------------------------------------------------------


def test_revoking_stops_a_key_at_once_and_is_recorded_once(marketing, marketing_lead, company_assistant):
    key, raw = create(marketing_lead, marketing, [company_assistant])
    api_key_revoke(key=key, actor=marketing_lead)
    api_key_revoke(key=key, actor=marketing_lead)  # nothing left to do

    key.refresh_from_db()
    assert key.status() == "revoked"
    assert key.revoked_by == marketing_lead
    assert not usable_at(key, timezone.now())
    assert [event.verb for event in events_of(key)] == ["api_key.created", "api_key.revoked"]
    assert_no_secret_in(events_of(key), raw)


def test_revoking_a_rotated_key_ends_its_grace_period(marketing, marketing_lead, company_assistant):
    old, _ = create(marketing_lead, marketing, [company_assistant])
    new, _ = api_key_rotate(key=old, grace_hours=72, actor=marketing_lead)
    api_key_revoke(key=old, actor=marketing_lead)
    assert not usable_at(old, timezone.now())
    assert usable_at(new, timezone.now())


# Keys for restricted data --------------------------------------------------------------------------

PURPOSE = "Summarise signed customer contracts for the campaign team."


def test_a_key_for_restricted_data_says_why_it_needs_it(marketing, marketing_lead, contracts):
    with pytest.raises(ApiKeyInvalid) as refused:
        create(marketing_lead, marketing, [contracts])
    assert "say what the application does with the data" in refused.value.errors["purpose"][0]
    assert not ApiKey.objects.exists()
    assert not DeploymentRequest.objects.exists()


def test_a_key_for_restricted_data_works_only_after_two_other_people_approved_it(
    marketing,
    platform_admin,
    second_admin,
    finance_approver,
    contracts,
    company_assistant,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    # An admin makes the key on Marketing's behalf: shown once, waiting.
    with django_capture_on_commit_callbacks(execute=True):
        key, raw = create(platform_admin, marketing, [contracts, company_assistant], purpose=PURPOSE)
    assert key.state == ApiKey.State.PENDING
    assert key.status() == "pending"
    assert key.secret_hash == key_hash(raw)
    assert not usable_at(key, timezone.now())

    request = DeploymentRequest.objects.get(api_key=key)
    assert (request.kind, request.state, request.requester) == ("api_key", State.SUBMITTED, platform_admin)
    assert request.title == "API key “Website chat widget”"
    assert request.data_classification == "restricted"
    assert request.purpose == PURPOSE
    steps = list(request.steps.all())
    assert [step.kind for step in steps] == [ApprovalStep.Kind.PLATFORM, ApprovalStep.Kind.FINANCE]
    assert "restricted data always needs a person to decide" in steps[0].reason
    asked = {
        address for mail in mailoutbox for address in mail.to if "Waiting for your approval" in mail.subject
    }
    assert asked == {second_admin.email, finance_approver.email}  # not the admin who asked
    body = next(mail.body for mail in mailoutbox if "Waiting for your approval" in mail.subject)
    assert "Marketing asks for an API key for restricted data: API key “Website chat widget”." in body
    assert f"Key: Website chat widget ({key.prefix}…), may call Company assistant, Contract reader" in body
    assert "Approve or reject it:" in body
    assert raw not in body

    # Four eyes: who asked does not decide.
    with pytest.raises(requests.RequestActionRefused, match="Nobody approves their own request"):
        requests.request_approve(request=request, actor=platform_admin)
    requests.request_approve(request=request, actor=second_admin)
    assert ApiKey.objects.get(pk=key.pk).state == ApiKey.State.PENDING  # finance still decides
    with pytest.raises(requests.RequestActionRefused, match="approved this request already"):
        requests.request_approve(request=request, actor=second_admin)

    with django_capture_on_commit_callbacks(execute=True):
        requests.request_approve(request=request, actor=finance_approver)
    request.refresh_from_db()
    key.refresh_from_db()
    assert request.state == State.COMPLETED
    assert key.state == ApiKey.State.ACTIVE
    assert usable_at(key, timezone.now())
    assert [event.verb for event in events_of(key)] == ["api_key.created", "api_key.approved"]
    assert events_of(key)[1].actor == finance_approver
    assert events_of(key)[1].note == f"Request #{request.pk}"
    assert_no_secret_in(events_of(key), raw)
    done = [mail for mail in mailoutbox if f"Request #{request.pk} completed" in mail.subject]
    assert done
    assert "works now" in done[0].body
    assert raw not in done[0].body


def test_a_rejected_key_never_works_and_cannot_be_sent_back(
    marketing, marketing_lead, platform_admin, contracts
):
    key, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE)
    request = DeploymentRequest.objects.get(api_key=key)
    with pytest.raises(requests.RequestActionRefused, match="nothing to send back"):
        requests.request_send_back(request=request, actor=platform_admin, comment="Say more")

    requests.request_reject(
        request=request, actor=platform_admin, reason="Contracts stay in the contract system."
    )
    key.refresh_from_db()
    assert key.state == ApiKey.State.REJECTED
    assert key.status() == "rejected"
    assert not usable_at(key, timezone.now())
    assert events_of(key)[-1].verb == "api_key.rejected"
    assert "Contracts stay in the contract system." in events_of(key)[-1].note


def test_revoking_a_waiting_key_withdraws_its_request_and_cancelling_the_request_revokes_the_key(
    marketing, marketing_lead, contracts
):
    first, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE, name="First")
    api_key_revoke(key=first, actor=marketing_lead)
    request = DeploymentRequest.objects.get(api_key=first)
    assert request.state == State.CANCELLED
    assert not request.steps.filter(state=ApprovalStep.State.PENDING).exists()

    second, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE, name="Second")
    request = DeploymentRequest.objects.get(api_key=second)
    requests.request_cancel(request=request, actor=marketing_lead)
    second.refresh_from_db()
    assert second.status() == "revoked"
    assert second.revoked_by == marketing_lead


def test_an_approval_that_comes_after_the_key_expired_changes_nothing(
    marketing, marketing_lead, platform_admin, finance_approver, contracts
):
    key, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE, expires_in_days=1)
    request = DeploymentRequest.objects.get(api_key=key)
    requests.request_approve(request=request, actor=platform_admin)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    requests.request_approve(request=request, actor=finance_approver)
    request.refresh_from_db()
    assert request.state == State.FAILED
    assert "is expired now: approving it changes nothing" in request.status_message
    assert ApiKey.objects.get(pk=key.pk).state == ApiKey.State.PENDING


def test_rotating_an_approved_key_for_restricted_data_needs_no_new_approval(
    marketing, marketing_lead, platform_admin, finance_approver, contracts
):
    key, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE)
    request = DeploymentRequest.objects.get(api_key=key)
    requests.request_approve(request=request, actor=platform_admin)
    requests.request_approve(request=request, actor=finance_approver)
    key.refresh_from_db()

    new, _ = api_key_rotate(key=key, actor=marketing_lead)
    assert new.state == ApiKey.State.ACTIVE
    assert DeploymentRequest.objects.count() == 1
    waiting, _ = create(marketing_lead, marketing, [contracts], purpose=PURPOSE, name="Another")
    with pytest.raises(ApiKeyRefused, match="waits for approval: it can be rotated once it works"):
        api_key_rotate(key=waiting, actor=marketing_lead)
