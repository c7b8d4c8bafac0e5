"""Direct access as a decision, not a side effect: whether a department's Entra ID group may call
Azure OpenAI directly (skipping Switchyard's budgets, caps and audit trail) or only through the
gateway (the default).

Azure RBAC cannot scope below the account: the data role on an account reaches every deployment
on it. So the group may hold the role only on an account that belongs to its department alone
(no other department's live deployment on it, no shared service), and the decision covers every
deployment on that account: setting one deployment's access mode sets its neighbours' too, and
a deployment of the same department that lands there later is directly callable as well (its
mode says so). When another department's deployment lands on the account, direct access ends
for all of them and the group's role is revoked.

`account_data_access_sync` brings Azure's role assignments in line with the decision; the
provisioning run's role step and `sync_data_access_task` call it. The drift check reports role
assignments that contradict it (`role_contradictions`).
"""

import contextlib
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceExistsError
from django.conf import settings
from django.db import transaction

from audit.services import audit_record
from org.models import Department, User
from provisioning.azure import authorization_client
from provisioning.azure_errors import azure_call
from provisioning.claims import Claim, claimed
from provisioning.models import ModelDeployment, ModelDeploymentQuerySet, OpenAIAccount

AccessMode = ModelDeployment.AccessMode
State = ModelDeployment.State

OPENAI_USER_ROLE_ID = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User
# Roles that let their holder call an account's deployments (the drift check looks for all).
DATA_ROLES = {
    OPENAI_USER_ROLE_ID: "Cognitive Services OpenAI User",
    "a001fd3d-188f-4b5d-821b-7da978bf7442": "Cognitive Services OpenAI Contributor",
    "a97b65f3-24c7-4388-baec-2e87135dc908": "Cognitive Services User",
}


class AccessModeRefused(Exception):
    """An access mode the rules do not allow; the message says which rule, for an admin."""


def account_neighbours(deployment: ModelDeployment) -> ModelDeploymentQuerySet:
    """The live deployments on the deployment's account, itself included, and those on their
    way to it (an account is one per landing zone, region and network mode)."""
    return ModelDeployment.objects.filter(
        landing_zone_id=deployment.landing_zone_id,
        region=deployment.region,
        network_mode=deployment.network_mode,
    ).exclude(state__in=[State.DECOMMISSIONED, State.FAILED])


def _not_alone(deployment: ModelDeployment, neighbours: list[ModelDeployment]) -> list[ModelDeployment]:
    """The neighbours that make the account not the deployment's department's alone."""
    return [
        other
        for other in neighbours
        if other.department_id != deployment.department_id or other.scope == ModelDeployment.Scope.SHARED
    ]


def direct_access_refusal(deployment: ModelDeployment) -> str | None:
    """Why the department's group may not call this deployment directly on Azure, or None."""
    name = deployment.display_name
    if deployment.scope == ModelDeployment.Scope.SHARED:
        return (
            f"{name} is a shared service: every department's applications go through Switchyard, so "
            "each pays its share and keeps to its cap."
        )
    if deployment.state in {State.DECOMMISSIONING, State.DECOMMISSIONED, State.FAILED}:
        return f"{name} is {deployment.get_state_display().lower()}."
    department = deployment.department
    if not department.entra_member_group_id:
        return (
            f"{department.name} has no Entra ID member group to give the role to; a platform admin "
            "sets it on the department first."
        )
    neighbours = list(account_neighbours(deployment).select_related("department"))
    others = _not_alone(deployment, neighbours)
    if others:
        hosted = ", ".join(f"{other.department.name}'s {other.display_name}" for other in others[:3])
        account = deployment.account.name if deployment.account else "its account"
        return (
            f"Direct access needs an account that belongs to {department.name} alone, and {account} "
            f"also hosts {hosted}: Azure's role reaches every deployment on an account, so the group "
            "could call those too, unmetered."
        )
    return None


# The decision ----------------------------------------------------------------------------------


def access_mode_set(*, deployment: ModelDeployment, mode: str, actor: User) -> list[ModelDeployment]:
    """Set the access mode of the deployment and of its account's other deployments (one role
    reaches them all); Azure's role assignments follow once this commits. Returns the
    deployments whose mode changed."""
    if not actor.is_platform_admin:
        raise AccessModeRefused("Only platform admins decide whether applications may call Azure directly.")
    if mode not in AccessMode.values:
        raise AccessModeRefused(f"{mode!r} is not an access mode; choose gateway or direct.")
    with transaction.atomic():
        primary = ModelDeployment.objects.select_for_update(of=("self",)).get(pk=deployment.pk)
        if mode == AccessMode.DIRECT:
            refusal = direct_access_refusal(primary)
            if refusal:
                raise AccessModeRefused(refusal)
        neighbours = (
            account_neighbours(primary).select_for_update(of=("self",)).filter(department=primary.department)
        )
        changed = [neighbour for neighbour in neighbours.order_by("pk") if neighbour.access_mode != mode]
        for neighbour in changed:
            note = "" if neighbour.pk == primary.pk else f"Set with {primary.display_name}: same account."
            _change_mode(neighbour, mode, actor=actor, note=note)
        account_id = primary.account_id
        if changed and account_id is not None:
            from provisioning.tasks import sync_data_access_task

            transaction.on_commit(lambda: sync_data_access_task.delay(account_id))
    return changed


def _change_mode(deployment: ModelDeployment, mode: str, *, actor: User | None, note: str) -> None:
    before = deployment.access_mode
    deployment.access_mode = mode
    deployment.save(update_fields=["access_mode", "updated_at"])
    audit_record(
        actor=actor,
        verb="deployment.access_mode_changed",
        target=deployment,
        department=deployment.department,
        before={"access_mode": before},
        after={"access_mode": mode},
        note=note,
    )


def direct_department(neighbours: list[ModelDeployment]) -> Department | None:
    """The department whose group should hold the data role on an account with these
    deployments: one department's alone, and direct access decided for it."""
    direct = [neighbour for neighbour in neighbours if neighbour.access_mode == AccessMode.DIRECT]
    if not direct or _not_alone(direct[0], neighbours):
        return None
    return direct[0].department


def _settle_modes(account: OpenAIAccount) -> Department | None:
    """Bring the modes of the account's deployments in line with who shares it now (a deployment
    may have landed since the decision); the department whose group should hold the role."""
    with transaction.atomic():
        neighbours = list(
            ModelDeployment.objects.on_account(account)
            .select_for_update(of=("self",))
            .select_related("department")
            .order_by("pk")
        )
        direct = [neighbour for neighbour in neighbours if neighbour.access_mode == AccessMode.DIRECT]
        if not direct:
            return None
        others = _not_alone(direct[0], neighbours)
        if others:
            note = (
                f"{others[0].department.name}'s {others[0].display_name} now shares account "
                f"{account.name}: direct access ended and the group's role is revoked."
            )
            for deployment in direct:
                _change_mode(deployment, AccessMode.GATEWAY, actor=None, note=note)
            return None
        note = f"Account {account.name} allows direct calls: the group's role reaches every deployment on it."
        for deployment in neighbours:
            if deployment.access_mode != AccessMode.DIRECT:
                _change_mode(deployment, AccessMode.DIRECT, actor=None, note=note)
        return direct[0].department


# Azure's role assignments ----------------------------------------------------------------------


@dataclass
class RoleChanges:
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)


def _role_definition(subscription_id: str, role_id: str = OPENAI_USER_ROLE_ID) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"


def assignment_name(scope: str, principal: str) -> str:
    """A name derived from scope, principal and role makes the PUT idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal}|{OPENAI_USER_ROLE_ID}"))


def role_id_of(assignment: Any) -> str:
    return str(assignment.role_definition_id or "").rsplit("/", 1)[-1].lower()


def grant_data_role(
    client: Any, account: OpenAIAccount, principal: str, principal_type: str, *, for_deployment: Any = None
) -> None:
    body = {
        "properties": {
            "roleDefinitionId": _role_definition(account.landing_zone.subscription_id),
            "principalId": principal,
            "principalType": principal_type,
        }
    }
    create = functools.partial(
        client.role_assignments.create, account.arm_id, assignment_name(account.arm_id, principal), body
    )
    # ResourceExistsError: the same role was granted under another name, which is all we need.
    with contextlib.suppress(ResourceExistsError):
        azure_call(for_deployment, "grant data-plane access", create)


def account_data_access_sync(
    *, account_id: int, for_deployment: ModelDeployment | None = None
) -> RoleChanges:
    """Grant the data role on the account to the department's group when direct access is decided
    and the account is that department's alone; revoke it from every department's group
    otherwise. Safe to run twice: it reads what Azure has first. Only assignments at the
    account's own scope are changed; one inherited from above is the drift check's to report."""
    with claimed(Claim.ACCOUNT, account_id):
        account = OpenAIAccount.objects.select_related("landing_zone").get(pk=account_id)
        if account.state != OpenAIAccount.State.ACTIVE or not account.arm_id:
            return RoleChanges()
        department = _settle_modes(account)
        wanted = department.entra_member_group_id if department is not None else ""
        client = authorization_client(account.landing_zone.subscription_id, retries=0)
        return _roles_in_line(client, account, wanted, for_deployment)


def _roles_in_line(
    client: Any, account: OpenAIAccount, wanted: str, for_deployment: ModelDeployment | None
) -> RoleChanges:
    scope = account.arm_id
    assignments = azure_call(
        for_deployment,
        "read the account's role assignments",
        lambda: list(client.role_assignments.list_for_scope(scope, filter="atScope()")),
    )
    groups = set(
        Department.objects.exclude(entra_member_group_id="").values_list("entra_member_group_id", flat=True)
    )
    changes = RoleChanges()
    held = False
    for assignment in assignments:
        principal = str(assignment.principal_id or "")
        if role_id_of(assignment) != OPENAI_USER_ROLE_ID:
            continue
        if principal == wanted:
            held = True
        elif principal in groups and _at(assignment, scope):
            name = str(assignment.name)
            azure_call(
                for_deployment,
                "revoke a department group's data-plane access",
                functools.partial(client.role_assignments.delete, scope, name),
            )
            changes.revoked.append(principal)
    if wanted and not held:
        grant_data_role(client, account, wanted, "Group", for_deployment=for_deployment)
        changes.granted.append(wanted)
    return changes


def _at(assignment: Any, scope: str) -> bool:
    return str(assignment.scope or "").rstrip("/").lower() == scope.rstrip("/").lower()


# What contradicts the decision -----------------------------------------------------------------


def role_contradictions(account: OpenAIAccount, assignments: list[Any]) -> list[dict[str, Any]]:
    """The data-role assignments reaching the account that the decision does not account for, and
    the group's missing role when direct access was decided: as the drift check records them."""
    neighbours = list(ModelDeployment.objects.on_account(account).select_related("department"))
    department = direct_department(neighbours)
    wanted = department.entra_member_group_id if department is not None else ""
    shared = bool(neighbours) and bool(_not_alone(neighbours[0], neighbours))
    groups = dict(
        Department.objects.exclude(entra_member_group_id="").values_list("entra_member_group_id", "name")
    )
    found: list[dict[str, Any]] = []
    held = False
    for assignment in assignments:
        role, principal = role_id_of(assignment), str(assignment.principal_id or "")
        if role not in DATA_ROLES or principal == settings.AZURE_PORTAL_PRINCIPAL_ID:
            continue
        if principal == wanted and role == OPENAI_USER_ROLE_ID:
            held = True
            continue
        if shared:
            why = "the account hosts several departments' deployments (or a shared service)"
        elif principal in groups:
            why = "the account's deployments are gateway-only"
        else:
            why = (
                "Switchyard gives the data role to no one but itself and, for direct access, a "
                "department's group"
            )
        found.append(
            {
                "principal": principal,
                "principal_type": str(assignment.principal_type or ""),
                "department": groups.get(principal, ""),
                "role": DATA_ROLES[role],
                "scope": str(assignment.scope or ""),
                "why": why,
            }
        )
    if wanted and not held:
        found.append(
            {
                "principal": wanted,
                "principal_type": "Group",
                "department": groups.get(wanted, ""),
                "role": DATA_ROLES[OPENAI_USER_ROLE_ID],
                "scope": account.arm_id,
                "why": "direct access was decided, but the group lacks the role",
                "missing": True,
            }
        )
    return found
