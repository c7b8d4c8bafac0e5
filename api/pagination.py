"""Cursor pagination: a list is read in a stable order by a unique key, and each page ends with an
opaque cursor that says where the next one starts (keyset pagination, so rows added or removed
meanwhile never shift a page, and a deep page costs what the first does).

The cursor is signed (django.core.signing, under the project's secret key) and names the list it
belongs to, so a client can neither forge a position nor carry a cursor over to another list.
"""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core import signing
from django.db.models import Model, QuerySet
from ninja import Schema

from api.problems import BAD_CURSOR, Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SALT = "api.pagination.cursor"

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Slice(Generic[M]):
    rows: list[M]
    next_cursor: str | None


def page_of(queryset: QuerySet[M], *, key: str, list_name: str, cursor: str | None, limit: int) -> Slice[M]:
    """One page of `queryset` in the order of its unique field `key`, starting after `cursor`."""
    ordered = queryset.order_by(key)
    if cursor:
        ordered = ordered.filter(**{f"{key}__gt": _position(cursor, list_name)})
    rows = list(ordered[: limit + 1])
    if len(rows) <= limit:
        return Slice(rows=rows, next_cursor=None)
    rows = rows[:limit]
    last: Any = getattr(rows[-1], key)
    return Slice(rows=rows, next_cursor=signing.dumps({"list": list_name, "after": last}, salt=SALT))


def _position(cursor: str, list_name: str) -> Any:
    try:
        value = signing.loads(cursor, salt=SALT)
    except signing.BadSignature:
        value = None
    if not isinstance(value, dict) or value.get("list") != list_name or "after" not in value:
        raise Problem(
            400,
            "The cursor is not one this list gave out: pass `next_cursor` from the previous page unchanged, "
            "or leave it out for the first page.",
            type=BAD_CURSOR,
            title="Invalid cursor",
            errors={"cursor": ["Not a cursor of this list."]},
        )
    return value["after"]
