"""Microsoft Entra ID's sign-in page for the emulated tenant: the authorize endpoint of the
OpenID Connect authorization code flow, as login.microsoftonline.com serves it.

- GET  /{tenant}/oauth2/v2.0/authorize  checks the request (client, redirect URI, response type,
  scopes, PKCE) and shows a small sign-in page listing the tenant's people;
- POST /{tenant}/oauth2/v2.0/authorize  signs the chosen person in with their password and sends
  the browser back to the client with a one-time code (query, fragment or form_post), which the
  token endpoint (provisioning/emulator/identity.py) redeems for an ID token and an access token.

As on Entra, a request whose client or redirect URI cannot be trusted gets its error on the page
and is never redirected; every other error goes back to the redirect URI with `error`,
`error_description` (an AADSTS code) and `state`.
"""

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from provisioning.emulator.identity import (
    OPENID_SCOPES,
    AuthorizationCode,
    EntraError,
    _form,
    _resource,
    authorization_code_issue,
)
from provisioning.emulator.identity_registry import (
    GRAPH_APP_ID_URI,
    find_client,
    find_user,
    is_guid,
    registry,
)
from provisioning.emulator.oidc_pages import SignInForm, error_page, form_post_page, sign_in_page
from provisioning.emulator.state import Store

RESPONSE_MODES = {"query", "fragment", "form_post"}
CHALLENGE_METHODS = {"S256", "plain"}
# Entra accepts any port on a loopback redirect URI: a developer's server picks its own.
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


class PageError(Exception):
    """An error shown on the sign-in page: the client or its redirect URI is not to be trusted."""

    def __init__(self, error: EntraError) -> None:
        super().__init__(error.description)
        self.error = error


class ClientError(Exception):
    """An error sent back to the client's redirect URI."""

    def __init__(self, error: EntraError) -> None:
        super().__init__(error.description)
        self.error = error


@dataclass(frozen=True)
class SignInRequest:
    tenant: str
    client_id: str
    client_name: str
    redirect_uri: str
    response_mode: str
    state: str | None
    nonce: str | None
    scope: str
    api_id_uri: str
    scopes: list[str]
    openid_scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str
    login_hint: str

    def hidden_fields(self) -> dict[str, str]:
        """The request's parameters as the page's form carries them back on POST."""
        fields = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "response_mode": self.response_mode,
            "scope": self.scope,
        }
        optional = {
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method if self.code_challenge else None,
        }
        return fields | {name: value for name, value in optional.items() if value is not None}


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _error(status: int, error: str, code: int, description: str) -> EntraError:
    return EntraError(status, error, code, description)


def redirect_uri_matches(registered: str, given: str) -> bool:
    """Exact match, except that a loopback http URI matches on any port."""
    if registered == given:
        return True
    mine, theirs = urlsplit(registered), urlsplit(given)
    if mine.scheme != "http" or theirs.scheme != "http" or mine.hostname is None:
        return False
    host = f"[{mine.hostname}]" if ":" in mine.hostname else mine.hostname
    their_host = f"[{theirs.hostname}]" if theirs.hostname and ":" in theirs.hostname else theirs.hostname
    return (
        host in LOOPBACK_HOSTS
        and host == their_host
        and (mine.path, mine.query) == (theirs.path, theirs.query)
        and not theirs.fragment
    )


def _parameters(source: Any) -> dict[str, str]:
    return {name: str(source.get(name, "")).strip() for name in source}


def sign_in_request(store: Store, tenant: str, params: dict[str, str]) -> SignInRequest:
    """The authorize request checked as Entra checks it; raises PageError or ClientError."""
    if not is_guid(tenant):
        raise PageError(
            _error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        )
    client_id = params.get("client_id", "")
    if not client_id:
        raise PageError(
            _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        )
    client = find_client(store, client_id) if is_guid(client_id) else None
    if client is None:
        raise PageError(
            _error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can "
                "happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant.",
            )
        )
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise PageError(
            _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'redirect_uri'.",
            )
        )
    if not any(
        redirect_uri_matches(registered, redirect_uri) for registered in client.get("redirectUris", [])
    ):
        raise PageError(
            _error(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{client_id.lower()}'. Make sure the redirect URI sent in the "
                "request matches one added to your application in the Azure portal.",
            )
        )
    # From here on the redirect URI is the client's own: errors go back to it.
    response_mode = params.get("response_mode") or "query"
    state = params.get("state") or None
    base = {"tenant": tenant.lower(), "client_id": client_id.lower(), "redirect_uri": redirect_uri}
    try:
        if response_mode not in RESPONSE_MODES:
            response_mode = "query"
            raise _error(
                400,
                "invalid_request",
                90010,
                f"The response_mode '{params['response_mode']}' is not supported.",
            )
        response_type = params.get("response_type", "")
        if not response_type:
            raise _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            )
        if response_type != "code":
            raise _error(
                400,
                "unsupported_response_type",
                700054,
                f"response_type '{response_type}' is not enabled for the application.",
            )
        scope = params.get("scope", "")
        if not scope:
            raise _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        api_id_uri, scopes, openid_scopes = _scopes(store, scope, base["tenant"])
        if params.get("prompt") == "none":
            # The emulator keeps no sign-in session: a silent request always needs the page.
            raise _error(
                400,
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            )
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or ("plain" if challenge else "S256")
        if method not in CHALLENGE_METHODS:
            raise _error(
                400,
                "invalid_request",
                9002313,
                f"Invalid request. The code_challenge_method '{method}' is not valid.",
            )
        if challenge is not None and not 43 <= len(challenge) <= 128:
            raise _error(400, "invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
    except EntraError as error:
        raise ClientError(error) from None
    return SignInRequest(
        **base,
        client_name=str(client.get("displayName") or client_id),
        response_mode=response_mode,
        state=state,
        nonce=params.get("nonce") or None,
        scope=scope,
        api_id_uri=api_id_uri,
        scopes=scopes,
        openid_scopes=openid_scopes,
        code_challenge=challenge,
        code_challenge_method=method,
        login_hint=params.get("login_hint", "").lower(),
    )


def _scopes(store: Store, scope: str, tenant: str) -> tuple[str, list[str], list[str]]:
    """The resource the access token is for, the scopes on it and the OpenID Connect scopes.
    A scope without a resource (`User.Read`) is Microsoft Graph's, as on Entra; with none but
    OpenID Connect's, the access token is Graph's too."""
    names = scope.split()
    openid_scopes = [name for name in names if name in OPENID_SCOPES]
    qualified = [
        name if "/" in name else f"{GRAPH_APP_ID_URI}/{name}" for name in names if name not in OPENID_SCOPES
    ]
    if not qualified:
        return GRAPH_APP_ID_URI, [], openid_scopes
    api, scopes = _resource(store, " ".join(qualified), "authorization_code", tenant)
    return str(api["appIdUri"]), scopes, openid_scopes


def _client_response(request: SignInRequest, answer: dict[str, str]) -> Response:
    """Send the browser back to the client with `answer` (a code or an error) and the state."""
    if request.state is not None:
        answer = {**answer, "state": request.state}
    if request.response_mode == "form_post":
        return HTMLResponse(form_post_page(request.redirect_uri, answer))
    separator = "#" if request.response_mode == "fragment" else ("&" if "?" in request.redirect_uri else "?")
    return RedirectResponse(f"{request.redirect_uri}{separator}{urlencode(answer)}", status_code=302)


def _error_answer(error: EntraError) -> dict[str, str]:
    timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return {
        "error": error.error,
        "error_description": f"AADSTS{error.code}: {error.description} Timestamp: {timestamp}",
        "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
    }


async def authorize_page(request: Request) -> Response:
    store = _store(request)
    async with store.lock:
        try:
            sign_in = sign_in_request(store, request.path_params["tenant"], _parameters(request.query_params))
        except PageError as refused:
            return _error_page(refused.error)
        except ClientError as refused:
            return _client_response(
                _partial(request.query_params, request.path_params["tenant"]), _error_answer(refused.error)
            )
        people = _people(store)
    return HTMLResponse(sign_in_page(_page_form(sign_in), people, selected=sign_in.login_hint, error=None))


async def authorize_submit(request: Request) -> Response:
    store = _store(request)
    # The token endpoint's own reading of a form body (no multipart parser in the emulator).
    form = _form(await request.body())
    params = _parameters(form)
    async with store.lock:
        try:
            sign_in = sign_in_request(store, request.path_params["tenant"], params)
        except PageError as refused:
            return _error_page(refused.error)
        except ClientError as refused:
            return _client_response(
                _partial(form, request.path_params["tenant"]), _error_answer(refused.error)
            )
        if "cancel" in form:
            declined = _error(400, "access_denied", 65004, "User declined to consent to access the app.")
            return _client_response(sign_in, _error_answer(declined))
        username = params.get("username", "").lower()
        problem = _sign_in_problem(store, username, params.get("password", ""))
        if problem is not None:
            return HTMLResponse(
                sign_in_page(_page_form(sign_in), _people(store), selected=username, error=problem),
                status_code=200,
            )
        code = authorization_code_issue(
            request,
            AuthorizationCode(
                tenant=sign_in.tenant,
                client_id=sign_in.client_id,
                redirect_uri=sign_in.redirect_uri,
                username=username,
                api_id_uri=sign_in.api_id_uri,
                scopes=sign_in.scopes,
                openid_scopes=sign_in.openid_scopes,
                nonce=sign_in.nonce,
                code_challenge=sign_in.code_challenge,
                code_challenge_method=sign_in.code_challenge_method,
                issued_at=time.time(),
            ),
        )
    return _client_response(sign_in, {"code": code})


def _sign_in_problem(store: Store, username: str, password: str) -> str | None:
    """What the page says when the person cannot sign in (Entra's words); None when they can."""
    if not username:
        return "Choose who signs in."
    user = find_user(store, username)
    if user is None:
        return "This username may be incorrect. Make sure you typed it correctly."
    if not password or not secrets.compare_digest(password.encode(), str(user["password"]).encode()):
        return "Your account or password is incorrect."
    if not user.get("accountEnabled", True):
        return "Your account has been locked. Contact your support person to unlock it, then try again."
    return None


def _partial(params: Any, tenant: str) -> SignInRequest:
    """Enough of a request whose client and redirect URI checked out to send an error back."""
    mode = str(params.get("response_mode") or "query")
    return SignInRequest(
        tenant=tenant,
        client_id=str(params.get("client_id", "")),
        client_name="",
        redirect_uri=str(params.get("redirect_uri", "")),
        response_mode=mode if mode in RESPONSE_MODES else "query",
        state=str(params["state"]) if params.get("state") else None,
        nonce=None,
        scope="",
        api_id_uri="",
        scopes=[],
        openid_scopes=[],
        code_challenge=None,
        code_challenge_method="S256",
        login_hint="",
    )


def _page_form(sign_in: SignInRequest) -> SignInForm:
    return SignInForm(
        tenant=sign_in.tenant, client_name=sign_in.client_name, hidden_fields=sign_in.hidden_fields()
    )


def _error_page(error: EntraError) -> HTMLResponse:
    return HTMLResponse(
        error_page(code=error.code, error=error.error, description=error.description), error.status
    )


def _people(store: Store) -> list[tuple[str, dict[str, Any]]]:
    users: dict[str, dict[str, Any]] = registry(store)["users"]
    return sorted(users.items(), key=lambda item: str(item[1].get("name") or item[0]))


routes = [
    Route("/{tenant}/oauth2/v2.0/authorize", authorize_page, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/authorize", authorize_submit, methods=["POST"]),
]
