"""The one place Switchyard builds Azure clients.

`AZURE_MODE=azure`: DefaultAzureCredential (managed identity / workload identity) against
https://management.azure.com and the accounts' real endpoints. `AZURE_MODE=emulator`: the local
emulator's URL and a credential that issues unsigned tokens naming the portal's principal, as
the emulator expects. Nothing else differs: the same official SDK clients run in both modes.
"""

import base64
import json
import time
import uuid
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy, BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
from azure.mgmt.costmanagement import CostManagementClient
from azure.mgmt.search import SearchManagementClient
from azure.search.documents import SearchClient
from azure.search.documents.aio import SearchClient as AsyncSearchClient
from azure.search.documents.indexes import SearchIndexClient
from django.conf import settings
from django.core import checks

from audit.context import current_origin

ARM_SCOPE = "https://management.azure.com/.default"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
SEARCH_SCOPE = "https://search.azure.com/.default"
# The data plane's REST version, as the pinned azure-search-documents sends it.
SEARCH_API_VERSION = "2026-04-01"
# Long-running operations: Azure answers Retry-After; this is only the fallback between polls.
POLLING_INTERVAL_SECONDS = 2
ARM_CONNECT_TIMEOUT_SECONDS = 10
ARM_READ_TIMEOUT_SECONDS = 60


class EmulatorCredential:
    """Issues unsigned JWTs whose `oid` is the portal's principal id (emulator mode only)."""

    def __init__(self, *, principal_id: str, tenant_id: str) -> None:
        self.principal_id = principal_id
        self.tenant_id = tenant_id

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        expires_on = int(time.time()) + 3600
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "oid": self.principal_id,
            "tid": self.tenant_id,
            "sub": self.principal_id,
            "exp": expires_on,
            "uti": uuid.uuid4().hex,
        }

        def encode(part: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

        token = f"{encode({'alg': 'none', 'typ': 'JWT'})}.{encode(claims)}."
        return AccessToken(token, expires_on)

    def close(self) -> None:
        pass


class LoopbackBearerTokenPolicy(ARMChallengeAuthenticationPolicy):
    """ARM bearer-token policy that allows http:// — for the emulator on loopback only.

    azure-core refuses to send a bearer token over plain http, and a constructor flag does not
    lift that; the per-request context flag that the policy itself reads does.
    """

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False
        super().on_request(request)


class LoopbackSearchBearerPolicy(BearerTokenCredentialPolicy[Any, Any]):
    """Azure AI Search's data-plane bearer policy, allowed over http:// for the emulator on
    loopback (as LoopbackBearerTokenPolicy for ARM)."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False
        super().on_request(request)


def is_emulator() -> bool:
    return bool(settings.AZURE_MODE == "emulator")


@checks.register(checks.Tags.security, deploy=True)
def check_emulator_in_production(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The emulator answers every call and provisions nothing: a production that runs on it
    looks healthy while no department gets a real deployment."""
    if not is_emulator():
        return []
    return [
        checks.Warning(
            "AZURE_MODE=emulator: Switchyard talks to the local emulator, not Azure.",
            hint="Set AZURE_MODE=azure in production (the emulator is for development and demos).",
            id="portal.W010",
        )
    ]


def credential() -> TokenCredential:
    if is_emulator():
        return EmulatorCredential(
            principal_id=settings.AZURE_PORTAL_PRINCIPAL_ID, tenant_id=settings.AZURE_TENANT_ID
        )
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


CLIENT_REQUEST_ID = "x-ms-client-request-id"


def name_the_origin(request: PipelineRequest[Any]) -> None:
    """azure-core's `raw_request_hook`, run on every ARM request after its own request id is set:
    the id of the request or Celery task under way (audit.context) replaces it, so Azure's logs
    and a support case name the same id as Switchyard's logs and audit trail."""
    request_id = current_origin().request_id
    if request_id:
        request.http_request.headers[CLIENT_REQUEST_ID] = request_id


def _arm_options(token_credential: TokenCredential, retries: int | None) -> dict[str, Any]:
    # azure-core waits up to 300 s for an answer by default; a worker should not.
    options: dict[str, Any] = {
        "polling_interval": POLLING_INTERVAL_SECONDS,
        "connection_timeout": ARM_CONNECT_TIMEOUT_SECONDS,
        "read_timeout": ARM_READ_TIMEOUT_SECONDS,
        "raw_request_hook": name_the_origin,
    }
    if retries is not None:
        options["retry_total"] = retries
    if is_emulator():
        options["base_url"] = settings.AZURE_EMULATOR_URL
        options["authentication_policy"] = LoopbackBearerTokenPolicy(token_credential, ARM_SCOPE)
    return options


def cognitive_services_client(
    subscription_id: str, *, retries: int | None = None
) -> CognitiveServicesManagementClient:
    """`retries=0` leaves retrying to the caller (a Celery task re-scheduling itself) instead of
    azure-core sleeping in the worker; None keeps azure-core's default policy."""
    token_credential = credential()
    return CognitiveServicesManagementClient(
        token_credential, subscription_id, **_arm_options(token_credential, retries)
    )


def authorization_client(
    subscription_id: str, *, retries: int | None = None
) -> AuthorizationManagementClient:
    token_credential = credential()
    return AuthorizationManagementClient(
        token_credential, subscription_id, **_arm_options(token_credential, retries)
    )


def cost_management_client(*, retries: int | None = None) -> CostManagementClient:
    """Cost Management's query API; its scope (subscription, resource group) goes with each call."""
    token_credential = credential()
    options = _arm_options(token_credential, retries)
    base_url = options.pop("base_url", None)
    return CostManagementClient(token_credential, base_url, **options)


def search_management_client(subscription_id: str, *, retries: int | None = None) -> SearchManagementClient:
    """Microsoft.Search/searchServices over ARM (azure-mgmt-search)."""
    token_credential = credential()
    return SearchManagementClient(
        token_credential, subscription_id, **_arm_options(token_credential, retries)
    )


def _search_options(token_credential: TokenCredential, retries: int | None = None) -> dict[str, Any]:
    # Keyless: the portal's identity holds the search roles on the service; no admin key is kept.
    options: dict[str, Any] = {"raw_request_hook": name_the_origin}
    if retries is not None:
        options["retry_total"] = retries
    if is_emulator():
        options["authentication_policy"] = LoopbackSearchBearerPolicy(token_credential, SEARCH_SCOPE)
    return options


def search_index_client(endpoint: str, *, retries: int | None = None) -> SearchIndexClient:
    """A search service's indexes (create, get, delete), with the portal's Entra ID token.
    `retries=0` leaves retrying to the caller (a Celery task re-scheduling itself)."""
    token_credential = credential()
    return SearchIndexClient(endpoint, token_credential, **_search_options(token_credential, retries))


def search_documents_request(index: str, operation: str, body: dict[str, Any]) -> HttpRequest:
    """A POST to one of an index's document operations (`search.post.search`, `search.index`), in
    the route and REST version the pinned SDK uses, for a search client's `send_request`: for the
    calls whose SDK shortcut turns every vector into and out of its models one number at a time."""
    return HttpRequest(
        "POST", f"/indexes('{index}')/docs/{operation}", params={"api-version": SEARCH_API_VERSION}, json=body
    )


def search_client(endpoint: str, index: str, *, retries: int | None = None) -> SearchClient:
    """One index's documents (upload, delete, search), with the portal's Entra ID token.
    `retries=0` leaves retrying to the caller (a Celery task re-scheduling itself)."""
    token_credential = credential()
    return SearchClient(endpoint, index, token_credential, **_search_options(token_credential, retries))


class AsyncLoopbackSearchBearerPolicy(AsyncBearerTokenCredentialPolicy[Any, Any]):
    """LoopbackSearchBearerPolicy for the async search client (emulator on loopback only)."""

    async def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False
        await super().on_request(request)


class AsyncEmulatorCredential:
    """EmulatorCredential for async clients: encoding its JWT never blocks the event loop."""

    def __init__(self, credential: EmulatorCredential) -> None:
        self.credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self.credential.get_token(*scopes, **kwargs)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> "AsyncEmulatorCredential":
        return self

    async def __aexit__(self, *args: object) -> None:
        pass


def async_search_client(endpoint: str, index: str) -> AsyncSearchClient:
    """One index's documents for code on an event loop (a grounded chat turn's retrieval), with
    the portal's Entra ID token through an async credential. Bound to the loop that uses it first."""
    options: dict[str, Any] = {"raw_request_hook": name_the_origin}
    token_credential: Any
    if is_emulator():
        emulator = EmulatorCredential(
            principal_id=settings.AZURE_PORTAL_PRINCIPAL_ID, tenant_id=settings.AZURE_TENANT_ID
        )
        token_credential = AsyncEmulatorCredential(emulator)
        options["authentication_policy"] = AsyncLoopbackSearchBearerPolicy(token_credential, SEARCH_SCOPE)
    else:
        from azure.identity.aio import DefaultAzureCredential

        token_credential = DefaultAzureCredential()
    return AsyncSearchClient(endpoint, index, token_credential, **options)


def data_plane_token_provider() -> Any:
    """A callable giving Entra ID tokens for Azure OpenAI's data plane (keyless access)."""
    from azure.identity import get_bearer_token_provider

    return get_bearer_token_provider(credential(), COGNITIVE_SERVICES_SCOPE)
