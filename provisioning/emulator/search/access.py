"""Who may call a search service's data plane, as Azure AI Search decides it: an admin api-key
may do everything, a query key only read documents; an Entra ID bearer token (audience
https://search.azure.com) counts where the service accepts role-based access (`authOptions`
aadOrApiKey, or local auth disabled), and its principal needs a role that grants the operation at
the service, an index, or a scope above them."""

import time
from enum import Enum
from typing import Any

from starlette.requests import Request

from provisioning.emulator import auth
from provisioning.emulator.search.errors import forbidden, unauthenticated
from provisioning.emulator.state import Store

SEARCH_AUDIENCE = "https://search.azure.com"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
SEARCH_SERVICE_CONTRIBUTOR = "7ca78c08-252a-4471-8644-bb5ff32d4ba0"
SEARCH_INDEX_DATA_CONTRIBUTOR = "8ebe5a00-799e-43f5-93ac-243d3dce84a7"
SEARCH_INDEX_DATA_READER = "1407120a-92aa-4202-b7e9-c0e197c71c8f"


class Need(Enum):
    """What an operation needs: to manage indexes, to write documents, or to read them."""

    MANAGE = {OWNER, CONTRIBUTOR, SEARCH_SERVICE_CONTRIBUTOR}
    WRITE = {SEARCH_INDEX_DATA_CONTRIBUTOR}
    READ = {SEARCH_INDEX_DATA_CONTRIBUTOR, SEARCH_INDEX_DATA_READER}


def authenticate(
    request: Request, store: Store, service: dict[str, Any], need: Need, *, index: str = ""
) -> None:
    properties = service["properties"]
    key = request.headers.get("api-key")
    if key:
        if properties.get("disableLocalAuth"):
            raise forbidden("Key-based authentication is disabled for this search service.")
        keys = service["_keys"]
        if key in (keys["primaryKey"], keys["secondaryKey"]):
            return
        if need is Need.READ and key in [query_key["key"] for query_key in keys["queryKeys"]]:
            return
        raise forbidden()
    claims = auth.bearer_claims(request)
    if claims is None:
        raise unauthenticated()
    _check_token(claims)
    if not (properties.get("disableLocalAuth") or "aadOrApiKey" in (properties.get("authOptions") or {})):
        raise forbidden(
            "Role-based access is not enabled for this search service (authOptions is apiKeyOnly)."
        )
    resource = service["id"] + (f"/indexes/{index}" if index else "")
    if not auth.principal_has_role(store.world.role_assignments, str(claims["oid"]), resource, need.value):
        raise forbidden(
            f"The principal '{claims['oid']}' does not have a role that permits this operation on '{resource}'."
        )


def _check_token(claims: dict[str, Any]) -> None:
    audience = str(claims.get("aud", "")).rstrip("/")
    expires = claims.get("exp")
    if (
        not isinstance(claims.get("oid"), str)
        or audience != SEARCH_AUDIENCE
        or (isinstance(expires, int | float) and expires < time.time())
    ):
        raise unauthenticated()
