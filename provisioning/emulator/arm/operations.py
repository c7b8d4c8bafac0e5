"""Long-running operations: a PUT or DELETE answers 201/202 with an `Azure-AsyncOperation` status
resource, and its outcome is applied lazily: every request first settles the operations whose
time has come, so there are no timers to lose on a restart."""

import math
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.resources import PROVIDER, base_url, deleted_account_resource_id, iso
from provisioning.emulator.state import Store, World, now


def start_operation(
    request: Request,
    store: Store,
    *,
    kind: str,
    target: str,
    location: str,
    subscription: str,
    fault_operation: str,
    status_code: int,
    body: dict[str, Any] | None,
) -> Response:
    """Record a long-running operation and answer as Azure does: status + Azure-AsyncOperation."""
    operation_id, delay = record_operation(store, kind=kind, target=target, fault_operation=fault_operation)
    status_url = (
        f"{base_url(request)}/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}"
        f"/operationStatuses/{operation_id}?api-version=2025-09-01"
    )
    headers = {"Azure-AsyncOperation": status_url, **retry_after(delay)}
    if status_code == 202:
        headers["Location"] = status_url
    store.save()
    return (
        JSONResponse(body, status_code=status_code, headers=headers)
        if body is not None
        else Response(status_code=status_code, headers=headers)
    )


def record_operation(store: Store, *, kind: str, target: str, fault_operation: str) -> tuple[str, float]:
    """A long-running operation that `settle` will apply once its time has come: (its id, the
    seconds until then). An injected `lro_failure` fault makes it fail."""
    delay = float(store.world.settings["lro_delay_seconds"])
    failed = store.take_fault(fault_operation, {"lro_failure"}) is not None
    operation_id = str(uuid.uuid4())
    store.world.operations[operation_id] = {
        "kind": kind,
        "target": target,
        "startTime": now(),
        "readyAt": now() + delay,
        "fails": failed,
        "status": "InProgress",
    }
    return operation_id, delay


def retry_after(seconds: float) -> dict[str, str]:
    # Retry-After is whole seconds; sub-second waits go in retry-after-ms, which azure-core reads
    # when Retry-After is absent.
    if seconds >= 1:
        return {"Retry-After": str(math.ceil(seconds))}
    return {"retry-after-ms": str(max(int(seconds * 1000), 50))}


def settle(store: Store) -> None:
    """Apply the outcome of every long-running operation whose time has come."""
    changed = False
    for operation in store.world.operations.values():
        if operation["status"] != "InProgress" or operation["readyAt"] > now():
            continue
        operation["status"] = "Failed" if operation["fails"] else "Succeeded"
        operation["endTime"] = now()
        apply = OUTCOMES.get(operation["kind"])
        if apply is not None:
            apply(store.world, operation["target"], operation["fails"])
        changed = True
    if changed:
        store.save()


def _account_created(world: World, target: str, failed: bool) -> None:
    account = world.accounts.get(target)
    if account is not None:
        account["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"


def _account_deleted(world: World, target: str, failed: bool) -> None:
    if failed:
        account = world.accounts.get(target)
        if account is not None:
            account["properties"]["provisioningState"] = "Failed"
        return
    account = world.accounts.pop(target, None)
    if account is not None:
        # Azure soft-deletes: the account keeps its name, subdomain and quota until purged.
        deleted_id = deleted_account_resource_id(account)
        world.deleted_accounts[deleted_id.lower()] = {
            "account": account,
            "deployments": world.deployments.pop(target, {}),
            "deletionDate": iso(now()),
            "scheduledPurgeDate": iso(now() + 48 * 3600),
        }
        world.rai_policies.pop(target, None)


def _deployment_created(world: World, target: str, failed: bool) -> None:
    account_id, _, name = target.rpartition("|")
    deployment = world.deployments.get(account_id, {}).get(name)
    if deployment is not None:
        deployment["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"


def _deployment_deleted(world: World, target: str, failed: bool) -> None:
    account_id, _, name = target.rpartition("|")
    if failed:
        deployment = world.deployments.get(account_id, {}).get(name)
        if deployment is not None:
            deployment["properties"]["provisioningState"] = "Failed"
        return
    world.deployments.get(account_id, {}).pop(name, None)


def _account_purged(world: World, target: str, failed: bool) -> None:
    if not failed:
        world.deleted_accounts.pop(target, None)


def _search_service_created(world: World, target: str, failed: bool) -> None:
    service = world.search_services.get(target)
    if service is not None:
        service["properties"]["provisioningState"] = "failed" if failed else "succeeded"
        service["properties"]["status"] = "error" if failed else "running"
        if failed:
            service["properties"]["statusDetails"] = (
                "The service could not be provisioned in the region; retry."
            )


# What a finished operation of each kind does to the world; its target is the key it acts on.
OUTCOMES: dict[str, Callable[[World, str, bool], None]] = {
    "account.create": _account_created,
    "account.delete": _account_deleted,
    "deployment.create": _deployment_created,
    "deployment.delete": _deployment_deleted,
    "account.purge": _account_purged,
    "searchService.create": _search_service_created,
}
