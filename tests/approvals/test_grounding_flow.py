"""Grounding an assistant on a data set is a request the data set's owner decides: the lead asks
from the assistant's page, the owner finds it in their approvals, confidential and restricted data
add a finance approver, and the assistant answers from the data set once every approval is given."""

import pytest
from django.core import mail

from approvals.models import ApprovalPolicy, ApprovalStep, DeploymentRequest
from audit.models import AuditEvent
from grounding.grounding_services import grounding_request
from grounding.models import DataSet, Grounding
from org.models import Department, Membership, User
from provisioning.models import DataClassification, ModelDeployment
from tests.factories import make_department, make_deployment, make_landing_zone, make_user

State = DeploymentRequest.State
StepKind = ApprovalStep.Kind


def make_data_set(
    *, department: Department, owner: User, name: str = "Handbook", classification: str = "internal"
) -> DataSet:
    return DataSet.objects.create(
        department=department,
        name=name,
        description=f"{department.name}'s {name.lower()}",
        data_classification=classification,
        owner=owner,
        landing_zone=make_landing_zone(),
    )


@pytest.fixture
def hr(db) -> Department:
    return make_department(name="HR", cost_center="CC-4100")


@pytest.fixture
def hr_lead(hr) -> User:
    return make_user(email="hana@example.com", first_name="Hana", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def data_owner(hr) -> User:
    return make_user(email="olga@example.com", first_name="Olga", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def hr_member(hr) -> User:
    return make_user(email="hugo@example.com", first_name="Hugo", department=hr)


@pytest.fixture
def helper(hr) -> ModelDeployment:
    return make_deployment(department=hr, display_name="HR policy helper")


@pytest.fixture
def handbook(hr, data_owner) -> DataSet:
    return make_data_set(department=hr, owner=data_owner, name="Employee handbook")


@pytest.fixture
def policy(db) -> ApprovalPolicy:
    return ApprovalPolicy.current()


def ask(client, deployment, data_set, purpose="Answer leave and expenses questions from the handbook."):
    return client.post(
        f"/groundings/ask/{deployment.pk}/", {"data_set": str(data_set.pk), "purpose": purpose}
    )


def request_of(grounding: Grounding) -> DeploymentRequest:
    return DeploymentRequest.objects.get(grounding=grounding)


# The whole flow -------------------------------------------------------------------------------------


def test_the_lead_asks_the_owner_approves_and_the_assistant_answers_from_it(
    client_for, hr_lead, data_owner, helper, handbook, policy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = ask(client_for(hr_lead), helper, handbook)
    assert response.status_code == 302
    grounding = Grounding.objects.get(deployment=helper, data_set=handbook)
    assert grounding.state == Grounding.State.REQUESTED
    assert grounding.requested_by == hr_lead
    assert not Grounding.objects.active().filter(deployment=helper).exists()
    request = request_of(grounding)
    assert request.kind == DeploymentRequest.Kind.GROUNDING
    assert request.state == State.SUBMITTED
    [step] = request.steps.all()
    assert (step.kind, step.assignee, step.state) == (StepKind.DATA_OWNER, data_owner, "pending")
    # The owner is told by email, as approvers are.
    assert [message.to for message in mail.outbox] == [[data_owner.email]]

    owner = client_for(data_owner)
    queue = owner.get("/approvals/").content.decode()
    for shown in ("Employee handbook", "HR policy helper", "HR", "Hana", "Answer leave and expenses"):
        assert shown in queue
    page = owner.get(f"/requests/{request.pk}/").content.decode()
    assert "Your decision (data owner)" in page
    assert "Send back for changes" not in page

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(f"/requests/{request.pk}/decide/", {"decision": "approve", "comment": "Fine"})
    assert response.status_code == 302
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE
    assert grounding.decided_at is not None
    assert list(Grounding.objects.active().filter(deployment=helper)) == [grounding]
    request.refresh_from_db()
    assert request.state == State.COMPLETED
    assert AuditEvent.objects.filter(verb="grounding.activated", object_id=str(grounding.pk)).exists()
    # The requester hears of the decision and of the end, as for any request.
    assert {tuple(message.to) for message in mail.outbox} == {(hr_lead.email,)}
    # The request page's timeline tells the story; the deployment page shows the data set active.
    timeline = client_for(hr_lead).get(f"/requests/{request.pk}/").content.decode()
    for title in ("Created", "Submitted for approval", "Approved (data owner)", "Completed"):
        assert title in timeline
    deployment_page = client_for(hr_lead).get(f"/deployments/{helper.pk}/").content.decode()
    assert "Grounded on" in deployment_page
    assert "Employee handbook" in deployment_page
    assert "Not grounded on any data set" not in deployment_page


def test_the_timeline_names_the_owner_it_waits_for(client_for, hr_lead, data_owner, helper, handbook, policy):
    grounding = grounding_request(
        deployment=helper, data_set=handbook, purpose="Leave questions", actor=hr_lead
    )
    page = client_for(hr_lead).get(f"/requests/{request_of(grounding).pk}/").content.decode()
    assert "Waiting for Olga (data owner)" in page
    section = client_for(hr_lead).get(f"/deployments/{helper.pk}/").content.decode()
    assert "Waiting for approval" in section
    assert "waits for Olga" in section


@pytest.mark.parametrize(
    ("classification", "extra"),
    [(DataClassification.RESTRICTED, "restricted"), (DataClassification.CONFIDENTIAL, "confidential")],
)
def test_confidential_and_restricted_data_also_need_a_finance_approver(
    client_for, hr, hr_lead, data_owner, helper, policy, finance_approver, classification, extra
):
    payroll = make_data_set(
        department=hr, owner=data_owner, name="Payroll rules", classification=classification
    )
    grounding = grounding_request(
        deployment=helper, data_set=payroll, purpose="Payroll questions", actor=hr_lead
    )
    request = request_of(grounding)
    steps = list(request.steps.order_by("order"))
    assert [step.kind for step in steps] == [StepKind.DATA_OWNER, StepKind.FINANCE]
    assert f"it is for {extra} data" in steps[1].reason

    client_for(data_owner).post(f"/requests/{request.pk}/decide/", {"decision": "approve"})
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REQUESTED  # the finance approval is still missing
    assert "Payroll rules" in client_for(finance_approver).get("/approvals/").content.decode()
    client_for(finance_approver).post(f"/requests/{request.pk}/decide/", {"decision": "approve"})
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE


def test_the_policy_may_leave_confidential_data_to_the_owner(hr, hr_lead, data_owner, helper, policy):
    policy.finance_for_confidential_grounding = False
    policy.save()
    notes = make_data_set(department=hr, owner=data_owner, name="Notes", classification="confidential")
    grounding = grounding_request(deployment=helper, data_set=notes, purpose="Notes", actor=hr_lead)
    assert [step.kind for step in request_of(grounding).steps.all()] == [StepKind.DATA_OWNER]


def test_the_owner_rejects_and_the_grounding_never_starts(
    client_for, hr_lead, data_owner, helper, handbook, policy
):
    grounding = grounding_request(
        deployment=helper, data_set=handbook, purpose="Leave questions", actor=hr_lead
    )
    request = request_of(grounding)
    owner = client_for(data_owner)
    response = owner.post(f"/requests/{request.pk}/decide/", {"decision": "reject", "comment": ""})
    assert response.status_code == 400  # a rejection says why
    owner.post(f"/requests/{request.pk}/decide/", {"decision": "reject", "comment": "Drafts only, not yet"})
    grounding.refresh_from_db()
    request.refresh_from_db()
    assert grounding.state == Grounding.State.REJECTED
    assert request.state == State.REJECTED
    assert not Grounding.objects.active().exists()
    # It may be asked for again later.
    again = grounding_request(deployment=helper, data_set=handbook, purpose="Now final", actor=hr_lead)
    assert again.state == Grounding.State.REQUESTED


def test_an_owner_who_asks_themselves_is_approved_by_policy(hr, data_owner, helper, handbook, policy):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Mine", actor=data_owner)
    assert grounding.state == Grounding.State.ACTIVE
    request = request_of(grounding)
    assert request.state == State.COMPLETED
    [step] = request.steps.all()
    assert step.kind == StepKind.AUTOMATIC
    assert "asking is their approval" in step.reason


def test_an_owner_asking_for_restricted_data_still_waits_for_finance(hr, data_owner, helper, policy):
    secret = make_data_set(department=hr, owner=data_owner, name="Cases", classification="restricted")
    grounding = grounding_request(deployment=helper, data_set=secret, purpose="Cases", actor=data_owner)
    assert grounding.state == Grounding.State.REQUESTED
    steps = list(request_of(grounding).steps.order_by("order"))
    assert [(step.kind, step.state) for step in steps] == [
        (StepKind.AUTOMATIC, "approved"),
        (StepKind.FINANCE, "pending"),
    ]


# Removing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("remover", ["hr_lead", "data_owner", "platform_admin"])
def test_removing_takes_the_data_set_off_at_once(
    request, client_for, hr_lead, data_owner, helper, handbook, policy, remover
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Mine", actor=data_owner)
    assert list(Grounding.objects.active().filter(deployment=helper)) == [grounding]
    response = client_for(request.getfixturevalue(remover)).post(f"/groundings/{grounding.pk}/remove/")
    assert response.status_code == 302
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REMOVED
    assert grounding.removed_at is not None
    assert not Grounding.objects.active().filter(deployment=helper).exists()
    assert AuditEvent.objects.filter(verb="grounding.removed", object_id=str(grounding.pk)).exists()


def test_withdrawing_a_waiting_grounding_cancels_its_approval(
    client_for, hr_lead, data_owner, helper, handbook, policy
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    client_for(hr_lead).post(f"/groundings/{grounding.pk}/remove/")
    request = request_of(grounding)
    assert request.state == State.CANCELLED
    assert not request.steps.filter(state="pending").exists()
    assert "Nothing waits for you" in client_for(data_owner).get("/approvals/").content.decode()


def test_cancelling_the_request_withdraws_the_grounding(client_for, hr_lead, helper, handbook, policy):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    client_for(hr_lead).post(f"/requests/{request_of(grounding).pk}/cancel/")
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REMOVED


# A shared assistant ------------------------------------------------------------------------------


def test_a_shared_assistant_combines_two_departments_data_sets_each_with_its_owner(
    client_for, hr, data_owner, marketing, marketing_lead, platform_admin, policy
):
    it = make_department(name="Central IT")
    company = make_deployment(department=it, display_name="Company assistant", shared_with=[hr, marketing])
    handbook = make_data_set(department=hr, owner=data_owner, name="Employee handbook")
    brand = make_data_set(department=marketing, owner=marketing_lead, name="Brand guide")
    admin = client_for(platform_admin)
    assert ask(admin, company, handbook).status_code == 302
    assert ask(admin, company, brand).status_code == 302
    on_handbook = Grounding.objects.get(deployment=company, data_set=handbook)
    on_brand = Grounding.objects.get(deployment=company, data_set=brand)

    # Each owner sees (and may decide) only their own data set's request.
    hr_queue = client_for(data_owner).get("/approvals/").content.decode()
    assert "Employee handbook" in hr_queue
    assert "Brand guide" not in hr_queue
    refused = client_for(data_owner).post(
        f"/requests/{request_of(on_brand).pk}/decide/", {"decision": "approve"}
    )
    assert refused.status_code == 404
    assert client_for(data_owner).get(f"/requests/{request_of(on_handbook).pk}/").status_code == 200

    client_for(data_owner).post(f"/requests/{request_of(on_handbook).pk}/decide/", {"decision": "approve"})
    assert set(Grounding.objects.active().filter(deployment=company)) == {on_handbook}
    client_for(marketing_lead).post(f"/requests/{request_of(on_brand).pk}/decide/", {"decision": "approve"})
    assert set(Grounding.objects.active().filter(deployment=company)) == {on_handbook, on_brand}


def test_a_department_assistant_never_reads_another_departments_data(
    client_for, hr_lead, helper, marketing, marketing_lead, policy
):
    brand = make_data_set(department=marketing, owner=marketing_lead, name="Brand guide")
    page = client_for(hr_lead).get(f"/deployments/{helper.pk}/").content.decode()
    assert "Brand guide" not in page
    ask(client_for(hr_lead), helper, brand)
    assert not Grounding.objects.filter(data_set=brand).exists()


# The owner leaves --------------------------------------------------------------------------------


def test_when_the_owner_stops_leading_a_platform_admin_decides_in_their_place(
    client_for, hr, hr_lead, data_owner, helper, handbook, policy, platform_admin
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    request = request_of(grounding)
    admin = client_for(platform_admin)
    assert "Employee handbook" not in admin.get("/approvals/").content.decode()

    Membership.objects.filter(user=data_owner, department=hr).delete()
    assert "Employee handbook" in admin.get("/approvals/").content.decode()
    page = admin.get(f"/requests/{request.pk}/").content.decode()
    assert "no longer leads HR" in page
    section = client_for(hr_lead).get(f"/deployments/{helper.pk}/").content.decode()
    assert "no longer leads HR" in section
    # The former owner no longer decides for HR's data.
    refused = client_for(data_owner).post(f"/requests/{request.pk}/decide/", {"decision": "approve"})
    assert refused.status_code == 400
    assert "a platform admin decides in their place" in refused.content.decode()
    assert "Employee handbook" not in client_for(data_owner).get("/approvals/").content.decode()
    admin.post(f"/requests/{request.pk}/decide/", {"decision": "approve"})
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE


# Who may do what ---------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, helper, handbook, hr_lead, policy):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    for response in (
        ask(client, helper, handbook),
        client.post(f"/groundings/{grounding.pk}/remove/"),
        client.post(f"/requests/{request_of(grounding).pk}/decide/", {"decision": "approve"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REQUESTED


def test_asking_walks_the_ladder(client_for, helper, handbook, hr_lead, hr_member, finance_lead, policy):
    assert ask(client_for(finance_lead), helper, handbook).status_code == 404
    assert ask(client_for(hr_member), helper, handbook).status_code == 403
    assert not Grounding.objects.exists()
    assert ask(client_for(hr_lead), helper, handbook).status_code == 302
    assert Grounding.objects.get().state == Grounding.State.REQUESTED


def test_only_platform_admins_and_the_assistants_leads_see_the_form(
    client_for, helper, handbook, hr_lead, finance_approver, hr, marketing_lead
):
    assert "Ground on a data set" in client_for(hr_lead).get(f"/deployments/{helper.pk}/").content.decode()
    approver_page = client_for(finance_approver).get(f"/deployments/{helper.pk}/").content.decode()
    assert "Grounded on" in approver_page
    assert "Ground on a data set" not in approver_page
    assert ask(client_for(finance_approver), helper, handbook).status_code == 403


def test_deciding_walks_the_ladder(
    client_for, helper, handbook, hr_lead, hr_member, finance_lead, data_owner, hr, policy
):
    other_lead = make_user(email="ivan@example.com", department=hr, role=Membership.Role.LEAD)
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    url = f"/requests/{request_of(grounding).pk}/decide/"
    assert client_for(finance_lead).post(url, {"decision": "approve"}).status_code == 404
    assert client_for(hr_member).post(url, {"decision": "approve"}).status_code == 403
    # A lead of the department who is not the data set's owner: not theirs to decide.
    assert client_for(other_lead).post(url, {"decision": "approve"}).status_code == 403
    # The requester is told another person decides.
    assert client_for(hr_lead).post(url, {"decision": "approve"}).status_code == 403
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REQUESTED
    assert client_for(data_owner).post(url, {"decision": "approve"}).status_code == 302
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE


def test_the_queue_walks_the_ladder(client_for, helper, handbook, hr_lead, hr_member, data_owner, policy):
    grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    assert client_for(hr_member).get("/approvals/").status_code == 403
    assert client_for(hr_lead).get("/approvals/").status_code == 403  # nothing ever asked them
    assert client_for(data_owner).get("/approvals/").status_code == 200


def test_removing_walks_the_ladder(
    client_for, helper, handbook, hr_lead, hr_member, finance_lead, data_owner, policy
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Mine", actor=data_owner)
    url = f"/groundings/{grounding.pk}/remove/"
    assert client_for(finance_lead).post(url).status_code == 404
    assert client_for(hr_member).post(url).status_code == 403
    assert client_for(hr_lead).get(url).status_code == 405
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE
    assert client_for(hr_lead).post(url).status_code == 302
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REMOVED


def test_a_data_owner_in_another_department_may_remove_from_a_shared_assistant(
    client_for, hr, data_owner, marketing, policy, platform_admin
):
    it = make_department(name="Central IT")
    company = make_deployment(department=it, display_name="Company assistant", shared_with=[marketing])
    handbook = make_data_set(department=hr, owner=data_owner, name="Employee handbook")
    grounding = grounding_request(
        deployment=company, data_set=handbook, purpose="All staff", actor=platform_admin
    )
    client_for(data_owner).post(f"/requests/{request_of(grounding).pk}/decide/", {"decision": "approve"})
    response = client_for(data_owner).post(f"/groundings/{grounding.pk}/remove/")
    # The owner does not see the shared assistant's page, so they go back to their approvals.
    assert response.status_code == 302
    assert response["Location"] == "/approvals/"
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.REMOVED


def test_data_owners_see_approvals_in_the_navigation(
    client_for, helper, handbook, hr_lead, data_owner, policy
):
    assert 'href="/approvals/"' not in client_for(data_owner).get("/").content.decode()
    grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    assert 'href="/approvals/"' in client_for(data_owner).get("/").content.decode()


def test_the_trail_and_the_admins_hear_when_the_owner_stops_leading(
    client_for,
    hr,
    hr_lead,
    data_owner,
    helper,
    handbook,
    policy,
    platform_admin,
    django_capture_on_commit_callbacks,
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    request = request_of(grounding)
    mail.outbox.clear()
    membership = Membership.objects.get(user=data_owner, department=hr)
    membership.role = Membership.Role.MEMBER
    with django_capture_on_commit_callbacks(execute=True):
        membership.save()
    assert AuditEvent.objects.filter(verb="request.owner_left", object_id=str(request.pk)).exists()
    assert [message.to for message in mail.outbox] == [[platform_admin.email]]
    page = client_for(platform_admin).get(f"/requests/{request.pk}/").content.decode()
    assert "Data owner left" in page


def test_a_new_owner_of_the_data_set_inherits_the_waiting_approval(
    client_for, hr, hr_lead, data_owner, helper, handbook, policy, django_capture_on_commit_callbacks
):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    request = request_of(grounding)
    successor = make_user(
        email="nina@example.com", first_name="Nina", department=hr, role=Membership.Role.LEAD
    )
    mail.outbox.clear()
    handbook.owner = successor
    with django_capture_on_commit_callbacks(execute=True):
        handbook.save()
    step = request.steps.get()
    assert step.assignee == successor
    assert [message.to for message in mail.outbox] == [[successor.email]]
    assert client_for(data_owner).post(
        f"/requests/{request.pk}/decide/", {"decision": "approve"}
    ).status_code in {
        400,
        403,
    }
    client_for(successor).post(f"/requests/{request.pk}/decide/", {"decision": "approve"})
    grounding.refresh_from_db()
    assert grounding.state == Grounding.State.ACTIVE
    assert "Data owner changed" in client_for(successor).get(f"/requests/{request.pk}/").content.decode()
