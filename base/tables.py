"""Sortable, filterable, paged tables: the helpers every list page shares."""

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.expressions import OrderBy
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def lifecycle_order(states: list[str], field: str = "state") -> Case:
    """Sort by state in the order a thing lives through them (the choices' order), not A to Z."""
    return Case(
        *(When(**{field: state}, then=Value(position)) for position, state in enumerate(states)),
        output_field=IntegerField(),
    )


def query_with(params: QueryDict, **changes: str | None) -> str:
    """The current query string with some parameters changed (None removes one)."""
    query = params.copy()
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


@dataclass(frozen=True)
class SortOrder:
    """A table's sort as its `sort` parameter gives it: a column key, "-" for descending.

    `columns` maps each key to the fields it orders by, the first being the column's own and the
    rest tie-breakers (always ascending).
    """

    columns: dict[str, tuple[Any, ...]]
    key: str
    descending: bool = False

    @classmethod
    def parse(cls, value: str | None, columns: dict[str, tuple[Any, ...]], default: str) -> "SortOrder":
        value = value or default
        key = value.removeprefix("-")
        if key not in columns:
            key, value = default.removeprefix("-"), default
        return cls(columns, key, value.startswith("-"))

    def __str__(self) -> str:
        return f"-{self.key}" if self.descending else self.key

    def ordering(self) -> list[OrderBy]:
        primary, *tie_breakers = (
            F(field) if isinstance(field, str) else field for field in self.columns[self.key]
        )
        return [
            primary.desc() if self.descending else primary.asc(),
            *(field.asc() for field in tie_breakers),
        ]

    def column(self, key: str, params: QueryDict) -> dict[str, str]:
        """A column header's link (a second click reverses it) and its aria-sort value."""
        if key != self.key:
            return {"url": query_with(params, sort=key, page=None), "direction": ""}
        reversed_sort = SortOrder(self.columns, key, not self.descending)
        return {
            "url": query_with(params, sort=str(reversed_sort), page=None),
            "direction": "descending" if self.descending else "ascending",
        }

    def headers(self, params: QueryDict) -> dict[str, dict[str, str]]:
        return {key: self.column(key, params) for key in self.columns}


def is_htmx_for(request: HttpRequest, target: str) -> bool:
    """An htmx request that swaps the element `target` (not a history restore of the page)."""
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request and htmx.target == target


def render_page_or_fragment(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    target: str,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or, when htmx asks to swap the element `target`, only the template's
    partial of that name (`partial` when it is named otherwise), with `fragment` set so the
    partial can add out-of-band swaps."""
    if is_htmx_for(request, target):
        template = f"{template}#{partial or target}"
        context = {**context, "fragment": True}
    response = render(request, template, context, status=status)
    # The fragment and the full page share a URL: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response
