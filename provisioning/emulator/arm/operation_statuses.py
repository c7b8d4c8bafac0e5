"""The status resource of a long-running operation, which the SDKs' pollers read."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter
from provisioning.emulator.arm.operations import retry_after
from provisioning.emulator.arm.resources import PROVIDER, iso
from provisioning.emulator.errors import not_found
from provisioning.emulator.state import now


async def operation_status(request: Request) -> Response:
    store = await enter(request, "accounts.get")
    operation_id = request.path_params["operation"]
    operation = store.world.operations.get(operation_id)
    if operation is None:
        raise not_found(f"{PROVIDER}/locations/operationStatuses", operation_id)
    body: dict[str, Any] = {
        "id": str(request.url.path),
        "name": operation_id,
        "status": operation["status"],
        "startTime": iso(operation["startTime"]),
    }
    headers: dict[str, str] = {}
    if operation["status"] == "InProgress":
        headers = retry_after(max(operation["readyAt"] - now(), 0.05))
    else:
        body["endTime"] = iso(operation["endTime"])
    if operation["status"] == "Failed":
        body["error"] = {
            "code": "ProvisioningFailed",
            "message": f"The {operation['kind'].replace('.', ' ')} operation failed in the region. Please retry; if it keeps failing, contact Azure support.",
        }
    return JSONResponse(body, headers=headers)
