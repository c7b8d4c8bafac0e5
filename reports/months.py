"""The month a cost page shows: reading it from the address, and the months around it."""

import re
from datetime import date, timedelta


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(day: date) -> date:
    return month_start(month_start(day) - timedelta(days=1))


def next_month(day: date) -> date:
    return month_start(month_start(day) + timedelta(days=32))


# The first month a cost page shows: no Azure OpenAI cost is older, and the pages' month
# arithmetic (the month before, for comparisons) stays inside the calendar.
EARLIEST_MONTH = date(2000, 1, 1)
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


class MonthInvalid(Exception):
    """A month the cost pages cannot show; the message says what to enter instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def month_parse(value: str | None, *, today: date) -> date:
    """`2026-10` -> 1 Oct 2026; nothing -> this month. Anything else (not YYYY-MM, a future month
    or one before EARLIEST_MONTH) raises MonthInvalid."""
    latest = month_start(today)
    if not value:
        return latest
    found = _MONTH.fullmatch(value)
    try:
        parsed = date(int(found[1]), int(found[2]), 1) if found else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise MonthInvalid(f"Enter a month as year and month, for example {latest:%Y-%m}.")
    if not EARLIEST_MONTH <= parsed <= latest:
        raise MonthInvalid(f"Choose a month from {EARLIEST_MONTH:%B %Y} to {latest:%B %Y}.")
    return parsed
