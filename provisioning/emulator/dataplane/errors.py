"""Refusals, written as the Azure OpenAI service writes them: the body is the data plane's,
which is not always ARM's {code, message}."""

from typing import Any

from starlette.responses import JSONResponse

from provisioning.emulator.errors import AzureError

CHAT_DATA_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"


class DataPlaneError(AzureError):
    """A refused call. Its body is the data plane's, which is not always ARM's {code, message}."""

    def __init__(self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, str(error.get("code")), str(error.get("message")), headers=headers)
        self.error = error

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status, headers=self.headers)


def resource_not_found() -> DataPlaneError:
    return DataPlaneError(404, {"code": "404", "message": "Resource not found"})


def deployment_not_found() -> DataPlaneError:
    return DataPlaneError(
        404,
        {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        },
    )


def invalid_token() -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "401",
            "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
            "(https://cognitiveservices.azure.com), or have expired.",
        },
    )


def invalid_key() -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "401",
            "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API endpoint for "
            "your resource.",
        },
    )


def keys_disabled() -> DataPlaneError:
    return DataPlaneError(
        403,
        {
            "code": "AuthenticationTypeDisabled",
            "message": "Key based authentication is disabled for this resource.",
        },
    )


def permission_denied(principal_id: str, operation: str) -> DataPlaneError:
    return DataPlaneError(
        401,
        {
            "code": "PermissionDenied",
            "message": f"The principal `{principal_id}` lacks the required data action `{CHAT_DATA_ACTION}` "
            f"to perform `POST {operation}` operation.",
        },
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> DataPlaneError:
    return DataPlaneError(
        400, {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    )


def operation_not_supported(model: str) -> DataPlaneError:
    return DataPlaneError(
        400,
        {
            "code": "OperationNotSupported",
            "message": f"The chatCompletion operation does not work with the specified model, {model}. Please "
            "choose different model and try again. You can learn more about which models can be used with "
            "each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.",
        },
    )


def rate_limited(
    *, kind: str, retry_after: int, api_version: str, tier: str, headers: dict[str, str]
) -> DataPlaneError:
    return DataPlaneError(
        429,
        {
            "code": "429",
            "message": f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{api_version} have exceeded {kind} rate limit of your current {tier} pricing tier. Please retry "
            f"after {retry_after} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like "
            "to further increase the default rate limit.",
        },
        headers={**headers, "retry-after": str(retry_after), "retry-after-ms": str(retry_after * 1000)},
    )


def server_error(request_id: str, headers: dict[str, str]) -> DataPlaneError:
    return DataPlaneError(
        500,
        {
            "message": "The server had an error processing your request. Sorry about that! You can retry your "
            "request, or contact us through an Azure support request at: "
            "https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error. (Please include "
            f"the request ID {request_id} in your email.)",
            "type": "server_error",
            "param": None,
            "code": None,
        },
        headers=headers,
    )


def service_unavailable(headers: dict[str, str]) -> DataPlaneError:
    return DataPlaneError(
        503,
        {
            "code": "ServiceUnavailable",
            "message": "The service is temporarily unable to process your request. Please try again later.",
        },
        headers=headers,
    )


def timed_out() -> DataPlaneError:
    return DataPlaneError(408, {"code": "Timeout", "message": "The operation was timeout."})
