"""Who is calling: the bearer token's claims (Entra ID tokens are JWTs; the emulator does not
check signatures, as its credential issues unsigned ones) and the data-plane role check Azure
makes on keyless accounts."""

import base64
import json
from typing import Any

from starlette.requests import Request

from provisioning.emulator.errors import AzureError

# Roles whose data actions include chat completions on an Azure OpenAI account.
DATA_ROLE_IDS = {
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",  # Cognitive Services OpenAI User
    "a001fd3d-188f-4b5d-821b-7da978bf7442",  # Cognitive Services OpenAI Contributor
    "a97b65f3-24c7-4388-baec-2e87135dc908",  # Cognitive Services User
}


def bearer_claims(request: Request) -> dict[str, Any] | None:
    """The claims of the request's bearer token, or None when it has none (or not a JWT)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, json.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def require_arm_caller(request: Request) -> dict[str, Any]:
    claims = bearer_claims(request)
    if claims is None:
        raise AzureError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            headers={"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/"'},
        )
    return claims


def principal_has_data_role(
    role_assignments: dict[str, dict[str, Any]], principal_id: str, account_id: str
) -> bool:
    """Whether `principal_id` holds a data role at the account or a scope above it."""
    return principal_has_role(role_assignments, principal_id, account_id, DATA_ROLE_IDS)


def principal_has_role(
    role_assignments: dict[str, dict[str, Any]], principal_id: str, resource_id: str, role_ids: set[str]
) -> bool:
    """Whether `principal_id` holds one of `role_ids` at the resource or a scope above it."""
    resource = resource_id.lower()
    for assignment in role_assignments.values():
        properties = assignment["properties"]
        if properties["principalId"].lower() != principal_id.lower():
            continue
        if properties["roleDefinitionId"].rsplit("/", 1)[-1].lower() not in role_ids:
            continue
        scope = properties["scope"].rstrip("/").lower()
        if resource == scope or resource.startswith(scope + "/") or scope == "":
            return True
    return False
