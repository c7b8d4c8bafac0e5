"""A landing zone's search service in the cost model, worked out by hand: its hours at the SKU's
rate land on the zone's embeddings deployment and are split, day by day, by what each
department's data sets store; embedding tokens are each department's own."""

from datetime import date
from decimal import Decimal

import pytest

from money.allocation import cost_allocation
from money.budgets import department_spend
from money.models import UsageRecord
from money.periods import Period
from money.search_costs import SEARCH_HOURLY_USD, data_set_search_cost
from provisioning.models import ModelDeployment, Price, SearchService, SearchStorage
from reports.selectors.chargeback import chargeback_statement
from reports.selectors.deployment import deployment_report
from tests.factories import make_department, make_deployment, make_landing_zone
from tests.reports.conftest import at, meter, set_created

pytestmark = pytest.mark.django_db
MARCH = date(2026, 3, 1)
RATE = SEARCH_HOURLY_USD["basic"]


@pytest.fixture
def platform(db):
    return make_department(name="Platform")


@pytest.fixture
def hr(db):
    return make_department(name="HR")


@pytest.fixture
def zone(db):
    return make_landing_zone(name="Central")


@pytest.fixture
def embeddings(platform, zone):
    Price.objects.create(
        model_name="text-embedding-3-small",
        model_version="1",
        sku=ModelDeployment.Sku.GLOBAL_STANDARD,
        input_per_million=Decimal("0.02"),
        valid_from=date(2026, 1, 1),
    )
    deployment = make_deployment(
        department=platform,
        display_name="Document search (Central)",
        scope=ModelDeployment.Scope.SHARED,
        landing_zone=zone,
        model_name="text-embedding-3-small",
        model_version="1",
    )
    return set_created(deployment, at("2026-02-01"))


@pytest.fixture
def search(zone, embeddings):
    return SearchService.objects.create(
        landing_zone=zone,
        name="srch-central",
        location="swedencentral",
        sku="basic",
        embeddings_deployment=embeddings,
        state=SearchService.State.ACTIVE,
        # Running from the 1st of March at midnight: whole days from then on.
        provisioned_at=Period.start_of(MARCH),
    )


def store(search, department, data_set_id, day, size):
    SearchStorage.objects.create(
        service=search, department=department, data_set_id=data_set_id, day=day, stored_bytes=size
    )


def fixed_of(allocation, department, deployment):
    charges = allocation.department_charges(department.pk)
    return sum((c.fixed_cost for c in charges if c.deployment_id == deployment.pk), Decimal(0))


def test_the_hours_are_split_by_what_each_department_stores_that_day(search, embeddings, marketing, hr):
    # 1-10 March: Marketing alone (3 MB); from the 11th HR adds 1 MB (Marketing 3/4, HR 1/4).
    store(search, marketing, 1, date(2026, 3, 1), 3_000_000)
    store(search, hr, 2, date(2026, 3, 11), 1_000_000)
    allocation = cost_allocation(period=Period.month(MARCH, now=at("2026-03-21", 0, 0)))

    day = 24 * RATE
    assert fixed_of(allocation, marketing, embeddings) == 10 * day + 10 * day * 3 / 4
    assert fixed_of(allocation, hr, embeddings) == 10 * day / 4
    assert allocation.deployments[embeddings.pk].fixed_cost == 20 * day


def test_a_department_pays_its_share_even_in_a_month_it_embedded_nothing(search, embeddings, marketing, hr):
    # Snapshots from February stand for March: a quiet month still splits.
    store(search, marketing, 1, date(2026, 2, 20), 1_000_000)
    store(search, hr, 2, date(2026, 2, 25), 1_000_000)
    now = at("2026-03-03", 0, 0)

    alone = cost_allocation(period=Period.month(MARCH, now=now), department=hr)
    everyone = cost_allocation(period=Period.month(MARCH, now=now))

    assert fixed_of(alone, hr, embeddings) == fixed_of(everyone, hr, embeddings) == 2 * 24 * RATE / 2
    assert department_spend(department=hr, on=MARCH, now=now) == 2 * 24 * RATE / 2


def test_while_nothing_is_stored_the_running_department_carries_the_service(search, embeddings, platform):
    allocation = cost_allocation(period=Period.month(MARCH, now=at("2026-03-02", 0, 0)))

    assert fixed_of(allocation, platform, embeddings) == 24 * RATE


def test_embedding_tokens_are_each_departments_own_beside_the_search_share(search, embeddings, marketing, hr):
    store(search, marketing, 1, date(2026, 3, 1), 1_000_000)
    meter(embeddings, marketing, when=at("2026-03-01", 10), input_tokens=2_000_000)
    meter(embeddings, hr, when=at("2026-03-01", 11), input_tokens=1_000_000)
    UsageRecord.objects.update(source=UsageRecord.Source.INGESTION)

    allocation = cost_allocation(period=Period.month(MARCH, now=at("2026-03-02", 0, 0)))
    by_department = {c.department_id: c for c in allocation.deployment_charges(embeddings.pk)}

    assert by_department[marketing.pk].token_cost == Decimal("0.04")
    assert by_department[hr.pk].token_cost == Decimal("0.02")
    assert by_department[marketing.pk].fixed_cost == 24 * RATE
    assert by_department[hr.pk].fixed_cost == 0


def test_the_chargeback_and_the_deployment_page_show_the_search_hours(search, embeddings, marketing):
    store(search, marketing, 1, date(2026, 3, 1), 1_000_000)
    now = at("2026-03-03", 0, 0)

    report = deployment_report(deployment=embeddings, month=MARCH, now=now)
    daily = report.tables["daily"].rows
    statement = chargeback_statement(cost_center=marketing.cost_center, month=MARCH, now=now)

    # Two whole days of a Basic service, rounded once over the month.
    assert sum(row["fixed_cost"] for row in daily) == (48 * RATE).quantize(Decimal("0.01"))
    assert "Hourly charges (USD)" in [column.label for column in report.tables["daily"].columns]
    [line] = [row for row in statement.tables["lines"].rows if row["deployment_id"] == embeddings.pk]
    assert line["fixed_cost"] == (48 * RATE).quantize(Decimal("0.01"))
    assert "100.0% of the search service's hours by the documents its data sets store" in line["description"]


def test_no_search_service_means_no_search_charge(embeddings, marketing):
    allocation = cost_allocation(period=Period.month(MARCH, now=at("2026-03-03", 0, 0)))

    assert embeddings.pk not in allocation.deployments


def test_a_data_set_page_gives_its_share_of_the_search_service(search, embeddings, zone, marketing, hr):
    store(search, marketing, 1, date(2026, 3, 1), 3_000_000)
    store(search, hr, 2, date(2026, 3, 1), 1_000_000)
    period = Period.month(MARCH, now=at("2026-03-03", 0, 0))

    def share(data_set_id, landing_zone):
        return data_set_search_cost(data_set_id=data_set_id, landing_zone_id=landing_zone.pk, period=period)

    assert share(1, zone) == 2 * 24 * RATE * 3 / 4
    assert share(2, zone) == 2 * 24 * RATE / 4
    assert share(3, zone) == 0
    assert share(1, make_landing_zone(name="Elsewhere")) is None
