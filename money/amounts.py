"""Amounts of money: Decimal throughout, rounded only when shown (`cents`), so totals add up."""

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)
TEN_PLACES = Decimal("1e-10")
UNITS_PER_USD = 10**10  # the precision of UsageRecord.cost


def money(value: Any) -> Decimal:
    """A summed amount as Decimal: PostgreSQL gives one already; SQLite sums decimals as floats,
    so they get the field's 10 places back, as Django's own converter does."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)).quantize(TEN_PLACES)


def cents(amounts: list[Decimal], *, total: Decimal | None = None) -> tuple[list[Decimal], Decimal]:
    """Round a column of amounts to cents once, so that the rounded lines add up to the rounded
    total (largest remainder: the cents lost to rounding go to the lines that lost most). With
    `total`, the lines add up to that already rounded figure instead (a department's lines to the
    department total the company-wide report shows)."""
    if total is None:
        total = sum(amounts, ZERO).quantize(CENT, rounding=ROUND_HALF_UP)
    floors = [(amount / CENT).to_integral_value(rounding="ROUND_FLOOR") * CENT for amount in amounts]
    leftover = int(((total - sum(floors, ZERO)) / CENT).to_integral_value())
    order = sorted(range(len(amounts)), key=lambda i: (amounts[i] - floors[i], -i), reverse=True)
    rounded = list(floors)
    if leftover >= 0:
        for i in order[:leftover]:
            rounded[i] += CENT
    else:
        for i in list(reversed(order))[:-leftover]:
            rounded[i] -= CENT
    return rounded, total


# Ledger amounts: whole units of 1e-10 USD, which both databases add and compare exactly.


def to_units(amount: Decimal) -> int:
    """Whole units, rounded up: a reservation is never below the amount it stands for."""
    return math.ceil(amount * UNITS_PER_USD)


def from_units(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


def usd(amount: Decimal) -> str:
    """An amount in words of a message: cents, or a fraction of a cent when that is all it is."""
    if 0 < amount < Decimal("0.01"):
        # A fraction of a cent, to two significant digits: $0.00 would say nothing.
        return f"${amount:.{1 - amount.adjusted()}f}"
    return f"${amount:,.2f}"
