"""What each person's calls cost: the people table of the overview and of a department."""

from django.db.models import Sum

from money.amounts import ZERO
from money.periods import Period
from org.models import Department, User
from reports.tables import REQUESTS, TOKENS, Column, Table, rounded

TOP = 10


def users_table(*, period: Period, department: Department | None, limit: int | None = TOP) -> Table:
    rows_query = period.usage_rows_by_person()
    if department is not None:
        rows_query = rows_query.filter(department=department)
    grouped = (
        rows_query.order_by()
        .values("user_key")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
        .order_by("-cost", "user_key")
    )
    if limit is not None:
        grouped = grouped[:limit]
    lines = list(grouped)
    names = dict(User.objects.filter(pk__in=[line["user_key"] for line in lines]).values_list("pk", "email"))
    rows = [
        {
            "user": names.get(
                line["user_key"], "Without a person (API)" if not line["user_key"] else "Former user"
            ),
            "requests": int(line["requests"]),
            "tokens": int(line["input_tokens"]) + int(line["output_tokens"]),
            "cost": line["cost"] or ZERO,
        }
        for line in lines
    ]
    return rounded(
        Table(
            name="users",
            title="Top users" if limit else "People",
            columns=[
                Column("user", "Person"),
                REQUESTS,
                TOKENS,
                Column("cost", "Metered (USD)", "money"),
            ],
            rows=rows,
            note="What each person's calls cost at the price in force, before shared deployments are split.",
        ),
        total_label=None,
    )
