"""How the operations page writes its figures: durations, shares and rates, a dash for none."""

from django import template

register = template.Library()

DASH = "\u2014"


@register.filter
def duration(milliseconds: float | None) -> str:
    """420 ms, 1.3 s, 2 min 5 s."""
    if milliseconds is None:
        return DASH
    if milliseconds < 1000:
        return f"{milliseconds:,.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:,.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


@register.filter
def share(value: float | None) -> str:
    """A share as a percentage: 0.0125 -> 1.3%; below 0.1% but not nothing -> <0.1%."""
    if value is None:
        return DASH
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value * 100:,.1f}%"


@register.filter
def rate(value: float | None) -> str:
    """Calls per minute: 12.5, 0.03, 0."""
    if value is None:
        return DASH
    if value == 0:
        return "0"
    if value < 0.1:
        return f"{value:,.2f}"
    return f"{value:,.1f}"


@register.filter
def whole(value: float | None) -> str:
    """A large count with thousands separators, no decimals."""
    return DASH if value is None else f"{value:,.0f}"
