"""What every request to a search service's endpoint does first: find the service (its endpoint
is `{emulator}/search/{service}/`, standing for https://{service}.search.windows.net/), require an
api-version Azure knows, answer as an injected fault says, and authenticate the caller."""

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from provisioning.emulator.arm.operations import settle
from provisioning.emulator.errors import AzureError
from provisioning.emulator.search.access import Need, authenticate
from provisioning.emulator.search.errors import bad_request, index_not_found, resource_not_found
from provisioning.emulator.search.store import Index, SearchData
from provisioning.emulator.state import Store

# The GA versions of the data plane; azure-search-documents 12.0 sends 2026-04-01 by default.
API_VERSIONS = {"2020-06-30", "2023-11-01", "2024-07-01", "2025-09-01", "2026-04-01"}
SEARCH_FAULT_KINDS = {"429", "500", "503"}


@dataclass(frozen=True)
class Call:
    store: Store
    service: dict[str, Any]
    api_version: str

    @property
    def name(self) -> str:
        return str(self.service["name"])

    @property
    def data(self) -> SearchData:
        return self.store.search

    def index(self, name: str) -> Index:
        index = self.data.index(self.name, name)
        if index is None:
            raise index_not_found(name, self.name)
        return index


async def enter(request: Request, need: Need, *, index: str = "") -> Call:
    store: Store = request.app.state.store
    service = store.search_service_by_name(request.path_params["service"])
    if service is None or service["properties"].get("provisioningState") != "succeeded":
        async with store.lock:
            settle(store)
        service = store.search_service_by_name(request.path_params["service"])
    if service is None:
        raise resource_not_found()
    if service["properties"].get("provisioningState") != "succeeded":
        raise AzureError(
            503,
            "ServiceUnavailable",
            "The search service is still being provisioned.",
            headers={"Retry-After": "1"},
        )
    api_version = request.query_params.get("api-version")
    if api_version not in API_VERSIONS:
        raise bad_request(
            "The api-version query parameter (?api-version=) is required for all requests."
            if not api_version
            else f"Invalid or unsupported api-version '{api_version}'. Supported GA versions: {', '.join(sorted(API_VERSIONS))}."
        )
    authenticate(request, store, service, need, index=index)
    fault = store.take_fault("search", SEARCH_FAULT_KINDS)
    if fault is not None:
        raise AzureError(
            int(fault.kind),
            "ServiceUnavailable" if fault.kind != "500" else "InternalServerError",
            "The service is too busy to process the request; retry later."
            if fault.kind != "500"
            else "An internal error occurred; retry the request.",
            headers={"Retry-After": str(fault.retry_after_seconds)},
        )
    return Call(store, service, api_version)
