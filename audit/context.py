"""Where the action being audited comes from: the request's id and the caller's IP address, set
once per request (or task) and written on every event made meanwhile (`audit.services`)."""

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    request_id: str = ""
    source_ip: str | None = None


NOWHERE = Origin()
_origin: ContextVar[Origin | None] = ContextVar("audit_origin", default=None)


def current_origin() -> Origin:
    return _origin.get() or NOWHERE


@contextlib.contextmanager
def origin(request_id: str = "", source_ip: str | None = None) -> Iterator[Origin]:
    """Events written inside the block carry this request id and source IP."""
    value = Origin(request_id=request_id[:64], source_ip=source_ip or None)
    token = _origin.set(value)
    try:
        yield value
    finally:
        _origin.reset(token)


# A request id a client or a proxy in front may hand us; anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_or_new(given: str) -> str:
    """The id the caller (or a proxy in front) gave the request, if it is a plain token; a new
    one otherwise: a header is the caller's to write, and it ends up in logs, exports and Azure's
    `x-ms-client-request-id`."""
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
