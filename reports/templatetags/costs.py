"""How cost figures read on the pages: dollars with cents, thousands grouped, a dash for none.

A table's body is built here in one pass rather than cell by cell in the template: the overview
has a few thousand cells, and template tags per cell cost more than the figures behind them."""

from datetime import date
from decimal import Decimal
from typing import Any

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
DASH = "—"


@register.filter
def usd(value: Decimal | None) -> str:
    if value is None:
        return DASH
    return f"\u2212${-value:,.2f}" if value < 0 else f"${value:,.2f}"


@register.filter
def pct(value: Decimal | None) -> str:
    return DASH if value is None else f"{value:,.1f}%"


@register.filter
def signed_pct(value: Decimal | None) -> str:
    if value is None:
        return DASH
    sign = "+" if value > 0 else ("\u2212" if value < 0 else "±")
    return f"{sign}{abs(value):,.1f}%"


def _text(value: Any, kind: str) -> str:
    if value is None or value == "":
        return DASH
    if kind == "money":
        return usd(value)
    if kind == "number":
        return f"{value:,}"
    if kind == "percent":
        return pct(value)
    return str(value)


def _cell(row: dict[str, Any], column: Any, first: bool) -> str:
    value = row.get(column.key)
    if column.kind != "text":
        return f'<td class="num">{escape(_text(value, column.kind))}</td>'
    if isinstance(value, date):
        label = value.strftime("%a %-d %b")
        return f'<td class="nowrap"><time datetime="{value.isoformat()}">{label}</time></td>'
    text = escape(_text(value, column.kind))
    if first and row.get("url"):
        return f'<th scope="row"><a href="{escape(row["url"])}">{text}</a></th>'
    return f'<th scope="row">{text}</th>' if first else f"<td>{text}</td>"


@register.filter
def table_body(table: Any) -> SafeString:
    """The rows of a cost table; every value is escaped here."""
    lines = []
    for row in table.rows:
        cells = "".join(_cell(row, column, index == 0) for index, column in enumerate(table.columns))
        lines.append(f"<tr>{cells}</tr>")
    return mark_safe("\n".join(lines))  # noqa: S308  (built from escaped values)


@register.filter
def table_totals(table: Any) -> SafeString:
    totals = table.totals or {}
    cells: list[str] = []
    for index, column in enumerate(table.columns):
        if index == 0:
            cells.append(format_html('<th scope="row">{}</th>', totals.get(column.key) or "Total"))
        elif totals.get(column.key) is None:
            cells.append("<td></td>")
        else:
            cells.append(_cell(totals, column, False))
    return mark_safe(f"<tr>{''.join(cells)}</tr>")  # noqa: S308  (built from escaped values)
