"""Cursor pagination: a list is read in a stable order, and each page ends with an opaque cursor
that says where the next one starts (keyset pagination, so rows added or removed meanwhile never
shift a page, and a deep page costs what the first does).

The order is one field, ascending or descending (`-created_at`), with the primary key after it
in the same direction so that equal values keep a fixed order. The field must not be nullable.

The cursor is signed (django.core.signing, under the project's secret key) and names the list and
the order it belongs to, so a client can neither forge a position nor carry a cursor over to
another list or another sort.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.core import signing
from django.db.models import Model, Q, QuerySet
from ninja import Field, Schema

from api.problems import BAD_CURSOR, Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SALT = "api.pagination.cursor"

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(Schema):
    cursor: str | None = Field(
        None, min_length=1, max_length=1000, description="`next_cursor` of the previous page."
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


@dataclass(frozen=True)
class Slice(Generic[M]):
    rows: list[M]
    next_cursor: str | None


def page_of(queryset: QuerySet[M], *, order: str, list_name: str, cursor: str | None, limit: int) -> Slice[M]:
    """One page of `queryset` in `order` (a field name, `-` in front for descending), after `cursor`."""
    descending = order.startswith("-")
    field = order.lstrip("-")
    keys = [field] if field == "pk" else [field, "pk"]
    ordered = queryset.order_by(*[f"-{key}" if descending else key for key in keys])
    if cursor:
        ordered = ordered.filter(_after(keys, _position(cursor, list_name, order), descending))
    rows = list(ordered[: limit + 1])
    if len(rows) <= limit:
        return Slice(rows=rows, next_cursor=None)
    rows = rows[:limit]
    last = [_plain(getattr(rows[-1], key)) for key in keys]
    payload = {"list": list_name, "order": order, "after": last}
    return Slice(rows=rows, next_cursor=signing.dumps(payload, salt=SALT))


def _after(keys: list[str], values: list[Any], descending: bool) -> Q:
    """Rows that come after `values` in the order of `keys`: (a, b) > (x, y) spelt for the ORM."""
    beyond = "lt" if descending else "gt"
    condition = Q(**{f"{keys[-1]}__{beyond}": values[-1]})
    for key, value in zip(reversed(keys[:-1]), reversed(values[:-1]), strict=True):
        condition = Q(**{f"{key}__{beyond}": value}) | (Q(**{key: value}) & condition)
    return condition


def _plain(value: Any) -> Any:
    """A key's value as JSON keeps it; the ORM reads the ISO and decimal strings back."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _position(cursor: str, list_name: str, order: str) -> list[Any]:
    try:
        value = signing.loads(cursor, salt=SALT)
    except signing.BadSignature:
        value = None
    if (
        not isinstance(value, dict)
        or value.get("list") != list_name
        or value.get("order") != order
        or not isinstance(value.get("after"), list)
    ):
        raise Problem(
            400,
            "The cursor is not one this list gave out in this order: pass `next_cursor` from the previous "
            "page unchanged, with the same filters and sort, or leave it out for the first page.",
            type=BAD_CURSOR,
            title="Invalid cursor",
            errors={"cursor": ["Not a cursor of this list."]},
        )
    after: list[Any] = value["after"]
    return after
