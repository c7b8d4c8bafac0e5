"""The gateway's refusals, always in OpenAI's error shape, `{"error": {"message", "type", "param",
"code"}}`, with the status an OpenAI client expects: the application's SDK raises the matching
exception (`BadRequestError`, `AuthenticationError`, `NotFoundError`, `RateLimitError`...) with
the message, and retries only what is worth retrying."""

import json
from typing import Any

import openai

# The headers of every error: JSON, never cached.
JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class GatewayError(Exception):
    """A call the gateway answers itself, with an error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
        retry: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.retry = retry  # tells OpenAI's SDKs whether retrying may help (x-should-retry)
        self.extra = extra or {}

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        error.update(self.extra)
        return json.dumps({"error": error}).encode()

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = list(JSON_HEADERS)
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        if self.retry is not None:
            headers.append((b"x-should-retry", b"true" if self.retry else b"false"))
        return headers


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def deployment_not_found(name: str) -> GatewayError:
    # The same words whether the deployment exists or not: a caller learns nothing of deployments
    # it may not call.
    return GatewayError(
        404,
        f"The deployment '{name}' does not exist, or this caller may not use it. GET /openai/v1/models "
        "lists the deployments this caller may use.",
        code="DeploymentNotFound",
    )


def from_azure(error: openai.APIError, *, deployment_name: str) -> GatewayError:
    """Azure's refusal of a call, as the application should hear it: its own mistakes (400) with
    Azure's words, Azure's rate limit (after every fallback refused too) as 429 with Azure's wait,
    and Azure's failures (or Switchyard's own standing with Azure) as 502 or 503."""
    if isinstance(error, openai.APITimeoutError):
        return GatewayError(
            504, f"{deployment_name} did not answer in time.", type="server_error", code="timeout"
        )
    if isinstance(error, openai.APIConnectionError):
        return GatewayError(
            502, f"{deployment_name} could not be reached. Try again in a moment.", type="server_error"
        )
    if not isinstance(error, openai.APIStatusError):
        return GatewayError(502, f"{deployment_name} could not answer.", type="server_error")
    status = error.status_code
    azure = _azure_error(error)
    if status == 429:
        return GatewayError(
            429,
            str(azure.get("message") or f"{deployment_name} is busy (Azure's rate limit)."),
            type="rate_limit_exceeded",
            code=str(azure.get("code") or "429"),
            retry_after=_retry_after(error),
            retry=True,
        )
    if status in (400, 413, 415, 422):
        # The application's own mistake, in Azure's words (a content filter verdict included).
        extra = {
            key: value for key, value in azure.items() if key not in ("message", "type", "param", "code")
        }
        return GatewayError(
            status,
            str(azure.get("message") or "Azure OpenAI refused the request."),
            type=str(azure.get("type") or "invalid_request_error"),
            param=azure.get("param") if isinstance(azure.get("param"), str) else None,
            code=str(azure["code"]) if azure.get("code") is not None else None,
            extra=extra,
        )
    if status == 503:
        return GatewayError(
            503,
            f"{deployment_name} is unavailable at the moment (Azure answered 503). Try again shortly.",
            type="server_error",
            retry_after=_retry_after(error),
        )
    if status >= 500:
        return GatewayError(
            502, f"{deployment_name} failed to answer (Azure error {status}). Try again.", type="server_error"
        )
    # 401, 403, 404 from Azure are Switchyard's standing with Azure, not the application's.
    return GatewayError(
        502,
        f"Switchyard could not call {deployment_name} (Azure answered {status}). A platform admin has to "
        "look at the deployment.",
        type="server_error",
        retry=False,
    )


def _azure_error(error: openai.APIStatusError) -> dict[str, Any]:
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body)
    return inner if isinstance(inner, dict) else {}


def _retry_after(error: openai.APIStatusError) -> int | None:
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value:
            try:
                return max(1, int(-(-float(value) // scale)))
            except ValueError:
                continue
    return None
