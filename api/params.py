"""What every operation reads the same way: the caller, and the path parameters that name things."""

from typing import Annotated

from django.http import HttpRequest
from ninja import Path

from api.auth import ApiCaller
from org.models import User

# A slug as Django's SlugField keeps it: anything else names nothing, and never reaches the
# database (PostgreSQL refuses a NUL in a string with an error, not a miss).
Slug = Annotated[str, Path(..., pattern=r"^[-a-zA-Z0-9_]+$", max_length=60)]

# Ids are positive and fit the database's bigint.
Id = Annotated[int, Path(..., ge=1, le=2**63 - 1)]


def caller_of(request: HttpRequest) -> ApiCaller:
    caller: ApiCaller = request.auth  # type: ignore[attr-defined]
    return caller


def user_of(request: HttpRequest) -> User:
    return caller_of(request).user
