"""Errors as Azure writes them: `{"error": {"code", "message"}}` with the matching status."""

from typing import Any

from starlette.responses import JSONResponse


class AzureError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in the batch process (batches) and raised again here: pickled with its attributes,
        # which its class's arguments do not all carry.
        return (_rebuilt, (type(self), self.message, self.__dict__))

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message, **self.extra}},
            status_code=self.status,
            headers={"x-ms-error-code": self.code, **self.headers},
        )


def _rebuilt(kind: type[AzureError], message: str, attributes: dict[str, Any]) -> AzureError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


def not_found(kind: str, name: str) -> AzureError:
    return AzureError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group was not found. For more details please go "
        "to https://aka.ms/ARMResourceNotFoundFix",
    )
