"""What a cost page shows, as the selectors build it: tables (the same rows on the page and in the
CSV), the daily chart and the shares. Amounts stay exact Decimals until a table is built; each
money column is then rounded once (`rounded`) so its lines add up to its total, on the page and in
the CSV alike. Nothing here reads the database."""

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.urls import reverse

from money.allocation import Charge, CostAllocation
from money.amounts import ZERO, cents
from money.periods import Period

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | money | number | percent


# Columns that several tables have, so that they read alike everywhere.
DEPARTMENT = Column("department", "Department")
DEPLOYMENT = Column("deployment", "Deployment")
MODEL = Column("model", "Model")
REQUESTS = Column("requests", "Requests", "number")
TOKENS = Column("tokens", "Tokens", "number")
TOKEN_COST = Column("token_cost", "Tokens (USD)", "money")
FIXED_COST = Column("fixed_cost", "Hourly charges (USD)", "money")
CHARGED = Column("total", "Charged (USD)", "money")


@dataclass
class Table:
    """A table as the page shows it and the CSV exports it: same rows, same rounded figures."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None = None
    note: str = ""
    csv_url: str = ""

    def money_total(self, key: str) -> Decimal:
        return self.totals[key] if self.totals else sum((row[key] for row in self.rows), ZERO)


@dataclass
class Report:
    """Everything one cost page shows for one month."""

    month: date
    period: Period
    allocation: CostAllocation
    tables: dict[str, Table] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)

    @property
    def is_current_month(self) -> bool:
        return self.period.until < self.period.end


def rounded(
    table: Table, *, total_label: str | None = "Total", anchors: dict[str, Decimal] | None = None
) -> Table:
    """Round each money column once; the totals row (if any) is the rounded exact total, or the
    figure given in `anchors` (a department total the company-wide report already rounded)."""
    totals: dict[str, Any] = {table.columns[0].key: total_label} if total_label else {}
    for column in table.columns:
        if column.kind != "money":
            continue
        anchor = (anchors or {}).get(column.key) if table.rows else None
        amounts, total = cents([row[column.key] for row in table.rows], total=anchor)
        for row, amount in zip(table.rows, amounts, strict=True):
            row[column.key] = amount
        totals[column.key] = total
    if total_label:
        for column in table.columns:
            if column.kind == "number" and all(isinstance(row.get(column.key), int) for row in table.rows):
                totals[column.key] = sum(row[column.key] for row in table.rows)
        table.totals = totals
    return table


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return share_percent(part / whole) if whole else None


def share_percent(share: Decimal) -> Decimal:
    """A share (0 to 1) as a percentage to one decimal."""
    return (share * HUNDRED).quantize(Decimal("0.1"))


def budget_used(spent: Decimal, budget: Decimal) -> Decimal | None:
    """Share of the budget used, from the exact spend and rounded down, so a page says 100% exactly
    when the chat's budget check (which compares exact figures) stops."""
    return (spent / budget * HUNDRED).quantize(Decimal("0.1"), rounding=ROUND_DOWN) if budget else None


def month_url(view: str, key: Any, month: date) -> str:
    """The cost page `view` of `key` for `month`."""
    return reverse(view, args=[key]) + f"?month={month:%Y-%m}"


def daily_table(
    name: str, period: Period, daily: dict[date, Decimal], *, until: date, total: Decimal | None = None
) -> Table:
    days = [day for day in period.days if day <= until]
    table = Table(
        name=name,
        title="Spend per day",
        columns=[Column("day", "Day"), Column("spend", "Spend (USD)", "money")],
        rows=[{"day": day, "spend": daily.get(day, ZERO)} for day in days],
    )
    return rounded(table, anchors={"spend": total} if total is not None else None)


def chart(
    table: Table, *, label: str, budget: Decimal | None = None, cumulative: bool = False
) -> dict[str, Any]:
    values = [row["spend"] for row in table.rows]
    running: list[str] = []
    total = ZERO
    for value in values:
        total += value
        running.append(str(total))
    return {
        "label": label,
        "days": [row["day"].isoformat() for row in table.rows],
        "spend": [str(value) for value in values],
        "cumulative": running if cumulative else None,
        "budget": str(budget) if budget is not None else None,
    }


def split_rows(shown: list[Charge], rest: list[Charge], names: dict[int, str]) -> list[dict[str, Any]]:
    """How a shared deployment's cost is split: a line per department in `shown`, the `rest` in
    one line without names."""
    rows: list[dict[str, Any]] = [
        {
            "department": names.get(charge.department_id, ""),
            "tokens": charge.tokens,
            "share": share_percent(charge.share),
            "total": charge.total,
        }
        for charge in shown
    ]
    if rest:
        rows.append(
            {
                "department": f"{len(rest)} other department{'s' if len(rest) != 1 else ''}",
                "tokens": sum(charge.tokens for charge in rest),
                "share": share_percent(sum((charge.share for charge in rest), ZERO)),
                "total": sum((charge.total for charge in rest), ZERO),
            }
        )
    return rows
