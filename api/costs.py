"""Usage and costs of a month, and the chargeback statements, as the cost pages show them.

Each answer is one table of a cost page, built by the page's own selector (`reports.selectors`),
so the API, the page and the page's CSV download show the same lines and the same rounded
figures: amounts are rounded once per table, so that the lines add up to the totals line. As
CSV (`format=csv`, or `Accept: text/csv`), the answer is the page's download itself.

A table is a document of one month, not a list to page through: it comes whole, and its lines
are in the page's order (the largest first)."""

from datetime import date
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from ninja import Field, Path, Query, Router, Schema

from api.params import Id, Slug, user_of
from api.problems import refused
from api.schemas import Money
from org.access import get_department_for, require_overview_role
from org.models import Department
from provisioning.access import get_deployment_for
from reports.access import get_cost_center_for, named_departments_for
from reports.exports import report_csv, report_table, statement_csv
from reports.months import MonthInvalid, month_parse
from reports.selectors.chargeback import chargeback_statement
from reports.selectors.department import department_report
from reports.selectors.deployment import deployment_report
from reports.selectors.overview import overview_report
from reports.tables import Column, Report, Table

router = Router(tags=["costs"])

CSV = "text/csv"
JSON = "application/json"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
PERCENT_PATTERN = r"^-?[0-9]+\.[0-9]$"

# What a table's line may carry beside its columns: the ids of what it is about.
LINE_IDS = ("department_slug", "deployment_id", "api_key_id", "service_principal_id")

# group_by -> the name of the page's table (its CSV address's name).
COMPANY_TABLES = {
    "department": "departments",
    "cost_center": "cost-centers",
    "deployment": "deployments",
    "model": "models",
    "key": "callers",
    "person": "users",
    "source": "sources",
    "day": "daily",
    "shared_service": "shared",
}
DEPARTMENT_TABLES = {
    "deployment": "deployments",
    "key": "callers",
    "person": "users",
    "source": "sources",
    "day": "daily",
}
DEPLOYMENT_TABLES = {"day": "daily", "department": "split", "key": "callers", "source": "sources"}

CompanyGrouping = Literal[
    "department", "cost_center", "deployment", "model", "key", "person", "source", "day", "shared_service"
]
DepartmentGrouping = Literal["deployment", "key", "person", "source", "day"]
DeploymentGrouping = Literal["day", "department", "key", "source"]


# Shapes -------------------------------------------------------------------------------------------


def _percent(description: str) -> Any:
    return Field(None, pattern=PERCENT_PATTERN, description=f"{description}, in percent to one decimal.")


class CostLine(Schema):
    """One line of a cost table: the fields its table's `columns` name, and the ids of what it is
    about (left out on a line that sums several things, such as "3 other departments"; a caller
    line has both `api_key_id` and `service_principal_id`, one of them or neither null). The
    totals line has every column but the first, whose cell reads "Total" on the page and in the
    CSV."""

    department_slug: str | None = Field(None, description="The department's slug.")
    deployment_id: int | None = Field(None, description="The deployment's id.")
    api_key_id: int | None = Field(None, description="The API key's id (callers).")
    service_principal_id: int | None = Field(None, description="The service principal's id (callers).")

    department: str | None = Field(None, description="A department's name.")
    cost_center: str | None = None
    departments: str | None = Field(None, description="Departments' names, comma separated.")
    deployment: str | None = Field(None, description="A deployment's display name.")
    scope: str | None = Field(None, description="Dedicated or shared.")
    model: str | None = None
    service: str | None = Field(None, description="A shared service's display name.")
    user: str | None = Field(None, description="A person's email, or what the calls were made without.")
    source: str | None = Field(
        None, description="Chat, API, document ingestion, or provisioned hours without calls."
    )
    caller: str | None = Field(None, description="An API key's or a service principal's name.")
    kind: str | None = Field(None, description="What the caller is (and why it no longer calls).")
    identifier: str | None = Field(None, description="A key's prefix or a service principal's object id.")
    description: str | None = Field(None, description="What a chargeback line charges for.")
    capacity: str | None = None
    day: date | None = None

    requests: int | None = None
    tokens: int | None = None
    deployments: int | None = Field(None, description="How many deployments (models).")

    spend: Money | None = None
    budget: Money | None = None
    last_month: Money | None = None
    token_cost: Money | None = Field(None, description="Tokens at the price in force.")
    fixed_cost: Money | None = Field(
        None, description="Hourly charges: provisioned (PTU) capacity, a landing zone's search service."
    )
    total: Money | None = Field(None, description="What was charged (or, for a deployment, what it cost).")
    cost: Money | None = Field(None, description="Metered: before shared deployments are split.")
    amount: Money | None = Field(None, description="A chargeback line's amount.")

    used: str | None = _percent("Share of the budget used")
    change: str | None = _percent("Change against last month")
    share: str | None = _percent("Share of the tokens")


class CostColumn(Schema):
    key: str = Field(..., description="The field of each line that holds this column.")
    label: str = Field(..., description="The column's heading on the page and in the CSV.")
    kind: Literal["text", "money", "number", "percent"]


class CostTableOut(Schema):
    month: str = Field(..., pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-03"])
    title: str = Field(..., description="The table's title on the page.")
    columns: list[CostColumn]
    lines: list[CostLine]
    totals: CostLine | None = Field(..., description="The totals line, if the table has one.")
    note: str = Field(..., description="How to read the table, as the page says it.")


class CostsOut(CostTableOut):
    group_by: CompanyGrouping


class DepartmentRef(Schema):
    slug: str
    name: str


class StatementOut(CostTableOut):
    cost_center: str
    departments: list[DepartmentRef]
    amount: Money = Field(..., description="The statement's total: the sum of its lines.")
    budget: Money = Field(..., description="The departments' monthly budgets together.")
    final: bool = Field(..., description="The month is over.")


class CostCenterOut(Schema):
    cost_center: str
    departments: list[DepartmentRef]
    amount: Money = Field(..., description="What its statement of the month adds up to.")
    budget: Money


class ChargebackIndexOut(Schema):
    month: str = Field(..., pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2026-03"])
    cost_centers: list[CostCenterOut]


class MonthQuery(Schema):
    month: str | None = Field(
        None,
        pattern=MONTH_PATTERN,
        description="The calendar month, `YYYY-MM`; this month if left out. A month to come is a 400.",
    )
    format: Literal["json", "csv"] | None = Field(
        None, description="`csv` for the page's CSV download; without it, `Accept: text/csv` asks for it too."
    )


class CompanyCostsQuery(MonthQuery):
    group_by: CompanyGrouping = "department"


class DepartmentCostsQuery(MonthQuery):
    group_by: DepartmentGrouping = "deployment"


class DeploymentCostsQuery(MonthQuery):
    group_by: DeploymentGrouping = "day"


class ChargebackIndexQuery(Schema):
    month: str | None = Field(
        None, pattern=MONTH_PATTERN, description="The calendar month, `YYYY-MM`; this month if left out."
    )


# A cost center as `org.models.validate_cost_center` allows it.
CostCenterPath = Annotated[str, Path(..., pattern=r"^[\w .-]+$", max_length=40)]

# The 200 of an operation that answers CSV too: both media types in the document.
CSV_TOO = {
    "responses": {
        200: {
            "content": {
                CSV: {
                    "schema": {"type": "string"},
                    "example": "Department,Cost center,Spend (USD)\r\nMarketing,CC-2100,8.16\r\n",
                }
            }
        }
    }
}


# Reading a table ----------------------------------------------------------------------------------


def _month(value: str | None) -> date:
    try:
        return month_parse(value, today=timezone.localdate())
    except MonthInvalid as invalid:
        raise refused(invalid.message, {"month": [invalid.message]}) from None


def _wants_csv(request: HttpRequest, response: HttpResponse, query: MonthQuery) -> bool:
    """CSV if `format` says so, or, without it, if Accept prefers it to JSON. The answer says
    that it depends on Accept (`Vary`), whichever it is."""
    patch_vary_headers(response, ["Accept"])
    if query.format is not None:
        return query.format == "csv"
    return request.get_preferred_type([JSON, CSV]) == CSV


def _csv(answer: HttpResponse) -> HttpResponse:
    patch_vary_headers(answer, ["Accept"])
    return answer


def _value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "money":
        return Money.of(value)
    if kind == "number":
        return int(value)
    if kind == "percent":
        return str(value)
    return value


def _line(row: dict[str, Any], columns: list[Column]) -> dict[str, Any]:
    """A row as the page holds it, with only its table's columns (and the ids it has)."""
    line = {key: row[key] for key in LINE_IDS if key in row}
    for column in columns:
        line[column.key] = _value(row.get(column.key), column.kind)
    return line


def _table_out(report: Report, table: Table) -> dict[str, Any]:
    return {
        "month": f"{report.month:%Y-%m}",
        "title": table.title,
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in table.columns],
        "lines": [_line(row, table.columns) for row in table.rows],
        # Without the first column, which holds the word "Total" on the page and in the CSV.
        "totals": _line(table.totals, table.columns[1:]) if table.totals else None,
        "note": table.note,
    }


def _answer(
    request: HttpRequest,
    response: HttpResponse,
    query: MonthQuery,
    report: Report,
    table_name: str,
    *,
    prefix: str,
    group_by: str,
) -> dict[str, Any] | HttpResponse:
    if _wants_csv(request, response, query):
        return _csv(report_csv(report, table_name, prefix=prefix))
    return {**_table_out(report, report_table(report, table_name)), "group_by": group_by}


# Operations ---------------------------------------------------------------------------------------


@router.get(
    "/costs",
    response=CostsOut,
    exclude_unset=True,
    openapi_extra=CSV_TOO,
    summary="The company's usage and costs of a month",
)
def company_costs(
    request: HttpRequest, response: HttpResponse, query: Query[CompanyCostsQuery]
) -> dict[str, Any] | HttpResponse:
    """One table of the company-wide cost page, for platform admins and finance approvers, every
    line of it (the page shows the top ones):

    - `department` (default): spend, budget, share of the budget used, last month, change;
    - `cost_center`: the same, by cost center;
    - `deployment`: requests, tokens, token and PTU-hour cost of each deployment, and whom it is
      charged to;
    - `model`: by model and version;
    - `key`: the gateway's callers (API keys, service principals, people's own Entra ID tokens)
      with what they add to their department's charges;
    - `person`: each person's calls at the price in force, before shared deployments are split;
    - `source`: the chat against the API;
    - `day`: spend per day;
    - `shared_service`: how each shared service's cost is split between departments.

    Each line has the fields `columns` names, money as decimal strings in USD. As CSV: the page's
    download of the table, with its headings."""
    require_overview_role(user_of(request))
    month = _month(query.month)
    report = overview_report(month=month, complete=True)
    return _answer(
        request,
        response,
        query,
        report,
        COMPANY_TABLES[query.group_by],
        prefix="costs",
        group_by=query.group_by,
    )


@router.get(
    "/departments/{slug}/costs",
    response=CostsOut,
    exclude_unset=True,
    openapi_extra=CSV_TOO,
    summary="A department's usage and costs of a month",
)
def department_costs(
    request: HttpRequest, response: HttpResponse, slug: Slug, query: Query[DepartmentCostsQuery]
) -> dict[str, Any] | HttpResponse:
    """One table of the department's cost page, for its leads, platform admins and finance
    approvers:

    - `deployment` (default): its deployments, with its share of shared ones;
    - `key`: its API keys and service principals (revoked ones too), and calls made with
      people's own Entra ID tokens;
    - `person`: each of its people's calls at the price in force;
    - `source`: the chat against the API;
    - `day`: spend per day.

    The department's spend is the figure its budget is checked against. As CSV: the page's
    download of the table."""
    department = get_department_for(user_of(request), slug, lead_only=True)
    month = _month(query.month)
    report = department_report(department=department, month=month)
    return _answer(
        request,
        response,
        query,
        report,
        DEPARTMENT_TABLES[query.group_by],
        prefix=department.slug,
        group_by=query.group_by,
    )


@router.get(
    "/deployments/{deployment_id}/costs",
    response=CostsOut,
    exclude_unset=True,
    openapi_extra=CSV_TOO,
    summary="A deployment's usage and costs of a month",
)
def deployment_costs(
    request: HttpRequest, response: HttpResponse, deployment_id: Id, query: Query[DeploymentCostsQuery]
) -> dict[str, Any] | HttpResponse:
    """One table of the deployment's cost page, for whoever may open the deployment (its
    department's leads, and those of the departments a shared one is granted to; platform admins
    and finance approvers):

    - `day` (default): requests, tokens and cost per day;
    - `department`: whom its cost is charged to (a lead reads other departments' part as one
      line without names);
    - `key`: the gateway's callers (other departments' as one line, for a lead);
    - `source`: the chat against the API.

    As CSV: the page's download of the table."""
    user = user_of(request)
    deployment = get_deployment_for(user, deployment_id)
    month = _month(query.month)
    report = deployment_report(
        deployment=deployment, month=month, named_departments=named_departments_for(user)
    )
    return _answer(
        request,
        response,
        query,
        report,
        DEPLOYMENT_TABLES[query.group_by],
        prefix=f"deployment-{deployment.pk}",
        group_by=query.group_by,
    )


@router.get(
    "/chargeback",
    response=ChargebackIndexOut,
    exclude_unset=True,
    summary="The cost centers with a chargeback statement",
)
def chargeback_index(request: HttpRequest, query: Query[ChargebackIndexQuery]) -> dict[str, Any]:
    """Every cost center, its departments and what its statement of the month adds up to, for
    platform admins and finance approvers. Ordered by amount, the largest first."""
    require_overview_role(user_of(request))
    month = _month(query.month)
    report = overview_report(month=month)
    departments: dict[str, list[dict[str, str]]] = {}
    for department in Department.objects.order_by("name"):
        departments.setdefault(department.cost_center, []).append(
            {"slug": department.slug, "name": department.name}
        )
    return {
        "month": f"{month:%Y-%m}",
        "cost_centers": [
            {
                "cost_center": row["cost_center"],
                "departments": departments.get(row["cost_center"], []),
                "amount": Money.of(row["spend"]),
                "budget": Money.of(row["budget"]),
            }
            for row in report.tables["cost_centers"].rows
        ],
    }


@router.get(
    "/chargeback/{cost_center}",
    response=StatementOut,
    exclude_unset=True,
    openapi_extra=CSV_TOO,
    summary="A cost center's chargeback statement",
)
def chargeback(
    request: HttpRequest, response: HttpResponse, cost_center: CostCenterPath, query: Query[MonthQuery]
) -> dict[str, Any] | HttpResponse:
    """Every line the cost center is charged for in the month, for platform admins and finance
    approvers: a line per department, deployment and caller (the chat's calls together, each API
    key and service principal apart, provisioned hours nobody used on their own). Each
    department's lines add up to the spend its own pages show. `final` once the month is over.
    As CSV: the statement's download."""
    found = get_cost_center_for(user_of(request), cost_center)
    month = _month(query.month)
    report = chargeback_statement(cost_center=found, month=month)
    if _wants_csv(request, response, query):
        return _csv(statement_csv(report, cost_center=found))
    stats = report.stats
    return {
        **_table_out(report, report.tables["lines"]),
        "cost_center": found,
        "departments": [{"slug": d.slug, "name": d.name} for d in stats["departments"]],
        "amount": Money.of(stats["amount"]),
        "budget": Money.of(stats["budget"]),
        "final": stats["final"],
    }
