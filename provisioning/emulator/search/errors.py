"""Refusals as Azure AI Search writes them: `{"error": {"code", "message"}}` with the status."""

from provisioning.emulator.errors import AzureError


def bad_request(message: str, *, code: str = "InvalidRequestParameter") -> AzureError:
    return AzureError(400, code, message)


def invalid_filter(message: str) -> AzureError:
    return AzureError(
        400,
        "InvalidRequestParameter",
        f"{message}\r\nParameter name: $filter",
        extra={"details": [{"code": "InvalidFilter", "message": message}]},
    )


def index_not_found(name: str, service: str) -> AzureError:
    return AzureError(
        404, "ResourceNotFound", f"No index with the name '{name}' was found in the service '{service}'."
    )


def document_not_found() -> AzureError:
    return AzureError(404, "ResourceNotFound", "Document not found.")


def resource_not_found() -> AzureError:
    return AzureError(404, "ResourceNotFound", "The resource you are looking for does not exist.")


def unauthenticated() -> AzureError:
    return AzureError(
        401,
        "Unauthorized",
        "Authentication is required: send an api-key header or an Entra ID bearer token.",
        headers={"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/"'},
    )


def forbidden(
    message: str = "Access denied: the api-key or token does not grant this operation.",
) -> AzureError:
    return AzureError(403, "Forbidden", message)
