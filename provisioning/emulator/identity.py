"""Microsoft Entra ID's token service for one emulated tenant per tenant id in the path, as
login.microsoftonline.com serves it:

- GET  /{tenant}/v2.0/.well-known/openid-configuration   the OpenID Connect discovery document;
- GET  /{tenant}/discovery/v2.0/keys (and /discovery/keys) the key set that verifies its tokens;
- POST /{tenant}/oauth2/v2.0/token  the client credentials grant (a workload identity: client id
  and secret, scope `{app id URI}/.default`), the resource-owner password grant (a person, for
  tests) and the authorization code grant (a person who signed in on the authorize page of
  provisioning/emulator/oidc.py, with PKCE), issuing RS256-signed access tokens and, for sign-in,
  ID tokens.

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
from dataclasses import dataclass
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
    transitive_group_ids,
)
from provisioning.emulator.signing import public_jwk, sign
from provisioning.emulator.state import Store

TOKEN_LIFETIME_SECONDS = 3599
# Entra dates `iat` and `nbf` five minutes back, for relying parties whose clocks run behind.
BACKDATE_SECONDS = 300
OPENID_SCOPES = {"openid", "profile", "email", "offline_access"}
GRANTS = {"client_credentials", "password", "authorization_code"}


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
            "code_challenge_methods_supported": ["S256", "plain"],
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
                *("oid", "groups"),
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
    code: AuthorizationCode | None = None
    person: dict[str, Any] | None
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
            if grant == "authorization_code":
                code = _redeemed_code(request, form, client_id=client_id, tenant=tenant)
                api, scopes = _code_resource(store, code)
                person = _code_person(store, code)
            else:
                api, scopes = _resource(store, _required(form, "scope"), grant, tenant)
                person = _person(store, form) if grant == "password" else None
            groups = sorted(transitive_group_ids(store, person["objectId"])) if code and person else []
            groups_limit = int(store.world.settings["groups_claim_limit"])
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
        granted = [f"{api['appIdUri']}/{s}" for s in scopes if s not in OPENID_SCOPES]
        if code is not None:
            granted = [*code.openid_scopes, *granted]
        body = {"token_type": "Bearer", "scope": " ".join(granted), **body}
    if code is not None and person is not None and "openid" in code.openid_scopes:
        body["id_token"] = sign(
            id_token_claims(
                origin=_origin(request),
                tenant=tenant,
                client_id=client_id,
                person=person,
                code=code,
                groups=groups,
                groups_limit=groups_limit,
            ),
            key,
        )
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


@dataclass
class AuthorizationCode:
    """What a person consented to on the authorize page, kept until the client redeems the code:
    the code is bound to the client, its redirect URI, its PKCE challenge and its nonce."""

    tenant: str
    client_id: str
    redirect_uri: str
    username: str
    api_id_uri: str  # the resource the access token is for
    scopes: list[str]  # on that resource
    openid_scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    issued_at: float
    redeemed: bool = False


def _codes(request: Request) -> dict[str, AuthorizationCode]:
    # In memory only: a code lives minutes, and a restarted emulator forgets it as Entra would
    # refuse it after a while anyway.
    if not hasattr(request.app.state, "authorization_codes"):
        request.app.state.authorization_codes = {}
    codes: dict[str, AuthorizationCode] = request.app.state.authorization_codes
    return codes


def authorization_code_issue(request: Request, grant: AuthorizationCode) -> str:
    """A new one-time code for `grant`; codes past their lifetime are forgotten. Call under
    `store.lock`."""
    codes = _codes(request)
    lifetime = float(_store(request).world.settings["authorization_code_seconds"])
    for stale in [value for value, kept in codes.items() if time.time() - kept.issued_at > lifetime + 3600]:
        del codes[stale]
    # Entra's codes are long opaque strings that start with a version marker.
    value = "1.A" + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode().rstrip("=")
    codes[value] = grant
    return value


def _invalid_grant(code: int, description: str) -> EntraError:
    return EntraError(400, "invalid_grant", code, description)


def _redeemed_code(
    request: Request, form: dict[str, str], *, client_id: str, tenant: str
) -> AuthorizationCode:
    """The code's grant once every binding checks out; a code is spent by its first redemption,
    whether that succeeds or not, so a stolen code cannot be tried twice."""
    value = _required(form, "code")
    redirect_uri = _required(form, "redirect_uri")
    grant = _codes(request).get(value)
    if grant is None:
        raise _invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    if grant.redeemed:
        raise _invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
            "existing refresh token.",
        )
    grant.redeemed = True
    lifetime = float(_store(request).world.settings["authorization_code_seconds"])
    if time.time() - grant.issued_at >= lifetime:
        raise _invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new "
            "interactive authorization request for this user and resource.",
        )
    if grant.tenant != tenant:
        raise _invalid_grant(
            700005, "Provided Authorization Code is intended to use against other tenant, thus rejected."
        )
    if grant.client_id != client_id:
        raise _invalid_grant(70000, "The provided value for the 'code' parameter is not valid.")
    if redirect_uri != grant.redirect_uri:
        raise _invalid_grant(
            500112,
            f"The reply address '{redirect_uri}' does not match the reply address '{grant.redirect_uri}' "
            "provided when requesting Authorization code.",
        )
    if grant.code_challenge is not None:
        verifier = form.get("code_verifier", "")
        if not verifier or not secrets.compare_digest(
            pkce_challenge(verifier, grant.code_challenge_method), grant.code_challenge
        ):
            raise _invalid_grant(
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request "
                "for PKCE.",
            )
    return grant


def pkce_challenge(verifier: str, method: str) -> str:
    """The challenge a verifier answers (RFC 7636): its SHA-256 in base64url, or itself for plain."""
    if method == "plain":
        return verifier
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _code_resource(store: Store, grant: AuthorizationCode) -> tuple[dict[str, Any], list[str]]:
    api = find_api(store, grant.api_id_uri)
    if api is None:  # removed from the registry since the person signed in
        raise _invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    return api, grant.scopes


def _code_person(store: Store, grant: AuthorizationCode) -> dict[str, Any]:
    user = find_user(store, grant.username)
    if user is None:
        raise _invalid_grant(
            50034, f"The user account {grant.username} does not exist in the {grant.tenant} directory."
        )
    if not user.get("accountEnabled", True):
        raise _invalid_grant(50057, "The user account is disabled.")
    return {"username": grant.username, **user}


def id_token_claims(
    *,
    origin: str,
    tenant: str,
    client_id: str,
    person: dict[str, Any],
    code: AuthorizationCode,
    groups: list[str],
    groups_limit: int,
    issued_at: int | None = None,
) -> dict[str, Any]:
    """A v2.0 ID token's claims, as Entra writes them for a web application whose manifest asks
    for security groups (`groupMembershipClaims`) and the optional claims `email`, `given_name`
    and `family_name`.

    A person in more groups than fit gets the overage claim instead of the list: the relying
    party reads their groups from Microsoft Graph with the access token that came along."""
    now = int(time.time()) if issued_at is None else issued_at
    object_id = str(person["objectId"])
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer(origin, tenant, 2),
        "iat": now - BACKDATE_SECONDS,
        "nbf": now - BACKDATE_SECONDS,
        "exp": now + TOKEN_LIFETIME_SECONDS + 1,
        "aio": base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("="),
    }
    if "email" in code.openid_scopes:
        claims["email"] = person["username"]
    if "profile" in code.openid_scopes:
        # Optional claims the portal's registration asks for, as `email` is.
        claims |= {"family_name": person.get("surname"), "given_name": person.get("givenName")}
        claims = {name: value for name, value in claims.items() if value is not None}
    if len(groups) > groups_limit:
        claims["_claim_names"] = {"groups": "src1"}
        claims["_claim_sources"] = {
            "src1": {"endpoint": f"https://graph.windows.net/{tenant}/users/{object_id}/getMemberObjects"}
        }
    else:
        claims["groups"] = groups
    if "profile" in code.openid_scopes:
        claims["name"] = person.get("name") or person["username"]
    if code.nonce is not None:
        claims["nonce"] = code.nonce
    claims["oid"] = object_id
    if "profile" in code.openid_scopes:
        claims["preferred_username"] = person["username"]
    claims |= {
        "rh": "0." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("="),
        "sid": str(uuid.uuid4()),
        "sub": _pairwise_subject(object_id, client_id),
        "tid": tenant,
        "uti": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        "ver": "2.0",
    }
    return claims


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
