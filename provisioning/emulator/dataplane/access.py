"""Who may call an account's data plane: an Entra ID token whose principal holds a data role on
the account, or an api-key where local auth is allowed."""

import time
from typing import Any

from starlette.requests import Request

from provisioning.emulator import auth
from provisioning.emulator.dataplane.errors import (
    invalid_key,
    invalid_token,
    keys_disabled,
    permission_denied,
)
from provisioning.emulator.state import Store

DATA_PLANE_AUDIENCES = {"https://cognitiveservices.azure.com", "https://ai.azure.com"}


def authenticate(request: Request, store: Store, account: dict[str, Any], operation: str) -> None:
    """Entra ID bearer token with a data role, or an api-key (also sent as a bearer token to /v1)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    if bearer and bearer.count(".") == 2:
        claims = auth.bearer_claims(request) or {}
        _check_token(claims)
        principal_id = str(claims["oid"])
        if not auth.principal_has_data_role(store.world.role_assignments, principal_id, account["id"]):
            raise permission_denied(principal_id, operation)
        return
    key = request.headers.get("api-key") or bearer
    if not key:
        raise invalid_token()
    if account["properties"].get("disableLocalAuth"):
        raise keys_disabled()
    if key not in account.get("_keys", {}).values():
        raise invalid_key()


def _check_token(claims: dict[str, Any]) -> None:
    if not isinstance(claims.get("oid"), str) or not claims["oid"]:
        raise invalid_token()
    audience = str(claims.get("aud", "")).rstrip("/")
    if audience not in DATA_PLANE_AUDIENCES:
        raise invalid_token()
    expires = claims.get("exp")
    if isinstance(expires, int | float) and expires < time.time():
        raise invalid_token()
