"""The one cost model, against figures worked out by hand: token pricing, a price change in the
middle of a month, PTU hours over partial days, shared costs split by tokens, and rounding that
adds up."""

from datetime import date
from decimal import Decimal

import pytest

from money.allocation import cost_allocation
from money.amounts import cents
from money.budgets import budget_status, department_spend
from money.models import (
    DailyDeploymentRollup,
    DepartmentUsageRollup,
    MonthlyPersonRollup,
    MonthlyUsageRollup,
    UsageRollup,
)
from money.periods import Period
from money.usage import usage_rollups_rebuild
from provisioning.models import ModelDeployment, Price
from reports.selectors.department import department_report
from reports.selectors.overview import overview_report
from tests.factories import make_department, make_deployment
from tests.reports.conftest import MODEL, at, meter, set_created

pytestmark = pytest.mark.django_db
MARCH = date(2026, 3, 1)


def test_tokens_cost_their_price_with_cached_input_at_the_cached_rate(copy_assistant, marketing):
    record = meter(
        copy_assistant,
        marketing,
        when=at("2026-03-10"),
        input_tokens=1_000_000,
        cached_input_tokens=200_000,
        output_tokens=500_000,
    )

    # 800k uncached x $2 + 200k cached x $1 + 500k output x $8, per million.
    assert record.cost == Decimal("5.80")
    assert department_spend(department=marketing, on=MARCH, now=at("2026-03-31", 23)) == Decimal("5.80")


def test_a_price_change_mid_month_prices_each_call_at_the_price_of_its_day(copy_assistant, marketing):
    Price.objects.create(
        model_name=MODEL,
        model_version="1",
        sku=ModelDeployment.Sku.GLOBAL_STANDARD,
        input_per_million=Decimal("1.00"),
        cached_input_per_million=Decimal("0.50"),
        output_per_million=Decimal("4.00"),
        valid_from=date(2026, 3, 16),
    )
    meter(copy_assistant, marketing, when=at("2026-03-15", 23, 59), input_tokens=1_000_000)
    meter(
        copy_assistant, marketing, when=at("2026-03-16", 0, 1), input_tokens=1_000_000, output_tokens=250_000
    )

    # $2.00 before the change; $1.00 + $1.00 after it.
    assert department_spend(department=marketing, on=MARCH, now=at("2026-03-31", 23)) == Decimal("4.00")
    report = department_report(department=marketing, month=MARCH, now=at("2026-03-31", 23))
    daily = {row["day"]: row["spend"] for row in report.tables["daily"].rows}
    assert daily[date(2026, 3, 15)] == Decimal("2.00")
    assert daily[date(2026, 3, 16)] == Decimal("2.00")


def test_provisioned_capacity_accrues_every_hour_active_over_partial_days(prices, marketing):
    ptu = make_deployment(
        department=marketing,
        display_name="Marketing PTU",
        model_name=MODEL,
        model_version="1",
        sku=ModelDeployment.Sku.PROVISIONED,
        capacity=50,
    )
    set_created(ptu, at("2026-03-10", 13, 30))
    # Calls on a provisioned deployment cost nothing per token: the hours are the cost.
    meter(ptu, marketing, when=at("2026-03-11"), input_tokens=5_000_000, output_tokens=1_000_000)
    now = at("2026-03-12", 6, 0)

    allocation = cost_allocation(period=Period.month(MARCH, now=now))

    # 10.5 h on the 10th, 24 h on the 11th, 6 h on the 12th: 40.5 h x 50 PTU x $3.
    entry = allocation.deployments[ptu.pk]
    assert entry.active_hours == Decimal("40.5")
    assert entry.fixed_cost == Decimal("6075.00")
    assert entry.token_cost == 0
    assert allocation.fixed_daily[(ptu.pk, date(2026, 3, 10))] == Decimal("1575.00")
    assert allocation.fixed_daily[(ptu.pk, date(2026, 3, 12))] == Decimal("900.00")
    assert department_spend(department=marketing, on=MARCH, now=now) == Decimal("6075.00")


def test_a_provisioned_deployment_costs_nothing_after_it_was_decommissioned(prices, marketing):
    ptu = make_deployment(
        department=marketing,
        model_name=MODEL,
        model_version="1",
        sku=ModelDeployment.Sku.PROVISIONED,
        capacity=10,
        state=ModelDeployment.State.DECOMMISSIONED,
    )
    set_created(ptu, at("2026-02-20", 0))
    ModelDeployment.objects.filter(pk=ptu.pk).update(updated_at=at("2026-03-03", 0))

    # Two days of March: 48 h x 10 PTU x $3.
    assert department_spend(department=marketing, on=MARCH, now=at("2026-03-31")) == Decimal("1440.00")


def test_a_shared_deployment_is_split_by_each_departments_share_of_its_tokens(
    company_assistant, marketing, finance, central_it
):
    # Marketing: 300k in + 100k out = 400k tokens, $1.40 metered; Finance: 100k in = 100k tokens, $0.20.
    meter(company_assistant, marketing, when=at("2026-03-05"), input_tokens=300_000, output_tokens=100_000)
    meter(company_assistant, finance, when=at("2026-03-06"), input_tokens=100_000)
    now = at("2026-03-31", 23)

    allocation = cost_allocation(period=Period.month(MARCH, now=now))

    # The whole $1.60 split 80/20 by tokens, not each department's own metered cost.
    assert allocation.shares(company_assistant.pk) == {
        marketing.pk: Decimal("0.8"),
        finance.pk: Decimal("0.2"),
    }
    assert department_spend(department=marketing, on=MARCH, now=now) == Decimal("1.28")
    assert department_spend(department=finance, on=MARCH, now=now) == Decimal("0.32")
    assert department_spend(department=central_it, on=MARCH, now=now) == 0


def test_a_shared_provisioned_deployment_splits_its_hours_and_the_runner_pays_while_nobody_uses_it(
    prices, central_it, marketing, finance
):
    shared_ptu = make_deployment(
        department=central_it,
        model_name=MODEL,
        model_version="1",
        sku=ModelDeployment.Sku.PROVISIONED,
        capacity=10,
        shared_with=[marketing, finance],
    )
    set_created(shared_ptu, at("2026-03-01", 0))
    end_of_first_day = at("2026-03-02", 0)

    # Nobody used it on the 1st: 24 h x 10 PTU x $3 stays with central IT, who runs it.
    assert department_spend(department=central_it, on=MARCH, now=end_of_first_day) == Decimal("720.00")

    meter(shared_ptu, marketing, when=at("2026-03-02", 9), input_tokens=750)
    meter(shared_ptu, finance, when=at("2026-03-02", 10), input_tokens=250)
    end_of_second_day = at("2026-03-03", 0)

    # Now 48 h: $1,440 split 75/25 by tokens.
    assert department_spend(department=marketing, on=MARCH, now=end_of_second_day) == Decimal("1080.00")
    assert department_spend(department=finance, on=MARCH, now=end_of_second_day) == Decimal("360.00")
    assert department_spend(department=central_it, on=MARCH, now=end_of_second_day) == 0


def test_rounded_lines_add_up_to_the_rounded_total():
    third = Decimal(1) / Decimal(3)

    rounded, total = cents([third, third, third])

    assert total == Decimal("1.00")
    assert sum(rounded) == total
    assert sorted(rounded) == [Decimal("0.33"), Decimal("0.33"), Decimal("0.34")]
    assert cents([Decimal("0.005"), Decimal("0.005")]) == (
        [Decimal("0.01"), Decimal("0.00")],
        Decimal("0.01"),
    )


def test_the_report_totals_add_up_to_the_cent_after_a_three_way_split(prices, central_it):
    departments = [make_department(name=f"Team {n}") for n in range(3)]
    shared = make_deployment(
        department=central_it, model_name=MODEL, model_version="1", shared_with=departments
    )
    for department in departments:
        # 166,667 input tokens each: $0.333334 per department, $1.000002 together.
        meter(shared, department, when=at("2026-03-03"), input_tokens=166_667)

    report = overview_report(month=MARCH, now=at("2026-03-31", 23))

    table = report.tables["departments"]
    team_rows = [row for row in table.rows if row["department"].startswith("Team")]
    assert sum(row["spend"] for row in table.rows) == table.totals["spend"] == Decimal("1.00")
    assert sorted(row["spend"] for row in team_rows) == [Decimal("0.33"), Decimal("0.33"), Decimal("0.34")]
    assert report.stats["spend"] == Decimal("1.00")
    assert sum(row["spend"] for row in report.tables["daily"].rows) == Decimal("1.00")
    assert sum(row["spend"] for row in report.tables["cost_centers"].rows) == Decimal("1.00")


def test_the_budget_check_and_the_reports_agree_for_the_same_department_and_moment(
    company_assistant, copy_assistant, marketing, finance, prices
):
    marketing.monthly_budget = Decimal("10.00")
    marketing.save()
    ptu = make_deployment(
        department=marketing,
        model_name=MODEL,
        model_version="1",
        sku=ModelDeployment.Sku.PROVISIONED,
        capacity=1,
    )
    set_created(ptu, at("2026-03-09", 22, 15))
    meter(copy_assistant, marketing, when=at("2026-03-02"), input_tokens=1_234_567, output_tokens=89_012)
    meter(company_assistant, marketing, when=at("2026-03-03"), input_tokens=333_333, output_tokens=7_777)
    meter(company_assistant, finance, when=at("2026-03-04"), input_tokens=98_765, cached_input_tokens=5_000)
    now = at("2026-03-10", 1, 40)

    status = budget_status(department=marketing, now=now)
    page = department_report(department=marketing, month=MARCH, now=now)
    overview = overview_report(month=MARCH, now=now)

    row = next(row for row in overview.tables["departments"].rows if row["department"] == "Marketing")
    assert abs(status.spent - page.allocation.department_total(marketing.pk)) < Decimal("1e-12")
    assert page.stats["spend"] == row["spend"]
    assert abs(page.stats["spend"] - status.spent) < Decimal("0.01")
    assert page.stats["used"] == row["used"]
    assert status.exhausted == (page.stats["used"] >= 100)


def test_rollups_rebuilt_from_the_records_match_the_ones_kept_as_usage_arrived(
    company_assistant, copy_assistant, marketing, finance, marketing_member
):
    meter(copy_assistant, marketing, when=at("2026-03-02", 23, 59), input_tokens=1000, user=marketing_member)
    meter(copy_assistant, marketing, when=at("2026-03-03", 0, 0), input_tokens=2000, user=marketing_member)
    meter(company_assistant, finance, when=at("2026-03-03", 8), input_tokens=500, output_tokens=50)
    meter(company_assistant, finance, when=at("2026-03-03", 9), input_tokens=500, output_tokens=50)
    kept = sorted(
        UsageRollup.objects.values_list("day", "department", "deployment", "user_key", "requests", "cost")
    )
    kept_coarse = sorted(DepartmentUsageRollup.objects.values_list("day", "department", "requests", "cost"))
    kept_by_deployment = sorted(
        DailyDeploymentRollup.objects.values_list("day", "deployment", "requests", "cost")
    )
    kept_monthly = sorted(MonthlyUsageRollup.objects.values_list("month", "department", "deployment", "cost"))
    kept_people = sorted(
        MonthlyPersonRollup.objects.values_list("month", "department", "user_key", "requests")
    )
    for model in [
        UsageRollup,
        DepartmentUsageRollup,
        DailyDeploymentRollup,
        MonthlyUsageRollup,
        MonthlyPersonRollup,
    ]:
        model._default_manager.all().delete()

    usage_rollups_rebuild(first_day=date(2026, 3, 1), last_day=date(2026, 3, 31))

    assert (
        sorted(
            UsageRollup.objects.values_list("day", "department", "deployment", "user_key", "requests", "cost")
        )
        == kept
    )
    assert (
        sorted(DepartmentUsageRollup.objects.values_list("day", "department", "requests", "cost"))
        == kept_coarse
    )
    assert (
        sorted(MonthlyUsageRollup.objects.values_list("month", "department", "deployment", "cost"))
        == kept_monthly
    )
    assert (
        sorted(MonthlyPersonRollup.objects.values_list("month", "department", "user_key", "requests"))
        == kept_people
    )
    assert (
        sorted(DailyDeploymentRollup.objects.values_list("day", "deployment", "requests", "cost"))
        == kept_by_deployment
    )
    assert len(kept) == 3
    assert len(kept_people) == 2
