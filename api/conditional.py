"""Optimistic concurrency: a thing that can be changed is read with an `ETag`, and a change sent
with `If-Match` is made only if the thing is still as it was read (RFC 9110 section 13.1.1);
otherwise a 412 that says to read it again. A change without `If-Match` is made as sent, as on
the pages.

The tag is a hash of the representation the API answers with, so any change to what a client can
see, made on a page, by a task or through the API, makes an earlier tag stale."""

import hashlib

from django.http import HttpRequest, HttpResponse
from ninja import Schema

from api.problems import TYPE_BASE, Problem

PRECONDITION_FAILED = TYPE_BASE + "stale"


def etag_of(representation: Schema) -> str:
    digest = hashlib.sha256(representation.model_dump_json().encode()).hexdigest()[:32]
    return f'"{digest}"'


def tagged(response: HttpResponse, representation: Schema) -> Schema:
    """Set the ETag of `representation` on the answer (ninja's temporal response) and return it."""
    response["ETag"] = etag_of(representation)
    return representation


def require_match(request: HttpRequest, current: Schema) -> None:
    """Refuse the change with a 412 if `If-Match` names another version than `current`."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if "*" in tags or etag_of(current) in tags:
        return
    raise Problem(
        412,
        "It changed since you read it: `If-Match` names an older version. Read it again (GET), check, "
        "and send the change with the new ETag.",
        type=PRECONDITION_FAILED,
        title="Changed meanwhile",
        headers={"ETag": etag_of(current)},
    )
