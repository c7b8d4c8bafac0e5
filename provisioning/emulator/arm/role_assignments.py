"""Role assignments of Microsoft.Authorization at any scope: create or replace, read, delete and
list. The data plane reads them to decide who may call an account."""

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter, json_body
from provisioning.emulator.arm.resources import iso
from provisioning.emulator.arm.role_assignments_validation import (
    check_assignment_name,
    check_assignment_properties,
    check_not_assigned_elsewhere,
)
from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import now


def _scope(request: Request) -> str:
    scope: str = request.path_params["scope"]
    return "/" + scope.strip("/")


def _assignment_id(request: Request) -> str:
    return (
        f"{_scope(request)}/providers/Microsoft.Authorization/roleAssignments/"
        f"{request.path_params['assignment']}"
    )


async def role_assignment_put(request: Request) -> Response:
    store = await enter(request, "roleAssignments.put")
    caller = require_arm_caller(request)
    scope = _scope(request)
    name = request.path_params["assignment"]
    body = await json_body(request)
    properties = body.get("properties") or {}
    role_definition, principal = check_assignment_properties(properties)
    check_assignment_name(name)
    assignment_id = _assignment_id(request)
    async with store.lock:
        check_not_assigned_elsewhere(store, assignment_id, scope, principal, role_definition)
        existing = store.world.role_assignments.get(assignment_id.lower())
        assignment = {
            "id": assignment_id,
            "name": name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": _assignment_properties(properties, role_definition, principal, scope, caller),
        }
        store.world.role_assignments[assignment_id.lower()] = assignment
        store.save()
    return JSONResponse(assignment, status_code=200 if existing else 201)


def _assignment_properties(
    requested: dict[str, Any], role_definition: Any, principal: Any, scope: str, caller: dict[str, Any]
) -> dict[str, Any]:
    return {
        "roleDefinitionId": role_definition,
        "principalId": principal,
        "principalType": requested.get("principalType", "ServicePrincipal"),
        "scope": scope,
        "condition": requested.get("condition"),
        "conditionVersion": requested.get("conditionVersion"),
        "createdOn": iso(now()),
        "updatedOn": iso(now()),
        "createdBy": caller.get("oid"),
        "updatedBy": caller.get("oid"),
        "delegatedManagedIdentityResourceId": None,
        "description": requested.get("description"),
    }


async def role_assignment_get(request: Request) -> Response:
    store = await enter(request, "roleAssignments.get")
    assignment = store.world.role_assignments.get(_assignment_id(request).lower())
    if assignment is None:
        raise AzureError(
            404,
            "RoleAssignmentNotFound",
            "The role assignment '{}' is not found.".format(request.path_params["assignment"]),
        )
    return JSONResponse(assignment)


async def role_assignment_delete(request: Request) -> Response:
    store = await enter(request, "roleAssignments.delete")
    async with store.lock:
        assignment = store.world.role_assignments.pop(_assignment_id(request).lower(), None)
        store.save()
    if assignment is None:
        return Response(status_code=204)
    return JSONResponse(assignment)


async def role_assignments_list(request: Request) -> Response:
    """As Azure answers: without a filter, the assignments at, above and below the scope;
    `atScope()`, those at or above it (the ones that reach it); `principalId eq '<id>'`, the
    principal's at, above or below it."""
    store = await enter(request, "roleAssignments.list")
    scope = _scope(request).rstrip("/").lower()
    reaches, principal = _list_filter(request.query_params.get("$filter"))
    value = []
    for assignment in store.world.role_assignments.values():
        properties = assignment["properties"]
        at = properties["scope"].rstrip("/").lower()
        above = at == scope or scope.startswith(at + "/")
        below = at.startswith(scope + "/")
        if not (above or (below and not reaches)):
            continue
        if principal is not None and properties["principalId"].lower() != principal:
            continue
        value.append(assignment)
    return JSONResponse({"value": value})


def _list_filter(text: str | None) -> tuple[bool, str | None]:
    """(only the assignments that reach the scope, only this principal's) from `$filter`."""
    if not text:
        return False, None
    if text.strip() == "atScope()":
        return True, None
    match = re.fullmatch(r"\s*principalId\s+eq\s+'([0-9a-fA-F-]+)'\s*", text)
    if match:
        return False, match.group(1).lower()
    raise AzureError(400, "InvalidFilter", f"The filter '{text}' is not supported.")
