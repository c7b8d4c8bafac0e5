# ruff: noqa: F811
"""Usage and costs through the API: every operation walks the ladder, answers the same lines and
figures as its cost page (the same selector), and its CSV is the page's download.

The month is test_api_usage's March 2026: Marketing's chat and API calls (two keys, one revoked,
a service principal, a person's own Entra ID token) on its own deployment and on Central IT's
shared one, and a Finance key on the shared one. Marketing spends $8.16 ($2.02 chat, $6.14 API),
Finance $1.30."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from reports.selectors.overview import overview_report
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate

# The cost pages' fixtures, taken as the tests' arguments (hence no F811 for them).
from tests.reports.conftest import central_it, company_assistant, copy_assistant, prices  # noqa: F401
from tests.reports.test_api_usage import MARCH, callers, march  # noqa: F401

pytestmark = pytest.mark.django_db
MONTH = "2026-03"


def csv_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode())))


def lines_by(body: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {line[key]: line for line in body["lines"]}


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


# The ladder ----------------------------------------------------------------------------------------


def every_path(deployment_id: int) -> list[str]:
    return [
        "/api/v1/costs",
        "/api/v1/departments/marketing/costs",
        f"/api/v1/deployments/{deployment_id}/costs",
        "/api/v1/chargeback",
        "/api/v1/chargeback/CC-2100",
    ]


def test_anonymous_gets_a_401_everywhere(anonymous, copy_assistant):
    for path in every_path(copy_assistant.pk):
        assert_problem(anonymous.get(path, {"month": MONTH, "format": "csv"}), 401)


def test_another_departments_lead_gets_a_404(api_as, finance_lead, copy_assistant):
    client = api_as(finance_lead)

    assert_problem(client.get("/api/v1/departments/marketing/costs"), 404)
    assert_problem(client.get(f"/api/v1/deployments/{copy_assistant.pk}/costs"), 404)
    assert_problem(client.get(f"/api/v1/deployments/{copy_assistant.pk}/costs?format=csv"), 404)


def test_a_plain_member_gets_a_403_everywhere(api_as, marketing_member, copy_assistant):
    client = api_as(marketing_member)
    for path in every_path(copy_assistant.pk):
        assert_problem(client.get(path), 403)


def test_a_lead_reads_their_department_but_not_the_company_or_statements(
    api_as, marketing_lead, copy_assistant
):
    client = api_as(marketing_lead)

    assert client.get("/api/v1/departments/marketing/costs").status_code == 200
    assert client.get(f"/api/v1/deployments/{copy_assistant.pk}/costs").status_code == 200
    for path in ["/api/v1/costs", "/api/v1/chargeback", "/api/v1/chargeback/CC-2100"]:
        body = assert_problem(client.get(path), 403)
        assert "platform admins and finance approvers" in body["detail"]


@pytest.mark.parametrize("who", ["platform_admin", "finance_approver"])
def test_admins_and_finance_read_everything(request, api_as, copy_assistant, finance, who):
    client = api_as(request.getfixturevalue(who))
    for path in every_path(copy_assistant.pk):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/v1/departments/finance/costs").status_code == 200


def test_unknown_things_are_404s(api_as, platform_admin, marketing):
    client = api_as(platform_admin)

    assert_problem(client.get("/api/v1/departments/nowhere/costs"), 404)
    assert_problem(client.get("/api/v1/deployments/999999/costs"), 404)
    assert_problem(client.get("/api/v1/chargeback/CC-9999"), 404)


# The month and the grouping -----------------------------------------------------------------------


def test_the_month_defaults_to_this_month(platform_admin, marketing):
    from django.utils import timezone

    body = bearer(token_for(platform_admin)).get("/api/v1/costs").json()

    assert body["month"] == f"{timezone.localdate():%Y-%m}"
    assert body["group_by"] == "department"
    assert lines_by(body, "department")["Marketing"]["spend"] == money("0.00")


def test_a_month_to_come_is_a_400_naming_the_month(platform_admin, marketing):
    client = bearer(token_for(platform_admin))

    for path in ["/api/v1/costs", "/api/v1/departments/marketing/costs", "/api/v1/chargeback"]:
        body = assert_problem(client.get(path, {"month": "2999-01"}), 400)
        assert list(body["errors"]) == ["month"]
        assert "Choose a month" in body["errors"]["month"][0]


@pytest.mark.parametrize("query", [{"month": "2026-13"}, {"month": "March"}, {"group_by": "colour"}])
def test_malformed_parameters_are_422s(platform_admin, marketing, query):
    body = assert_problem(bearer(token_for(platform_admin)).get("/api/v1/costs", query), 422)
    assert list(body["errors"]) == list(query)


def test_a_grouping_the_department_page_has_not_is_a_422(marketing_lead):
    client = bearer(token_for(marketing_lead))

    body = assert_problem(client.get("/api/v1/departments/marketing/costs", {"group_by": "cost_center"}), 422)
    assert list(body["errors"]) == ["group_by"]


# The page's figures -------------------------------------------------------------------------------

COMPANY = {
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


@pytest.mark.parametrize(("group_by", "table"), list(COMPANY.items()))
def test_every_company_grouping_is_the_pages_csv_and_its_lines(
    client_for, platform_admin, march, group_by, table
):
    client = bearer(token_for(platform_admin))
    page_csv = client_for(platform_admin).get(
        reverse("reports:overview_export", args=[table]), {"month": MONTH}
    )

    as_csv = client.get("/api/v1/costs", {"month": MONTH, "group_by": group_by, "format": "csv"})
    as_json = client.get("/api/v1/costs", {"month": MONTH, "group_by": group_by})

    assert as_csv.content == page_csv.content
    assert as_csv["Content-Disposition"] == page_csv["Content-Disposition"]
    rows = csv_of(as_csv)
    body = as_json.json()
    assert body["group_by"] == group_by
    first = body["columns"][0]["key"]
    assert body["totals"] is None or first not in body["totals"]
    assert [column["label"] for column in body["columns"]] == rows[0]
    lines = [*body["lines"], {first: "Total", **body["totals"]}] if body["totals"] else body["lines"]
    assert [_as_csv_row(line, body["columns"]) for line in lines] == _figures(rows[1:])


def _as_csv_row(line: dict[str, Any], columns: list[dict[str, Any]]) -> list[object]:
    """A JSON line as the CSV's row, figures as Decimals (the CSV writes a zero as 0)."""
    cells: list[object] = []
    for column in columns:
        value = line[column["key"]]
        if value is None:
            cells.append("")
        elif column["kind"] == "money":
            assert value["currency"] == "USD"
            cells.append(Decimal(value["amount"]))
        elif column["kind"] in ("number", "percent"):
            cells.append(Decimal(value))
        else:
            cells.append(str(value))
    return cells


def _figures(rows: list[list[str]]) -> list[list[object]]:
    """CSV rows with their figures as Decimals."""

    def cell(text: str) -> object:
        try:
            return Decimal(text)
        except ArithmeticError:
            return text

    return [[cell(text) for text in row] for row in rows]


def test_the_company_figures_are_the_overview_selectors(platform_admin, march, callers):
    client = bearer(token_for(platform_admin))
    report = overview_report(month=MARCH, complete=True)

    departments = client.get("/api/v1/costs", {"month": MONTH}).json()
    keys = client.get("/api/v1/costs", {"month": MONTH, "group_by": "key"}).json()
    sources = client.get("/api/v1/costs", {"month": MONTH, "group_by": "source"}).json()

    marketing = lines_by(departments, "department")["Marketing"]
    assert marketing["spend"] == money("8.16")
    assert marketing["department_slug"] == "marketing"
    assert marketing["cost_center"] == "CC-2100"
    assert departments["totals"]["spend"] == money(str(report.tables["departments"].totals["spend"]))
    assert {name: line["total"]["amount"] for name, line in lines_by(sources, "source").items()} == {
        "Chat": "2.02",
        "API": "7.44",
    }
    by_caller = lines_by(keys, "caller")
    assert by_caller["Campaign batch"] == {
        "api_key_id": callers["batch"].pk,
        "service_principal_id": None,
        "caller": "Campaign batch",
        "department": "Marketing",
        "kind": "API key",
        "identifier": f"{callers['batch'].prefix}…",
        "requests": 2,
        "tokens": 1_250_000,
        "total": money("4.00"),
    }
    assert by_caller["Forecasts"]["total"] == money("1.30")
    assert by_caller["Web shop"]["service_principal_id"] == callers["shop"].pk
    assert by_caller["Old importer"]["kind"] == "API key, revoked"
    assert keys["totals"]["total"] == money("7.44")
    assert [line["caller"] for line in keys["lines"]] == [
        row["caller"] for row in report.tables["callers"].rows
    ]


def test_the_department_figures_are_its_pages(client_for, marketing_lead, marketing, march, callers):
    client = bearer(token_for(marketing_lead))
    page = client_for(marketing_lead).get(reverse("reports:department", args=["marketing"]), {"month": MONTH})
    report = page.context["report"]

    for group_by, table in {
        "deployment": "deployments",
        "key": "callers",
        "person": "users",
        "source": "sources",
        "day": "daily",
    }.items():
        body = client.get(
            "/api/v1/departments/marketing/costs", {"month": MONTH, "group_by": group_by}
        ).json()
        page_table = next(t for t in report.tables.values() if t.name == table)
        first = page_table.columns[0].key
        assert [line[first] for line in body["lines"]] == [
            row[first] if first != "day" else row[first].isoformat() for row in page_table.rows
        ], group_by
        page_csv = client_for(marketing_lead).get(
            reverse("reports:department_export", args=["marketing", table]), {"month": MONTH}
        )
        api_csv = client.get(
            "/api/v1/departments/marketing/costs",
            {"month": MONTH, "group_by": group_by},
            headers={"Accept": "text/csv"},
        )
        assert api_csv.content == page_csv.content, group_by

    keys = client.get("/api/v1/departments/marketing/costs", {"month": MONTH, "group_by": "key"}).json()
    assert "department" not in keys["lines"][0]  # the department page's table has no such column
    assert set(lines_by(keys, "caller")) == {
        "Campaign batch",
        "Old importer",
        "Web shop",
        "People's own Entra ID tokens",
    }
    assert keys["totals"]["total"] == money(str(report.stats["api"])) == money("6.14")
    deployments = client.get("/api/v1/departments/marketing/costs", {"month": MONTH}).json()
    assert deployments["totals"]["total"] == money("8.16")
    assert {line["deployment"]: line["share"] for line in deployments["lines"]} == {
        "Marketing copy assistant": None,
        "Company assistant": "50.0",
    }
    people = client.get("/api/v1/departments/marketing/costs", {"month": MONTH, "group_by": "person"}).json()
    assert people["totals"] is None
    assert {line["user"]: line["requests"] for line in people["lines"]} == {
        "member@example.com": 3,
        "Without a person (API)": 4,
    }


def test_a_shared_deployment_hides_other_departments_callers_from_a_lead(
    client_for, finance_lead, finance_approver, company_assistant, march
):
    path = f"/api/v1/deployments/{company_assistant.pk}/costs"
    lead = bearer(token_for(finance_lead))

    keys = lead.get(path, {"month": MONTH, "group_by": "key"}).json()
    split = lead.get(path, {"month": MONTH, "group_by": "department"}).json()
    everyone = bearer(token_for(finance_approver)).get(path, {"month": MONTH, "group_by": "key"}).json()

    assert [(line["caller"], line["total"]["amount"]) for line in keys["lines"]] == [
        ("Forecasts", "1.30"),
        ("Other departments' callers", "1.04"),
    ]
    assert "api_key_id" not in keys["lines"][1]
    assert sorted(line["caller"] for line in everyone["lines"]) == ["Forecasts", "Web shop"]
    assert [line["department"] for line in split["lines"]] == ["Finance", "1 other department"]
    page_csv = client_for(finance_lead).get(
        reverse("reports:deployment_export", args=[company_assistant.pk, "callers"]), {"month": MONTH}
    )
    assert lead.get(path, {"month": MONTH, "group_by": "key", "format": "csv"}).content == page_csv.content


def test_a_deployments_days_add_up_to_its_cost(marketing_lead, copy_assistant, march):
    body = (
        bearer(token_for(marketing_lead))
        .get(f"/api/v1/deployments/{copy_assistant.pk}/costs", {"month": MONTH})
        .json()
    )

    assert body["group_by"] == "day"
    assert len(body["lines"]) == 31
    assert body["lines"][2] == {
        "day": "2026-03-03",
        "requests": 1,
        "tokens": 750_000,
        "token_cost": money("2.40"),
        "fixed_cost": money("0.00"),
        "spend": money("2.40"),
    }
    assert body["totals"]["spend"] == money("6.86")  # $1.76 chat + $5.10 API


# Content negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accept", "wanted"),
    [
        ({}, None, "json"),
        ({}, "*/*", "json"),
        ({}, "application/json", "json"),
        ({}, "text/csv", "csv"),
        ({}, "application/json;q=0.5, text/csv", "csv"),
        ({}, "text/html", "json"),
        ({"format": "csv"}, "application/json", "csv"),
        ({"format": "json"}, "text/csv", "json"),
    ],
)
def test_csv_when_asked_json_otherwise(platform_admin, march, query, accept, wanted):
    headers = {"Accept": accept} if accept else {}

    response = bearer(token_for(platform_admin)).get(
        "/api/v1/costs", {"month": MONTH, **query}, headers=headers
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith({"json": "application/json", "csv": "text/csv"}[wanted])
    assert "Accept" in response["Vary"]


def test_problems_stay_json_when_csv_is_asked_for(marketing_member):
    response = bearer(token_for(marketing_member)).get("/api/v1/costs?format=csv")
    assert_problem(response, 403)


# Chargeback ---------------------------------------------------------------------------------------


def test_the_index_lists_each_cost_center_with_what_its_statement_adds_up_to(finance_approver, march):
    body = bearer(token_for(finance_approver)).get("/api/v1/chargeback", {"month": MONTH}).json()

    assert body["month"] == MONTH
    centers = {center["cost_center"]: center for center in body["cost_centers"]}
    assert list(centers) == ["CC-2100", "CC-3100", "CC-1000"]  # the largest first
    assert centers["CC-2100"]["departments"] == [{"slug": "marketing", "name": "Marketing"}]
    assert centers["CC-2100"]["amount"] == money("8.16")
    assert centers["CC-3100"]["amount"] == money("1.30")
    assert centers["CC-1000"]["budget"] == money("25000.00")


def test_the_statement_is_the_pages_lines_and_csv(
    client_for, finance_approver, march, callers, copy_assistant
):
    client = bearer(token_for(finance_approver))
    page = client_for(finance_approver)

    body = client.get("/api/v1/chargeback/CC-2100", {"month": MONTH}).json()
    as_csv = client.get("/api/v1/chargeback/CC-2100", {"month": MONTH}, headers={"Accept": "text/csv"})

    report = page.get(reverse("reports:chargeback", args=["CC-2100"]), {"month": MONTH}).context["report"]
    page_csv = page.get(reverse("reports:chargeback_export", args=["CC-2100"]), {"month": MONTH})
    assert as_csv.content == page_csv.content
    assert as_csv["Content-Disposition"] == page_csv["Content-Disposition"]
    rows = csv_of(as_csv)
    assert [column["label"] for column in body["columns"]] == rows[0]
    lines = [*body["lines"], {"department": "Total", **body["totals"]}]
    assert [_as_csv_row(line, body["columns"]) for line in lines] == _figures(rows[1:])
    assert [line["amount"]["amount"] for line in body["lines"]] == [
        str(row["amount"]) for row in report.tables["lines"].rows
    ]
    assert body["amount"] == money("8.16") == body["totals"]["amount"]
    assert body["departments"] == [{"slug": "marketing", "name": "Marketing"}]
    assert body["final"] is True
    batch = body["lines"][1]
    assert (batch["caller"], batch["api_key_id"], batch["deployment_id"], batch["department_slug"]) == (
        f"Campaign batch ({callers['batch'].prefix}…)",
        callers["batch"].pk,
        copy_assistant.pk,
        "marketing",
    )


# The document -------------------------------------------------------------------------------------


def test_the_answers_match_the_document(
    anonymous, platform_admin, marketing_member, company_assistant, march
):
    document = anonymous.get("/api/v1/openapi.json").json()
    admin = bearer(token_for(platform_admin))
    DEPARTMENT, DEPLOYMENT = "/api/v1/departments/{slug}/costs", "/api/v1/deployments/{deployment_id}/costs"
    member = bearer(token_for(marketing_member))
    calls = [
        (admin, f"/api/v1/costs?month={MONTH}&group_by={group_by}", "/api/v1/costs")
        for group_by in COMPANY
    ] + [
        (admin, f"/api/v1/departments/marketing/costs?month={MONTH}&group_by=key", DEPARTMENT),
        (admin, f"/api/v1/deployments/{company_assistant.pk}/costs?month={MONTH}", DEPLOYMENT),
        (admin, f"/api/v1/deployments/{company_assistant.pk}/costs?group_by=department", DEPLOYMENT),
        (admin, f"/api/v1/chargeback?month={MONTH}", "/api/v1/chargeback"),
        (admin, f"/api/v1/chargeback/CC-2100?month={MONTH}", "/api/v1/chargeback/{cost_center}"),
        (admin, "/api/v1/chargeback/CC-2100?month=2999-01", "/api/v1/chargeback/{cost_center}"),
        (admin, "/api/v1/costs?group_by=nothing", "/api/v1/costs"),
        (member, "/api/v1/costs", "/api/v1/costs"),
        (anonymous, "/api/v1/chargeback", "/api/v1/chargeback"),
    ]  # fmt: skip
    seen = set()
    for client, url, path in calls:
        response = client.get(url)
        _validate(document, path, "get", response)
        seen.add(response.status_code)
    assert seen == {200, 400, 401, 403, 422}

    csv_answer = document["paths"]["/api/v1/costs"]["get"]["responses"]["200"]["content"]
    assert set(csv_answer) == {"application/json", "text/csv"}
