"""What every ARM request does first: authenticate, settle the operations that are due, hang or
fail as an injected fault says; and read the JSON body as ARM does."""

from typing import Any

from starlette.requests import Request

from provisioning.emulator.arm.operations import settle
from provisioning.emulator.arm.resources import store_of
from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.errors import AzureError
from provisioning.emulator.hang import until_caller_leaves
from provisioning.emulator.state import Store


async def enter(request: Request, operation: str) -> Store:
    require_arm_caller(request)
    store = store_of(request)
    async with store.lock:
        settle(store)
    if store.take_fault(operation, {"hang"}) is not None:
        if await until_caller_leaves(request.receive):
            raise AzureError(499, "ClientClosedRequest", "The caller went away.")
        raise AzureError(
            504,
            "GatewayTimeout",
            "The gateway did not receive a response from the service within the timeout.",
        )
    _raise_injected_fault(store, operation)
    return store


def _raise_injected_fault(store: Store, operation: str) -> None:
    """Answer as an injected fault would, if one applies to this request."""
    fault = store.take_fault(operation, {"429", "500", "503"})
    if fault is None:
        return
    if fault.kind == "429":
        raise AzureError(
            429,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00. For more information, see - https://aka.ms/srpthrottlinglimits",
            headers={"Retry-After": str(fault.retry_after_seconds)},
        )
    if fault.kind == "500":
        raise AzureError(
            500, "InternalServerError", "An internal server error occurred. Please retry the request."
        )
    raise AzureError(
        503,
        "ServiceUnavailable",
        "The service is temporarily unavailable. Please retry the request.",
        headers={"Retry-After": "1"},
    )


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise AzureError(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        ) from None
    if not isinstance(body, dict):
        raise AzureError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body
