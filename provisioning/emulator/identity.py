"""Microsoft Entra ID's token service for one emulated tenant per tenant id in the path, as
login.microsoftonline.com serves it:

- GET  /{tenant}/v2.0/.well-known/openid-configuration   the OpenID Connect discovery document;
- GET  /{tenant}/discovery/v2.0/keys (and /discovery/keys) the key set that verifies its tokens;
- POST /{tenant}/oauth2/v2.0/token  the client credentials grant (a workload identity: client id
  and secret, scope `{app id URI}/.default`) and the resource-owner password grant (a person, for
  tests), issuing RS256-signed access tokens.

Tokens take the shape the API asked for in its manifest (`accessTokenVersion`): v2.0 tokens carry
the API's application id as `aud` and `azp`; v1.0 tokens the app id URI asked for and `appid`.
The issuer is the emulator's own URL (`{emulator}/{tenant}/v2.0`, `{emulator}/{tenant}/` for
v1.0), so a relying party checks it exactly as it checks Entra's.

The data plane does not use any of this: the portal's own credential still sends unsigned tokens
there (provisioning/emulator/auth.py).
"""

import base64
import hashlib
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisioning.emulator.identity_registry import (
    find_api,
    find_client,
    find_user,
    is_guid,
    signing_keys,
)
from provisioning.emulator.signing import public_jwk, sign
from provisioning.emulator.state import Store

TOKEN_LIFETIME_SECONDS = 3599
# Entra dates `iat` and `nbf` five minutes back, for relying parties whose clocks run behind.
BACKDATE_SECONDS = 300
OPENID_SCOPES = {"openid", "profile", "email", "offline_access"}
GRANTS = {"client_credentials", "password"}


class EntraError(Exception):
    """An error as the token service writes it: `error`, an AADSTS code and its description."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def response(self) -> JSONResponse:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return JSONResponse(
            {
                "error": self.error,
                "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}",
                "error_codes": [self.code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            },
            status_code=self.status,
        )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _tenant(request: Request) -> str:
    tenant: str = request.path_params["tenant"]
    if not is_guid(tenant):
        raise EntraError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. The emulator knows tenants by their id (a GUID).",
        )
    return tenant.lower()


def issuer(origin: str, tenant: str, version: int) -> str:
    return f"{origin}/{tenant}/v2.0" if version == 2 else f"{origin}/{tenant}/"


async def openid_configuration(request: Request) -> Response:
    try:
        tenant = _tenant(request)
    except EntraError as error:
        return error.response()
    base = f"{_origin(request)}/{tenant}"
    return JSONResponse(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer(_origin(request), tenant, 2),
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                *("sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce"),
                *("preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"),
            ],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        }
    )


async def keys(request: Request) -> Response:
    try:
        _tenant(request)
    except EntraError as error:
        return error.response()
    store = _store(request)
    # How often relying parties fetched the key set: tests read it to see a cache at work.
    request.app.state.key_set_requests = getattr(request.app.state, "key_set_requests", 0) + 1
    async with store.lock:
        fault = store.take_fault("identity.keys", {"500", "503"})
        published = list(signing_keys(store))
    if fault is not None:
        return _unavailable(int(fault.kind))
    v2 = request.url.path.endswith("/v2.0/keys")
    key_issuer = issuer(_origin(request), "{tenantid}", 2)
    jwks = [public_jwk(key, issuer=key_issuer) for key in published]
    if not v2:  # the v1.0 key set names no issuer
        jwks = [{name: value for name, value in jwk.items() if name != "issuer"} for jwk in jwks]
    return JSONResponse({"keys": jwks})


def _unavailable(status: int) -> JSONResponse:
    return EntraError(
        status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
    ).response()


async def token(request: Request) -> Response:
    store = _store(request)
    try:
        tenant = _tenant(request)
        form = _form(await request.body())
        grant = _required(form, "grant_type")
        if grant not in GRANTS:
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        async with store.lock:
            fault = store.take_fault("identity.token", {"500", "503"})
            if fault is not None:
                return _unavailable(int(fault.kind))
            client_id, client = _authenticated_client(store, request, form, tenant, grant)
            api, scopes = _resource(store, _required(form, "scope"), grant, tenant)
            person = _person(store, form) if grant == "password" else None
            key = signing_keys(store)[0]
    except EntraError as error:
        return error.response()
    claims = token_claims(
        origin=_origin(request),
        tenant=tenant,
        api=api,
        client_id=client_id,
        client=client,
        person=person,
        scopes=scopes,
    )
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS,
        "access_token": sign(claims, key, legacy_thumbprint=api["accessTokenVersion"] == 1),
    }
    if person is not None:
        body = {"token_type": "Bearer", "scope": " ".join(f"{api['appIdUri']}/{s}" for s in scopes), **body}
    return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        fields = {}
    return {name: values[0] for name, values in fields.items()}


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise EntraError(
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{name}'.",
        )
    return value


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


def _authenticated_client(
    store: Store, request: Request, form: dict[str, str], tenant: str, grant: str
) -> tuple[str, dict[str, Any]]:
    """The client and its id, once its secret (client_secret_post or client_secret_basic) checks out."""
    basic = _basic_credentials(request)
    client_id = basic[0] if basic else _required(form, "client_id")
    secret = basic[1] if basic else form.get("client_secret", "")
    client = find_client(store, client_id)
    if client is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This "
            "can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the "
            "wrong tenant.",
        )
    if client["secret"] is None:
        if secret:
            raise EntraError(
                401,
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            )
        if grant == "client_credentials":
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
    elif not secret:
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    elif not secrets.compare_digest(secret.encode(), str(client["secret"]).encode()):
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    return client_id.lower(), client


def _resource(store: Store, scope: str, grant: str, tenant: str) -> tuple[dict[str, Any], list[str]]:
    """The one API the scope names and the scopes granted on it (none for an application: its
    permissions would be app roles, which Switchyard does not use)."""
    requested = [name.rpartition("/") for name in scope.split() if name not in OPENID_SCOPES]
    if not requested or (grant == "client_credentials" and len(requested) > 1):
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
        )
    if len({resource for resource, _, _ in requested}) > 1:
        raise EntraError(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more than one "
            "resource. Scope " + scope + " is not valid.",
        )
    resource, names = requested[0][0], [name for _, _, name in requested]
    if grant == "client_credentials" and names != [".default"]:
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    api = find_api(store, resource) if resource else None
    if api is None:
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource or scope} was not found in the tenant named {tenant}. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You might have sent your authentication request to the "
            "wrong tenant.",
        )
    if grant == "client_credentials":
        return api, []
    if ".default" in names:
        return api, list(api["scopes"])
    if set(names) - set(api["scopes"]):
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
        )
    return api, names


def _person(store: Store, form: dict[str, str]) -> dict[str, Any]:
    username = _required(form, "username")
    password = _required(form, "password")
    user = find_user(store, username)
    if user is None or not secrets.compare_digest(password.encode(), str(user["password"]).encode()):
        raise EntraError(
            400,
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.",
        )
    return {"username": username.lower(), **user}


def token_claims(
    *,
    origin: str,
    tenant: str,
    api: dict[str, Any],
    client_id: str,
    client: dict[str, Any],
    person: dict[str, Any] | None,
    scopes: list[str],
    issued_at: int | None = None,
) -> dict[str, Any]:
    """An access token's claims, as Entra writes them for the API's token version."""
    now = int(time.time()) if issued_at is None else issued_at
    version = int(api["accessTokenVersion"])
    object_id = person["objectId"] if person else client["objectId"]
    claims: dict[str, Any] = {
        "aud": api["appId"] if version == 2 else api["appIdUri"],
        "iss": issuer(origin, tenant, version),
        "iat": now - BACKDATE_SECONDS,
        "nbf": now - BACKDATE_SECONDS,
        "exp": now + TOKEN_LIFETIME_SECONDS + 1,
        "aio": base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("="),
    }
    client_authentication = "1" if client["secret"] else "0"
    if version == 2:
        claims |= {"azp": client_id, "azpacr": client_authentication}
    else:
        claims |= {"appid": client_id, "appidacr": client_authentication, "idp": claims["iss"]}
    claims["idtyp"] = "user" if person else "app"
    if not person and api.get("appRoles"):
        # The application permissions the tenant's administrator consented to (Microsoft Graph's).
        claims["roles"] = list(api["appRoles"])
    if person:
        claims |= {"name": person.get("name") or person["username"], "scp": " ".join(scopes)}
        claims |= {"preferred_username": person["username"]} if version == 2 else {"upn": person["username"]}
    claims |= {
        "oid": object_id,
        "rh": "0." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("="),
        # A person's `sub` is pairwise (per client application); an application's is its own oid.
        "sub": _pairwise_subject(object_id, client_id) if person else object_id,
        "tid": tenant,
        "uti": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        "ver": "2.0" if version == 2 else "1.0",
    }
    return claims


def _pairwise_subject(object_id: str, client_id: str) -> str:
    digest = hashlib.sha256(f"{object_id}|{client_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


routes = [
    Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
    Route("/{tenant}/discovery/keys", keys, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
]
