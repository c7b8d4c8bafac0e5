"""The cost pages as their readers meet them: who may open which, what they say, and CSV
downloads that add up to the page."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from org.models import Membership
from tests.factories import make_user
from tests.reports.conftest import at, meter

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(copy_assistant, company_assistant, marketing, finance, marketing_member):
    """This month and last: Marketing on its own assistant and the shared one, Finance on the shared one."""
    today = timezone.localdate()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=3)
    for when in [at(today.replace(day=1), 9), at(last_month, 9)]:
        meter(
            copy_assistant,
            marketing,
            when=when,
            input_tokens=400_000,
            output_tokens=120_000,
            user=marketing_member,
        )
        meter(
            company_assistant,
            marketing,
            when=when,
            input_tokens=90_000,
            output_tokens=10_000,
            user=marketing_member,
        )
        meter(company_assistant, finance, when=when, input_tokens=250_000, output_tokens=33_333)
    return last_month.replace(day=1)


def csv_rows(response) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_sign_in_comes_first(client, marketing):
    for url in [
        reverse("reports:overview"),
        reverse("reports:department", args=[marketing.slug]),
        reverse("reports:chargeback", args=[marketing.cost_center]),
        reverse("reports:reconciliation"),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_the_overview_is_for_admins_and_finance(
    client_for, marketing_member, marketing_lead, finance_approver, platform_admin, usage
):
    assert client_for(marketing_member).get(reverse("reports:overview")).status_code == 403
    assert client_for(marketing_lead).get(reverse("reports:overview")).status_code == 403
    for reader in [finance_approver, platform_admin]:
        response = client_for(reader).get(reverse("reports:overview"), {"month": f"{usage:%Y-%m}"})
        assert response.status_code == 200
        page = response.content.decode()
        assert f"{usage:%B %Y}" in page
        assert "Marketing" in page
        assert "Finance" in page
        assert 'id="daily-chart"' in page


def test_a_lead_sees_only_their_own_department(
    client_for, marketing, finance, marketing_lead, finance_lead, marketing_member, usage
):
    lead = client_for(marketing_lead)
    response = lead.get(reverse("reports:department", args=[marketing.slug]))
    assert response.status_code == 200
    assert "Marketing" in response.content.decode()
    assert "Budget burn-down" in response.content.decode()
    assert lead.get(reverse("reports:department", args=[finance.slug])).status_code == 404
    assert (
        client_for(finance_lead).get(reverse("reports:department", args=[marketing.slug])).status_code == 404
    )
    assert (
        client_for(marketing_member).get(reverse("reports:department", args=[marketing.slug])).status_code
        == 403
    )


def test_finance_and_admins_see_every_department(
    client_for, marketing, finance, finance_approver, platform_admin, usage
):
    for reader in [finance_approver, platform_admin]:
        for department in [marketing, finance]:
            assert (
                client_for(reader).get(reverse("reports:department", args=[department.slug])).status_code
                == 200
            )


def test_the_deployment_page_follows_the_deployment_pages_access(
    client_for,
    copy_assistant,
    company_assistant,
    marketing_lead,
    finance_lead,
    marketing_member,
    finance_approver,
    usage,
):
    url = reverse("reports:deployment", args=[copy_assistant.pk])
    assert client_for(marketing_member).get(url).status_code == 403
    assert client_for(finance_lead).get(url).status_code == 404
    response = client_for(marketing_lead).get(url)
    assert response.status_code == 200
    assert "Usage and cost per day" in response.content.decode()
    shared = client_for(finance_lead).get(reverse("reports:deployment", args=[company_assistant.pk]))
    assert shared.status_code == 200
    assert client_for(finance_approver).get(url).status_code == 200


def test_chargeback_statements_are_for_admins_and_finance(
    client_for, marketing, marketing_lead, finance_approver, usage
):
    url = reverse("reports:chargeback", args=[marketing.cost_center])
    assert client_for(marketing_lead).get(url).status_code == 403
    assert (
        client_for(finance_approver).get(reverse("reports:chargeback", args=["CC-0000"])).status_code == 404
    )
    response = client_for(finance_approver).get(url, {"month": f"{usage:%Y-%m}"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Marketing copy assistant" in page
    assert "Company assistant" in page
    assert "Print statement" in page


def test_reconciliation_is_for_admins_and_finance(client_for, marketing_lead, finance_approver):
    assert client_for(marketing_lead).get(reverse("reports:reconciliation")).status_code == 403
    response = client_for(finance_approver).get(reverse("reports:reconciliation"))
    assert response.status_code == 200
    assert "Not reconciled yet" in response.content.decode()
    assert client_for(finance_approver).post(reverse("reports:reconciliation_run")).status_code == 403


def test_every_overview_table_downloads_as_csv_and_adds_up_to_the_page(client_for, platform_admin, usage):
    admin = client_for(platform_admin)
    month = {"month": f"{usage:%Y-%m}"}
    page = admin.get(reverse("reports:overview"), month)
    report = page.context["report"]

    for name, table in report.tables.items():
        response = admin.get(table.csv_url)
        assert response.status_code == 200, name
        rows = csv_rows(response)
        assert [column.label for column in table.columns] == list(rows[0].keys())
        lines = rows[:-1] if table.totals else rows
        # The page shows the top lines of the long tables; the CSV has every line.
        assert len(lines) >= len(table.rows), name
        for column in table.columns:
            if column.kind != "money" or not table.totals:
                continue
            csv_total = Decimal(rows[-1][column.label])
            assert sum(Decimal(row[column.label]) for row in lines) == csv_total, (name, column.key)
            assert csv_total == table.totals[column.key], (name, column.key)

    departments = csv_rows(admin.get(report.tables["departments"].csv_url))
    total = departments[-1]
    assert total["Department"] == "Total"
    assert Decimal(total["Spend (USD)"]) == report.stats["spend"]
    assert f"${report.stats['spend']:,.2f}" in page.content.decode()
    daily = csv_rows(admin.get(report.tables["daily"].csv_url))
    assert sum(Decimal(row["Spend (USD)"]) for row in daily[:-1]) == report.stats["spend"]


def test_the_department_csv_matches_its_page_and_the_overview(
    client_for, marketing, marketing_lead, platform_admin, usage
):
    month = {"month": f"{usage:%Y-%m}"}
    page = client_for(marketing_lead).get(reverse("reports:department", args=[marketing.slug]), month)
    report = page.context["report"]
    rows = csv_rows(client_for(marketing_lead).get(report.tables["deployments"].csv_url))
    charged = sum(Decimal(row["Charged (USD)"]) for row in rows[:-1])
    assert charged == Decimal(rows[-1]["Charged (USD)"]) == report.stats["spend"]
    assert f"${report.stats['spend']:,.2f}" in page.content.decode()
    overview = client_for(platform_admin).get(reverse("reports:overview"), month).context["report"]
    marketing_row = next(
        row for row in overview.tables["departments"].rows if row["department"] == "Marketing"
    )
    assert marketing_row["spend"] == report.stats["spend"]


def test_a_chargeback_statement_lists_each_line_and_its_csv_sums_to_the_statement(
    client_for, marketing, finance_approver, usage
):
    url = reverse("reports:chargeback", args=[marketing.cost_center])
    statement = client_for(finance_approver).get(url, {"month": f"{usage:%Y-%m}"}).context["report"]
    rows = csv_rows(
        client_for(finance_approver).get(
            reverse("reports:chargeback_export", args=[marketing.cost_center]), {"month": f"{usage:%Y-%m}"}
        )
    )

    lines = rows[:-1]
    assert [row["Department"] for row in lines] == ["Marketing", "Marketing"]
    assert any("dedicated" in row["Charged for"] for row in lines)
    assert any("of the shared service's tokens" in row["Charged for"] for row in lines)
    assert (
        sum(Decimal(row["Amount (USD)"]) for row in lines)
        == Decimal(rows[-1]["Amount (USD)"])
        == statement.stats["amount"]
    )


def test_a_lead_of_two_departments_sees_both_but_no_other(client_for, marketing, finance, usage):
    from tests.factories import make_department

    hr = make_department(name="HR")
    both = make_user(department=marketing, role=Membership.Role.LEAD)
    Membership.objects.create(user=both, department=hr, role=Membership.Role.LEAD)
    client = client_for(both)
    assert client.get(reverse("reports:department", args=[hr.slug])).status_code == 200
    assert client.get(reverse("reports:department", args=[marketing.slug])).status_code == 200
    assert client.get(reverse("reports:department", args=[finance.slug])).status_code == 404


def test_the_navigation_offers_costs_to_those_who_may_read_them(
    client_for, marketing, marketing_lead, marketing_member, finance_approver
):
    assert ">Costs<" in client_for(finance_approver).get(reverse("home")).content.decode()
    lead_home = client_for(marketing_lead).get(reverse("home")).content.decode()
    assert f'href="{reverse("reports:department", args=[marketing.slug])}"' in lead_home
    assert ">Costs<" not in client_for(marketing_member).get(reverse("home")).content.decode()


def test_a_lead_reads_other_departments_share_of_a_shared_service_without_their_names(
    client_for, company_assistant, finance_lead, finance_approver, usage
):
    url = reverse("reports:deployment", args=[company_assistant.pk])
    month = {"month": f"{usage:%Y-%m}"}

    split = client_for(finance_lead).get(url, month).context["report"].tables["split"]

    assert [row["department"] for row in split.rows] == ["Finance", "1 other department"]
    everyone = client_for(finance_approver).get(url, month).context["report"].tables["split"]
    assert sorted(row["department"] for row in everyone.rows) == ["Finance", "Marketing"]
    assert split.totals["total"] == everyone.totals["total"]


def test_the_pages_ask_the_database_as_often_with_ten_times_the_data(
    client_for, platform_admin, marketing_lead, marketing, prices, central_it, usage
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import make_department, make_deployment
    from tests.reports.conftest import MODEL

    def queries(client, url) -> int:
        client.get(url)  # sessions and caches settle on the first request
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    admin, lead = client_for(platform_admin), client_for(marketing_lead)
    overview, department = reverse("reports:overview"), reverse("reports:department", args=[marketing.slug])
    before = (queries(admin, overview), queries(lead, department))

    teams = [make_department(name=f"Team {n}") for n in range(10)]
    shared = make_deployment(
        department=central_it, model_name=MODEL, model_version="1", shared_with=[*teams, marketing]
    )
    for team in teams:
        own = make_deployment(department=team, model_name=MODEL, model_version="1")
        for day in range(1, 4):
            when = at(timezone.localdate().replace(day=day), 10)
            meter(own, team, when=when, input_tokens=10_000, user=make_user(department=team))
            meter(shared, team, when=when, input_tokens=5_000)
            meter(shared, marketing, when=when, input_tokens=1_000)

    assert (queries(admin, overview), queries(lead, department)) == before
