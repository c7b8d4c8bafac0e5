"""Azure's errors, sorted: "try the same step again later" or "tell the lead, in their words".

Every SDK call a step makes goes through `azure_call`. A throttled or failing Azure (429, 5xx,
an operation already under way, no connection) is a `TransientAzureError` that the Celery task
retries with backoff; anything else is a `PermanentAzureError` whose message a department lead
reads on their request, so it says what to change rather than what Azure's code was.
"""

import re
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from provisioning.catalog import region_label
from provisioning.models import ModelDeployment


class TransientAzureError(Exception):
    """Azure was busy or unreachable: try the same step again later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentAzureError(Exception):
    """Azure refused for a reason that retrying cannot fix; the message is for a lead to read.

    `created_nothing`: the refusal came before the run asked Azure to create anything.
    """

    def __init__(self, message: str, *, code: str = "", created_nothing: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.created_nothing = created_nothing


def azure_call(deployment: ModelDeployment | None, action: str, call: Callable[[], Any]) -> Any:
    """Run one SDK call, sorting Azure's errors into "try again later" and "tell the lead" (in
    the words of the deployment's lead when the call is for one). `ResourceNotFoundError`
    passes through: to a step that asks what exists, "not found" is an answer."""
    try:
        return call()
    except ResourceNotFoundError:
        raise
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientAzureError(f"Azure could not be reached to {action}: {error}") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        code = error.error.code if error.error else ""
        if status == 429 or status >= 500 or code in {"Conflict", "AnotherOperationInProgress"}:
            raise TransientAzureError(
                f"Azure was busy ({status} {code}) when asked to {action}; retrying.",
                retry_after=_retry_after(error),
            ) from error
        raise PermanentAzureError(
            explain(deployment, action, status, code or "", _message(error)), code=code or ""
        ) from error


def _retry_after(error: HttpResponseError) -> float | None:
    headers: Any = getattr(error.response, "headers", None) or {}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if headers.get(name):
            try:
                return float(headers[name]) / 1000
            except ValueError:
                pass
    try:
        return float(headers["retry-after"]) if headers.get("retry-after") else None
    except ValueError:
        return None


def _message(error: HttpResponseError) -> str:
    return (error.error.message if error.error and error.error.message else error.message) or str(error)


def explain(deployment: ModelDeployment | None, action: str, status: int, code: str, message: str) -> str:
    """Azure's refusal, said so that a department lead understands what to change."""
    if deployment is None:
        return f"Azure refused to {action} ({code or status}): {message}"
    where = region_label(deployment.region)
    unit = "PTU" if deployment.is_provisioned_sku else "K TPM"
    if code == "InsufficientQuota":
        available = re.search(r"current available capacity (\d+(?:\.\d+)?)", message)
        left = f"{float(available.group(1)):g}{unit}" if available else "not enough"
        return (
            f"{where} has {left} of {deployment.model_name} ({deployment.sku}) left in this subscription; "
            f"you asked for {deployment.capacity}{unit}. "
            "Ask for less, pick another region, or ask the platform team for more quota."
        )
    if code in {"DeploymentModelNotSupported", "InvalidResourceProperties", "InvalidCapacity"}:
        what = f"{deployment.model_name} {deployment.model_version}"
        what += f" ({deployment.sku}, {deployment.capacity_label})"
        return f"{what} cannot be deployed in {where}: {message}"
    if status in {401, 403} or code in {
        "AuthorizationFailed",
        "AuthenticationFailed",
        "LinkedAuthorizationFailed",
    }:
        zone = deployment.landing_zone
        return (
            f"Switchyard's identity may not {action} in subscription {zone.subscription_id} "
            f"(resource group {zone.resource_group}). Ask the platform team to grant it access there. "
            f"Azure said: {message}"
        )
    return f"Azure refused to {action} ({code or status}): {message}"
