"""A cost table as a CSV file: the page's download and the API's `text/csv` answer write the
same rows with the same columns, so a script reads what finance downloads."""

import csv
from datetime import date
from decimal import Decimal

from django.http import Http404, HttpResponse
from django.utils.http import content_disposition_header

from base.text import csv_text, one_line
from reports.tables import Report, Table


def table_csv(table: Table, *, filename: str) -> HttpResponse:
    """The table's rows and its totals line, headed by the columns' labels, as an attachment."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, one_line(filename)) or "attachment"
    writer = csv.writer(response)
    writer.writerow([column.label for column in table.columns])
    lines = [*table.rows, table.totals] if table.totals else table.rows
    for row in lines:
        writer.writerow([csv_value(row.get(column.key)) for column in table.columns])
    return response


def csv_value(value: object) -> object:
    """Amounts, counts and shares are numbers in the tables and are written as numbers (a
    negative amount stays one); dates as ISO dates; anything else is text, which a spreadsheet
    must not take for a formula."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int | float):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return csv_text(str(value))


def report_table(report: Report, table_name: str) -> Table:
    """The report's table by the name its download address carries (`cost-centers`)."""
    table = next((table for table in report.tables.values() if table.name == table_name), None)
    if table is None:
        raise Http404("No such table.")
    return table


def report_csv(report: Report, table_name: str, *, prefix: str) -> HttpResponse:
    """One table of a cost page, named as the page's download names it."""
    table = report_table(report, table_name)
    return table_csv(table, filename=f"switchyard-{prefix}-{table.name}-{report.month:%Y-%m}.csv")


def statement_csv(report: Report, *, cost_center: str) -> HttpResponse:
    """A chargeback statement's lines."""
    return table_csv(
        report.tables["lines"], filename=f"switchyard-chargeback-{cost_center}-{report.month:%Y-%m}.csv"
    )
