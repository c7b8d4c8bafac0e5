"""How cost figures read on the pages: dollars with cents, thousands grouped, a dash for none."""

from datetime import date
from decimal import Decimal
from typing import Any

from django import template
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"${number_format(value, 2, force_grouping=True)}"


@register.filter
def pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{number_format(value, 1, force_grouping=True)}%"


@register.filter
def signed_pct(value: Decimal | None) -> str:
    if value is None:
        return "—"
    sign = "+" if value > 0 else ("\u2212" if value < 0 else "±")
    return f"{sign}{number_format(abs(value), 1, force_grouping=True)}%"


@register.simple_tag
def cost_cell(row: dict[str, Any], column: Any, first: bool = False) -> SafeString:
    """One table cell: a number right-aligned, the first column a link when the row has one."""
    value = row.get(column.key)
    if column.kind == "money":
        return format_html('<td class="num">{}</td>', usd(value))
    if column.kind == "number":
        text = "—" if value is None else number_format(value, 0, force_grouping=True)
        return format_html('<td class="num">{}</td>', text)
    if column.kind == "percent":
        return format_html('<td class="num">{}</td>', pct(value))
    if isinstance(value, date):
        return format_html(
            '<td class="nowrap"><time datetime="{}">{}</time></td>',
            value.isoformat(),
            value.strftime("%a %-d %b"),
        )
    if first and row.get("url"):
        return format_html('<th scope="row"><a href="{}">{}</a></th>', row["url"], value)
    if first:
        return format_html('<th scope="row">{}</th>', value if value not in (None, "") else "—")
    return format_html("<td>{}</td>", value if value not in (None, "") else "—")


@register.simple_tag
def total_cell(totals: dict[str, Any], column: Any, first: bool = False) -> SafeString:
    value = totals.get(column.key)
    if first:
        return format_html('<th scope="row">{}</th>', value or "Total")
    if value is None:
        return mark_safe("<td></td>")
    return cost_cell(totals, column)
