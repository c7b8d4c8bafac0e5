"""The rules a role assignment PUT must pass, each raising the error Azure answers with."""

import uuid
from typing import Any

from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import Store


def check_assignment_properties(properties: dict[str, Any]) -> tuple[Any, Any]:
    """The role definition and the principal, both required."""
    role_definition, principal = properties.get("roleDefinitionId"), properties.get("principalId")
    if not role_definition or not principal:
        raise AzureError(
            400,
            "InvalidRoleAssignmentRequest",
            "The role assignment needs properties.roleDefinitionId and properties.principalId.",
        )
    return role_definition, principal


def check_assignment_name(name: str) -> None:
    try:
        uuid.UUID(name)
    except ValueError:
        raise AzureError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
        ) from None


def check_not_assigned_elsewhere(
    store: Store, assignment_id: str, scope: str, principal: Any, role_definition: Any
) -> None:
    """A principal holds a role at a scope through one assignment only."""
    for other in store.world.role_assignments.values():
        same = other["properties"]
        if (
            other["id"].lower() != assignment_id.lower()
            and same["scope"].lower() == scope.lower()
            and same["principalId"].lower() == str(principal).lower()
            and same["roleDefinitionId"].rsplit("/", 1)[-1].lower()
            == str(role_definition).rsplit("/", 1)[-1].lower()
        ):
            raise AzureError(409, "RoleAssignmentExists", "The role assignment already exists.")
