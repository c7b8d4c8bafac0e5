"""Direct access as a decision: the department's Entra ID group holds Azure OpenAI's data role on
an account only when an admin decided direct access and the account is the department's alone.
Through the official SDK (azure-mgmt-authorization) against the emulator's role assignments."""

import time

import pytest

from audit.models import AuditEvent
from portal.celery import app as celery_app
from provisioning import drift, services
from provisioning.azure import authorization_client
from provisioning.azure_errors import TransientAzureError
from provisioning.direct_access import (
    OPENAI_USER_ROLE_ID,
    AccessModeRefused,
    access_mode_set,
    account_data_access_sync,
)
from provisioning.models import ModelDeployment, OpenAIAccount
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department, make_deployment, make_landing_zone

AccessMode = ModelDeployment.AccessMode
State = ModelDeployment.State
MARKETING_GROUP = "6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f"
FINANCE_GROUP = "0b5e2f7a-9c1d-4e3f-8a6b-7c2d1e0f9a8b"
ROLE = (
    f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER_ROLE_ID}"
)


@pytest.fixture
def engine(emulator, settings, monkeypatch):
    settings.PROVISIONING_POLL_SECONDS = 0.1
    # The task that follows a decision runs in this process, as soon as the decision commits.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    return emulator


@pytest.fixture
def marketing(db):
    return make_department(name="Marketing", entra_member_group_id=MARKETING_GROUP)


@pytest.fixture
def finance(db):
    return make_department(name="Finance", entra_member_group_id=FINANCE_GROUP)


@pytest.fixture
def central(db):
    """Central IT's landing zone, whose accounts any department's deployments may share."""
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group="rg-central-ai"
    )


def provision(department, zone, name, **options):
    deployment = make_deployment(
        department=department,
        landing_zone=zone,
        name=name,
        display_name=name,
        state=State.REQUESTED,
        **options,
    )
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            wait = services.deployment_provision(deployment_id=deployment.pk, token=token)
        except TransientAzureError:
            wait = 0.05
        if wait is None:
            provisioned = ModelDeployment.objects.select_related("account", "department").get(
                pk=deployment.pk
            )
            assert provisioned.state == State.ACTIVE, provisioned.status_message
            return provisioned
        time.sleep(min(wait, 0.1))
    raise AssertionError("the run did not finish")


def groups_with_the_role(account: OpenAIAccount) -> set[str]:
    """The department groups holding the data role on the account, as Azure lists them."""
    assignments = authorization_client(SUBSCRIPTION).role_assignments.list_for_scope(
        account.arm_id, filter="atScope()"
    )
    return {
        a.principal_id
        for a in assignments
        if a.principal_type == "Group" and a.role_definition_id.endswith(OPENAI_USER_ROLE_ID)
    }


def decide(deployment, mode, actor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return access_mode_set(deployment=deployment, mode=mode, actor=actor)


class TestDecision:
    def test_the_group_gets_no_role_by_default(self, engine, central, marketing):
        deployment = provision(marketing, central, "copy")

        assert deployment.access_mode == AccessMode.GATEWAY
        assert groups_with_the_role(deployment.account) == set()

    def test_direct_grants_the_group_the_role_and_gateway_revokes_it(
        self, engine, central, marketing, platform_admin, django_capture_on_commit_callbacks
    ):
        deployment = provision(marketing, central, "copy")

        decide(deployment, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)
        assert groups_with_the_role(deployment.account) == {MARKETING_GROUP}

        decide(deployment, AccessMode.GATEWAY, platform_admin, django_capture_on_commit_callbacks)
        assert groups_with_the_role(deployment.account) == set()
        modes = AuditEvent.objects.filter(verb="deployment.access_mode_changed", object_id=str(deployment.pk))
        assert [(e.before, e.after, e.actor) for e in modes.order_by("pk")] == [
            ({"access_mode": "gateway"}, {"access_mode": "direct"}, platform_admin),
            ({"access_mode": "direct"}, {"access_mode": "gateway"}, platform_admin),
        ]

    def test_the_sync_is_safe_to_run_twice(
        self, engine, central, marketing, platform_admin, django_capture_on_commit_callbacks
    ):
        deployment = provision(marketing, central, "copy")
        decide(deployment, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)

        again = account_data_access_sync(account_id=deployment.account_id)

        assert (again.granted, again.revoked) == ([], [])
        assert groups_with_the_role(deployment.account) == {MARKETING_GROUP}

    def test_one_decision_covers_every_deployment_on_the_account(
        self, engine, central, marketing, platform_admin, django_capture_on_commit_callbacks
    ):
        copy = provision(marketing, central, "copy")
        summaries = provision(marketing, central, "summaries")
        assert summaries.account_id == copy.account_id

        changed = decide(copy, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)

        assert {d.pk for d in changed} == {copy.pk, summaries.pk}
        assert ModelDeployment.objects.get(pk=summaries.pk).access_mode == AccessMode.DIRECT
        # A deployment of the same department that lands later is directly callable too, and says so.
        later = provision(marketing, central, "later")
        assert later.access_mode == AccessMode.DIRECT
        assert groups_with_the_role(copy.account) == {MARKETING_GROUP}

    def test_only_platform_admins_decide(self, engine, central, marketing, marketing_lead):
        deployment = provision(marketing, central, "copy")

        with pytest.raises(AccessModeRefused, match="Only platform admins"):
            access_mode_set(deployment=deployment, mode=AccessMode.DIRECT, actor=marketing_lead)


class TestOneDepartmentsAccountOnly:
    def test_refused_on_an_account_another_department_uses(
        self, engine, central, marketing, finance, platform_admin
    ):
        deployment = provision(marketing, central, "copy")
        provision(finance, central, "ledger")

        with pytest.raises(AccessModeRefused) as refused:
            access_mode_set(deployment=deployment, mode=AccessMode.DIRECT, actor=platform_admin)

        assert str(refused.value) == (
            f"Direct access needs an account that belongs to Marketing alone, and "
            f"{deployment.account.name} also hosts Finance's ledger: Azure's role reaches every "
            "deployment on an account, so the group could call those too, unmetered."
        )
        assert groups_with_the_role(deployment.account) == set()

    def test_refused_for_a_shared_service(self, db, marketing, finance, platform_admin):
        shared = make_deployment(
            department=marketing, shared_with=[finance], display_name="Company assistant"
        )

        with pytest.raises(AccessModeRefused, match="Company assistant is a shared service"):
            access_mode_set(deployment=shared, mode=AccessMode.DIRECT, actor=platform_admin)

    def test_refused_without_a_group_to_give_the_role_to(self, db, platform_admin):
        no_group = make_department(name="Legal")
        deployment = make_deployment(department=no_group)

        with pytest.raises(AccessModeRefused, match="Legal has no Entra ID member group"):
            access_mode_set(deployment=deployment, mode=AccessMode.DIRECT, actor=platform_admin)

    def test_a_second_department_landing_on_the_account_revokes_the_role(
        self, engine, central, marketing, finance, platform_admin, django_capture_on_commit_callbacks
    ):
        copy = provision(marketing, central, "copy")
        decide(copy, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)
        assert groups_with_the_role(copy.account) == {MARKETING_GROUP}

        ledger = provision(finance, central, "ledger")

        assert ledger.account_id == copy.account_id
        assert groups_with_the_role(copy.account) == set()
        assert ModelDeployment.objects.get(pk=copy.pk).access_mode == AccessMode.GATEWAY
        ended = AuditEvent.objects.filter(
            verb="deployment.access_mode_changed", object_id=str(copy.pk)
        ).last()
        assert ended.actor is None
        assert ended.note.startswith(f"Finance's ledger now shares account {copy.account.name}")


class TestDrift:
    def test_a_group_role_added_by_hand_on_a_gateway_only_account_is_reported(
        self, engine, central, marketing
    ):
        deployment = provision(marketing, central, "copy")
        authorization_client(SUBSCRIPTION).role_assignments.create(
            deployment.account.arm_id,
            "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c",
            {
                "properties": {
                    "roleDefinitionId": ROLE,
                    "principalId": MARKETING_GROUP,
                    "principalType": "Group",
                }
            },
        )

        drift.deployments_check_drift()

        account = OpenAIAccount.objects.get(pk=deployment.account_id)
        assert account.drift == {
            "role_assignments": [
                {
                    "principal": MARKETING_GROUP,
                    "principal_type": "Group",
                    "department": "Marketing",
                    "role": "Cognitive Services OpenAI User",
                    "scope": account.arm_id,
                    "why": "the account's deployments are gateway-only",
                }
            ]
        }

    def test_a_role_on_a_shared_account_is_reported_even_from_above(
        self, engine, central, marketing, finance
    ):
        copy = provision(marketing, central, "copy")
        provision(finance, central, "ledger")
        resource_group = copy.account.arm_id.split("/providers/")[0]
        authorization_client(SUBSCRIPTION).role_assignments.create(
            resource_group,
            "4a3b2c1d-0e9f-4a8b-9c7d-6e5f4a3b2c1d",
            {
                "properties": {
                    "roleDefinitionId": ROLE,
                    "principalId": FINANCE_GROUP,
                    "principalType": "Group",
                }
            },
        )

        drift.deployments_check_drift()

        (found,) = OpenAIAccount.objects.get(pk=copy.account_id).drift["role_assignments"]
        assert found["department"] == "Finance"
        assert found["scope"] == resource_group
        assert found["why"] == "the account hosts several departments' deployments (or a shared service)"

    def test_direct_access_whose_role_was_removed_by_hand_is_reported(
        self, engine, central, marketing, platform_admin, django_capture_on_commit_callbacks
    ):
        deployment = provision(marketing, central, "copy")
        decide(deployment, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)
        authorization = authorization_client(SUBSCRIPTION)
        for assignment in authorization.role_assignments.list_for_scope(deployment.account.arm_id):
            if assignment.principal_id == MARKETING_GROUP:
                authorization.role_assignments.delete(deployment.account.arm_id, assignment.name)

        drift.deployments_check_drift()

        (found,) = OpenAIAccount.objects.get(pk=deployment.account_id).drift["role_assignments"]
        assert found["missing"] is True
        assert found["why"] == "direct access was decided, but the group lacks the role"

    def test_the_decision_as_made_is_no_drift(
        self, engine, central, marketing, platform_admin, django_capture_on_commit_callbacks
    ):
        deployment = provision(marketing, central, "copy")
        decide(deployment, AccessMode.DIRECT, platform_admin, django_capture_on_commit_callbacks)

        drift.deployments_check_drift()

        assert OpenAIAccount.objects.get(pk=deployment.account_id).drift is None
