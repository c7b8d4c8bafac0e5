"""The grounding services: who may ask and remove, what they refuse, and that each change moves
the set of active groundings retrieval reads at every turn."""

import pytest

from approvals.models import ApprovalPolicy, DeploymentRequest
from audit.models import AuditEvent
from grounding.grounding_services import (
    GroundingRefused,
    data_sets_for_grounding,
    grounding_activate,
    grounding_reject,
    grounding_remove,
    grounding_request,
)
from grounding.models import DataSet, Grounding
from org.models import Department, Membership, User
from provisioning.models import ModelDeployment
from tests.factories import make_department, make_deployment, make_landing_zone, make_user


def make_data_set(
    *, department: Department, owner: User, name: str, classification: str = "internal"
) -> DataSet:
    return DataSet.objects.create(
        department=department,
        name=name,
        data_classification=classification,
        owner=owner,
        landing_zone=make_landing_zone(),
    )


@pytest.fixture
def hr(db) -> Department:
    return make_department(name="HR")


@pytest.fixture
def hr_lead(hr) -> User:
    return make_user(email="hana@example.com", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def owner(hr) -> User:
    return make_user(email="olga@example.com", department=hr, role=Membership.Role.LEAD)


@pytest.fixture
def helper(hr) -> ModelDeployment:
    ApprovalPolicy.current()
    return make_deployment(department=hr, display_name="HR policy helper")


@pytest.fixture
def handbook(hr, owner) -> DataSet:
    return make_data_set(department=hr, owner=owner, name="Employee handbook")


def test_asking_creates_a_waiting_grounding_with_its_approval(hr_lead, helper, handbook):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    assert grounding.state == Grounding.State.REQUESTED
    assert DeploymentRequest.objects.filter(grounding=grounding, state="submitted").exists()
    event = AuditEvent.objects.get(verb="grounding.requested", object_id=str(grounding.pk))
    assert event.actor == hr_lead
    assert event.note == "Leave"


def test_a_member_cannot_ask(hr, helper, handbook):
    member = make_user(department=hr)
    with pytest.raises(GroundingRefused, match="leads and platform admins"):
        grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=member)
    assert not Grounding.objects.exists()


def test_the_lead_says_why(hr_lead, helper, handbook):
    with pytest.raises(GroundingRefused, match="the data set's owner reads it"):
        grounding_request(deployment=helper, data_set=handbook, purpose="  ", actor=hr_lead)


def test_a_department_assistant_answers_only_from_its_own_department(hr_lead, helper):
    finance = make_department(name="Finance")
    finance_owner = make_user(department=finance, role=Membership.Role.LEAD)
    policies = make_data_set(department=finance, owner=finance_owner, name="Expense policy")
    with pytest.raises(GroundingRefused, match="answers only from HR's data sets"):
        grounding_request(deployment=helper, data_set=policies, purpose="Expenses", actor=hr_lead)
    assert list(data_sets_for_grounding(helper, hr_lead)) == []


def test_asking_twice_is_refused(hr_lead, helper, handbook):
    grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    with pytest.raises(GroundingRefused, match="already waits for Employee handbook"):
        grounding_request(deployment=helper, data_set=handbook, purpose="Again", actor=hr_lead)
    assert list(data_sets_for_grounding(helper, hr_lead)) == []


def test_a_decommissioned_assistant_cannot_be_grounded(hr, hr_lead, handbook):
    gone = make_deployment(department=hr, state=ModelDeployment.State.DECOMMISSIONED)
    with pytest.raises(GroundingRefused, match="decommissioned"):
        grounding_request(deployment=gone, data_set=handbook, purpose="Leave", actor=hr_lead)


def test_activating_rejecting_and_removing_move_the_active_set(hr_lead, owner, helper, handbook):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    assert not Grounding.objects.active().exists()
    grounding_activate(grounding=grounding, actor=owner)
    assert list(Grounding.objects.active()) == [grounding]
    grounding_remove(grounding=grounding, actor=owner, reason="Outdated")
    assert not Grounding.objects.active().exists()
    verbs = list(
        AuditEvent.objects.filter(object_id=str(grounding.pk), verb__startswith="grounding.").values_list(
            "verb", flat=True
        )
    )
    assert verbs == ["grounding.requested", "grounding.activated", "grounding.removed"]
    with pytest.raises(GroundingRefused, match="removed already"):
        grounding_remove(grounding=grounding, actor=owner)

    again = grounding_request(deployment=helper, data_set=handbook, purpose="Leave", actor=hr_lead)
    grounding_reject(grounding=again, actor=owner, reason="No")
    again.refresh_from_db()
    assert again.state == Grounding.State.REJECTED
    with pytest.raises(GroundingRefused, match="rejected meanwhile"):
        grounding_activate(grounding=again, actor=owner)


def test_only_those_responsible_remove(hr, hr_lead, owner, helper, handbook):
    grounding = grounding_request(deployment=helper, data_set=handbook, purpose="Mine", actor=owner)
    stranger = make_user(department=make_department(name="Sales"), role=Membership.Role.LEAD)
    for person in (make_user(department=hr), stranger):
        with pytest.raises(GroundingRefused, match="take Employee handbook off HR policy helper"):
            grounding_remove(grounding=grounding, actor=person)
    assert Grounding.objects.active().count() == 1
