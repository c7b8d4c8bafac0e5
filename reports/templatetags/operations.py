"""How the operations page writes its figures: durations, shares and rates, a dash for none."""

from datetime import datetime

from django import template

from calls.latency import BUCKETS_MS

register = template.Library()

DASH = "\u2014"


@register.filter
def duration(milliseconds: float | None) -> str:
    """A latency: 420 ms, 1.3 s, 1 min 5 s; past the last bucket only a floor is known."""
    if milliseconds is None:
        return DASH
    if milliseconds >= BUCKETS_MS[-1]:
        return f"over {_readable(BUCKETS_MS[-1])}"
    return _readable(milliseconds)


@register.filter
def elapsed(start: datetime, end: datetime | None) -> str:
    """How long from start to end (a sync run's length)."""
    if end is None:
        return DASH
    return _readable((end - start).total_seconds() * 1000)


def _readable(milliseconds: float) -> str:
    if milliseconds < 999.5:
        return f"{milliseconds:,.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 59.95:
        return f"{seconds:,.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


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
    if value < 0.005:
        return "<0.01"
    if value < 0.1:
        return f"{value:,.2f}"
    return f"{value:,.1f}"


@register.filter
def whole(value: float | None) -> str:
    """A large count with thousands separators, no decimals."""
    return DASH if value is None else f"{value:,.0f}"
