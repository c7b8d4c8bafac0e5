"""Applications' calls through the gateway in the cost pages: every page, CSV and chargeback
statement splits the spend between the chat and the API, with the API calls by key and service
principal, and the split adds up to the figures the budget check uses.

The month (March 2026, gpt-test at $2 input and $8 output per 1M tokens):
- Marketing's own copy assistant: the chat $1.76 (400k in, 120k out); the key "Campaign batch"
  $4.00 (1M in, 250k out); the revoked key "Old importer" $1.00 (500k in); a person's own Entra ID
  token $0.10 (50k in).
- Central IT's shared Company assistant, 1M tokens costing $2.60: Marketing's chat 100k tokens
  ($0.20 metered), Marketing's service principal "Web shop" 400k ($1.40), Finance's key
  "Forecasts" 500k ($1.00). Each pays its share of the tokens at $2.60 per million: Marketing
  $0.26 chat + $1.04 API, Finance $1.30 API.
Marketing: chat $2.02, API $6.14, spend $8.16. Finance: API $1.30. Company: chat $2.02, API $7.44.
"""

import csv
import io
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse

from gateway.models import ApiKey, ServicePrincipal
from money.amounts import cents
from money.budgets import budget_status
from money.models import (
    DailyDeploymentRollup,
    DepartmentUsageRollup,
    MonthlyCallerRollup,
    MonthlyPersonRollup,
    MonthlyUsageRollup,
    UsageCounters,
    UsageRecord,
    UsageRollup,
)
from money.usage import (
    usage_record_correct,
    usage_record_create,
    usage_rollup_add,
    usage_rollups_batched,
    usage_rollups_rebuild,
)
from org.models import Department, User
from provisioning.models import ModelDeployment
from tests.chat.conftest import chat_emulator, copywriter, lena, zone  # noqa: F401  (fixtures)
from tests.factories import make_deployment
from tests.reports.conftest import MODEL, at, set_created

pytestmark = pytest.mark.django_db
MARCH = date(2026, 3, 1)
MONTH = {"month": "2026-03"}
END_OF_MARCH = at("2026-03-31", 23, 59)
API, CHAT = UsageRecord.Source.API, UsageRecord.Source.CHAT


def make_key(department: Department, name: str, *, revoked: bool = False) -> ApiKey:
    number = ApiKey.objects.count() + 1
    return ApiKey.objects.create(
        department=department,
        name=name,
        prefix=f"sy-test{number:04d}",
        secret_hash=f"{number:064x}",
        expires_at=at("2026-12-31"),
        revoked_at=at("2026-03-20") if revoked else None,
    )


def call(
    deployment: ModelDeployment,
    department: Department,
    *,
    day: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    source: str = API,
    user: User | None = None,
    key: ApiKey | None = None,
    principal: ServicePrincipal | None = None,
) -> UsageRecord:
    """One call, metered as the chat or the gateway meters it."""
    return usage_record_create(
        department=department,
        user=user,
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=0,
        output_tokens=output_tokens,
        source=source,
        at=at(day, 10),
        api_key_id=key.pk if key else None,
        principal_id=principal.pk if principal else None,
    )


@pytest.fixture
def callers(marketing, finance) -> dict[str, object]:
    return {
        "batch": make_key(marketing, "Campaign batch"),
        "importer": make_key(marketing, "Old importer", revoked=True),
        "forecasts": make_key(finance, "Forecasts"),
        "shop": ServicePrincipal.objects.create(
            department=marketing, name="Web shop", object_id=uuid.UUID(int=42)
        ),
    }


@pytest.fixture
def march(copy_assistant, company_assistant, marketing, finance, marketing_member, callers):
    call(
        copy_assistant,
        marketing,
        day="2026-03-02",
        input_tokens=400_000,
        output_tokens=120_000,
        source=CHAT,
        user=marketing_member,
    )
    call(
        copy_assistant,
        marketing,
        day="2026-03-03",
        input_tokens=600_000,
        output_tokens=150_000,
        key=callers["batch"],
    )
    call(
        copy_assistant,
        marketing,
        day="2026-03-17",
        input_tokens=400_000,
        output_tokens=100_000,
        key=callers["batch"],
    )
    call(copy_assistant, marketing, day="2026-03-10", input_tokens=500_000, key=callers["importer"])
    call(copy_assistant, marketing, day="2026-03-11", input_tokens=50_000, user=marketing_member)
    call(
        company_assistant,
        marketing,
        day="2026-03-04",
        input_tokens=100_000,
        source=CHAT,
        user=marketing_member,
    )
    call(
        company_assistant,
        marketing,
        day="2026-03-05",
        input_tokens=300_000,
        output_tokens=100_000,
        principal=callers["shop"],
    )
    call(company_assistant, finance, day="2026-03-06", input_tokens=500_000, key=callers["forecasts"])
    return MARCH  # fmt: skip


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def by_first_column(table) -> dict[str, dict[str, Any]]:
    key = table.columns[0].key
    return {row[key]: row for row in table.rows}


# The rollup -------------------------------------------------------------------------------------


def caller_rollups() -> list[tuple[Any, ...]]:
    return sorted(
        MonthlyCallerRollup.objects.values_list(
            "month", "department", "deployment", "source", "api_key_key", "principal_key",
            "requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost",
        )
    )  # fmt: skip


def test_each_call_lands_in_its_callers_monthly_row_chat_with_no_caller(
    march, copy_assistant, marketing, callers
):
    rows = {(row[3], row[4], row[5], row[2]): row[6:] for row in caller_rollups()}

    batch = (API, callers["batch"].pk, 0, copy_assistant.pk)
    assert rows[batch] == (2, 1_000_000, 0, 250_000, Decimal("4.0000000000"))
    assert rows[(CHAT, 0, 0, copy_assistant.pk)][0] == 1
    assert rows[(API, 0, 0, copy_assistant.pk)][0] == 1  # the person's own token
    assert (API, 0, callers["shop"].pk) in {key[:3] for key in rows}
    # Every record once, and nothing else: the caller rows add up to the month's rollup.
    assert sum(row[0] for row in rows.values()) == UsageRecord.objects.count() == 8
    assert sum(row[4] for row in rows.values()) == sum(
        MonthlyUsageRollup.objects.values_list("cost", flat=True)
    )


def test_every_rollup_upsert_conflicts_on_its_tables_unique_key():
    """The upsert names each rollup's key by hand: a constraint changed without it would make
    every call fail (or, worse, add into the wrong rows)."""
    from django.db.models import UniqueConstraint

    from money.usage import ROLLUP_KEYS

    for model, keys in ROLLUP_KEYS.items():
        [unique] = [c for c in model._meta.constraints if isinstance(c, UniqueConstraint)]
        columns = [field.attname for field in model._meta.concrete_fields if field.name in unique.fields]
        assert sorted(columns) == sorted(keys), model.__name__
    assert set(ROLLUP_KEYS) == {model for model in UsageCounters.__subclasses__()}


def test_a_correction_moves_the_callers_row_by_the_difference(copy_assistant, marketing, callers):
    record = usage_record_create(
        department=marketing,
        user=None,
        deployment=copy_assistant,
        input_tokens=1_000,
        cached_input_tokens=0,
        output_tokens=4_000,
        source=API,
        at=at("2026-03-08"),
        api_key_id=callers["batch"].pk,
        estimated=True,
    )

    usage_record_correct(record=record, input_tokens=1_000, cached_input_tokens=0, output_tokens=1_000)

    [row] = MonthlyCallerRollup.objects.all()
    assert (row.api_key_key, row.requests, row.output_tokens) == (callers["batch"].pk, 1, 1_000)
    assert row.cost == Decimal("0.010")  # 1k x $2 + 1k x $8 per million


def test_a_rebuild_gives_the_rollups_the_incremental_upsert_kept(march):
    rollups: list[type[UsageCounters]] = [
        UsageRollup,
        DepartmentUsageRollup,
        DailyDeploymentRollup,
        MonthlyUsageRollup,
        MonthlyPersonRollup,
    ]
    kept = {model: sorted(model._default_manager.values_list(*counters_of(model))) for model in rollups}
    kept_callers = caller_rollups()
    everything: list[type[UsageCounters]] = [*rollups, MonthlyCallerRollup]
    for model in everything:
        model._default_manager.all().delete()

    # A range inside the month rebuilds the whole month's monthly rows, callers' too.
    usage_rollups_rebuild(first_day=date(2026, 3, 1), last_day=date(2026, 3, 5))
    usage_rollups_rebuild(first_day=date(2026, 3, 6), last_day=date(2026, 3, 31))

    assert caller_rollups() == kept_callers
    for model in rollups:
        assert sorted(model._default_manager.values_list(*counters_of(model))) == kept[model], model.__name__


def test_a_batch_of_records_adds_to_the_rollups_what_one_at_a_time_did(march):
    """The gateway settles calls in batches, whose rollups go in one upsert per table: records
    with the same keys (the key "Campaign batch" twice in March) are summed before it."""
    everything: list[type[UsageCounters]] = [
        UsageRollup,
        DepartmentUsageRollup,
        DailyDeploymentRollup,
        MonthlyUsageRollup,
        MonthlyPersonRollup,
        MonthlyCallerRollup,
    ]
    kept = {model: sorted(model._default_manager.values_list(*counters_of(model))) for model in everything}
    for model in everything:
        model._default_manager.all().delete()
    records = list(UsageRecord.objects.order_by("-created_at"))

    with transaction.atomic(), usage_rollups_batched():
        for record in records:
            usage_rollup_add(record=record)
        # Nothing is written until the batch ends.
        assert not UsageRollup.objects.exists()

    for model in everything:
        assert sorted(model._default_manager.values_list(*counters_of(model))) == kept[model], model.__name__


def test_a_batch_that_fails_adds_nothing(march):
    before = sorted(MonthlyUsageRollup.objects.values_list("requests", "cost"))

    def settle_and_fail() -> None:
        with transaction.atomic(), usage_rollups_batched():
            usage_rollup_add(record=UsageRecord.objects.order_by("created_at")[0])
            raise RuntimeError("the settlement failed")

    with pytest.raises(RuntimeError):
        settle_and_fail()

    assert sorted(MonthlyUsageRollup.objects.values_list("requests", "cost")) == before


def counters_of(model) -> list[str]:
    return [
        field.attname
        for field in model._meta.concrete_fields
        if not field.primary_key
    ]  # fmt: skip


def test_the_rebuild_command_rolls_up_callers_of_imported_records(march, callers):
    from django.core.management import call_command

    kept = caller_rollups()
    MonthlyCallerRollup.objects.all().delete()

    call_command("rebuild_usage_rollups", stdout=io.StringIO())

    assert caller_rollups() == kept


# The pages --------------------------------------------------------------------------------------


def test_the_department_page_splits_chat_and_api_and_lists_every_key_with_the_revoked_one(
    client_for, marketing, marketing_lead, march, callers
):
    response = client_for(marketing_lead).get(reverse("reports:department", args=[marketing.slug]), MONTH)

    report = response.context["report"]
    sources = by_first_column(report.tables["sources"])
    assert sources["Chat"]["total"] == Decimal("2.02")
    assert sources["API"]["total"] == Decimal("6.14")
    assert sources["API"]["requests"] == 5
    assert report.tables["sources"].totals["total"] == report.stats["spend"] == Decimal("8.16")
    keys = by_first_column(report.tables["callers"])
    assert (keys["Campaign batch"]["requests"], keys["Campaign batch"]["tokens"]) == (2, 1_250_000)
    assert keys["Campaign batch"]["total"] == Decimal("4.00")
    assert keys["Campaign batch"]["identifier"] == f"{callers['batch'].prefix}…"
    assert keys["Campaign batch"]["kind"] == "API key"
    assert (keys["Old importer"]["kind"], keys["Old importer"]["total"]) == (
        "API key, revoked",
        Decimal("1.00"),
    )
    assert keys["Web shop"]["kind"] == "Service principal"
    assert keys["Web shop"]["identifier"] == str(uuid.UUID(int=42))
    assert keys["Web shop"]["total"] == Decimal("1.04")
    assert keys["People's own Entra ID tokens"]["total"] == Decimal("0.10")
    assert report.tables["callers"].totals["total"] == Decimal("6.14")
    page = response.content.decode()
    assert 'id="department-api">$6.14<' in page
    assert "API key, revoked" in page
    assert callers["batch"].prefix in page
    assert "Forecasts" not in page  # Finance's key


def test_the_people_table_keeps_people_and_puts_keyed_calls_without_a_person(
    client_for, marketing, marketing_lead, marketing_member, march
):
    report = (
        client_for(marketing_lead)
        .get(reverse("reports:department", args=[marketing.slug]), MONTH)
        .context["report"]
    )

    people = by_first_column(report.tables["users"])
    assert set(people) == {marketing_member.email, "Without a person (API)"}
    assert people[marketing_member.email]["requests"] == 3  # two chats and a call with their own token
    assert people["Without a person (API)"]["requests"] == 4


def test_the_department_figures_are_the_budget_checks(client_for, marketing, marketing_lead, march):
    status = budget_status(department=marketing, on=MARCH, now=END_OF_MARCH)
    report = (
        client_for(marketing_lead)
        .get(reverse("reports:department", args=[marketing.slug]), MONTH)
        .context["report"]
    )

    assert cents([status.spent])[1] == report.stats["spend"] == Decimal("8.16")
    assert sum(row["total"] for row in report.tables["sources"].rows) == report.stats["spend"]
    assert report.tables["deployments"].totals["total"] == report.stats["spend"]


def test_the_overview_splits_the_company_and_names_each_departments_callers(
    client_for, platform_admin, march
):
    report = client_for(platform_admin).get(reverse("reports:overview"), MONTH).context["report"]

    sources = by_first_column(report.tables["sources"])
    assert (sources["Chat"]["total"], sources["API"]["total"]) == (Decimal("2.02"), Decimal("7.44"))
    assert (sources["Chat"]["tokens"], sources["API"]["tokens"]) == (620_000, 2_700_000)
    assert report.tables["sources"].totals["total"] == report.stats["spend"] == Decimal("9.46")
    assert report.stats["api"] == Decimal("7.44")
    callers = by_first_column(report.tables["callers"])
    assert callers["Forecasts"]["department"] == "Finance"
    assert callers["Forecasts"]["total"] == Decimal("1.30")
    assert callers["Campaign batch"]["department"] == "Marketing"
    assert report.tables["callers"].totals["total"] == Decimal("7.44")


def test_the_deployment_page_splits_chat_and_api_and_hides_other_departments_callers_from_a_lead(
    client_for, company_assistant, finance_lead, finance_approver, march
):
    url = reverse("reports:deployment", args=[company_assistant.pk])

    report = client_for(finance_lead).get(url, MONTH).context["report"]

    sources = by_first_column(report.tables["sources"])
    # The whole deployment, at its cost per token: 100k chat tokens, 900k API tokens of $2.60.
    assert (sources["Chat"]["total"], sources["API"]["total"]) == (Decimal("0.26"), Decimal("2.34"))
    assert report.tables["sources"].totals["total"] == report.stats["spend"] == Decimal("2.60")
    callers = [(row["caller"], row["total"]) for row in report.tables["callers"].rows]
    assert callers == [("Forecasts", Decimal("1.30")), ("Other departments' callers", Decimal("1.04"))]
    everyone = client_for(finance_approver).get(url, MONTH).context["report"].tables["callers"]
    assert sorted(row["caller"] for row in everyone.rows) == ["Forecasts", "Web shop"]


def test_a_dedicated_deployment_charges_each_caller_its_metered_tokens(
    client_for, copy_assistant, marketing_lead, march
):
    report = (
        client_for(marketing_lead)
        .get(reverse("reports:deployment", args=[copy_assistant.pk]), MONTH)
        .context["report"]
    )

    sources = by_first_column(report.tables["sources"])
    assert (sources["Chat"]["total"], sources["API"]["total"]) == (Decimal("1.76"), Decimal("5.10"))
    assert sources["API"]["share"] == Decimal("77.6")  # 1.8M of 2.32M tokens
    assert report.stats["api_requests"] == 4


def test_the_chargeback_statement_has_a_line_per_caller_adding_up_to_the_department(
    client_for, marketing, finance_approver, march, callers
):
    statement = client_for(finance_approver).get(
        reverse("reports:chargeback", args=[marketing.cost_center]), MONTH
    )
    rows = csv_rows(
        client_for(finance_approver).get(
            reverse("reports:chargeback_export", args=[marketing.cost_center]), MONTH
        )
    )

    lines = [(row["Source"], row["Caller"], row["Amount (USD)"]) for row in rows[:-1]]
    assert lines == [
        ("Chat", "", "1.76"),
        ("API", f"Campaign batch ({callers['batch'].prefix}…)", "4.00"),
        ("API", f"Old importer ({callers['importer'].prefix}…)", "1.00"),
        ("API", "People's own Entra ID tokens", "0.10"),
        ("Chat", "", "0.26"),
        ("API", "Web shop", "1.04"),
    ]
    assert all(row["Department"] == "Marketing" for row in rows[:-1])
    assert "Marketing copy assistant" in rows[0]["Charged for"]
    assert "50.0% of the shared service's tokens" in rows[-2]["Charged for"]
    total = rows[-1]
    assert total["Department"] == "Total"
    assert Decimal(total["Amount (USD)"]) == statement.context["report"].stats["amount"] == Decimal("8.16")
    assert sum(Decimal(row["Tokens (USD)"]) for row in rows[:-1]) == Decimal(total["Tokens (USD)"])
    assert "Campaign batch" in statement.content.decode()


@pytest.mark.parametrize(
    ("page", "tables"),
    [
        ("overview", ["sources", "callers"]),
        ("department", ["sources", "callers"]),
        ("deployment", ["sources", "callers"]),
    ],
)
def test_the_api_tables_download_as_csv_and_add_up_to_the_page(
    client_for, platform_admin, marketing, company_assistant, march, page, tables
):
    args = {"overview": [], "department": [marketing.slug], "deployment": [company_assistant.pk]}[page]
    admin = client_for(platform_admin)
    report = admin.get(reverse(f"reports:{page}", args=args), MONTH).context["report"]

    for name in tables:
        table = report.tables[name]
        rows = csv_rows(admin.get(table.csv_url))
        assert list(rows[0]) == [column.label for column in table.columns]
        labels = {column.key: column.label for column in table.columns}
        assert [row[labels[table.columns[0].key]] for row in rows[:-1]] == [
            str(row[table.columns[0].key]) for row in table.rows
        ]
        money_label = labels["total"]
        assert sum(Decimal(row[money_label]) for row in rows[:-1]) == Decimal(rows[-1][money_label])
        assert Decimal(rows[-1][money_label]) == table.totals["total"]


def test_the_api_csvs_walk_the_ladder(
    client, client_for, marketing, marketing_member, marketing_lead, finance_lead, march
):
    url = reverse("reports:department_export", args=[marketing.slug, "callers"]) + "?month=2026-03"

    assert client.get(url).status_code == 302
    assert client_for(finance_lead).get(url).status_code == 404
    assert client_for(marketing_member).get(url).status_code == 403
    rows = csv_rows(client_for(marketing_lead).get(url))
    assert {row["Caller"] for row in rows[:-1]} == {
        "Campaign batch",
        "Old importer",
        "Web shop",
        "People's own Entra ID tokens",
    }
    overview = reverse("reports:overview_export", args=["callers"]) + "?month=2026-03"
    assert client_for(marketing_lead).get(overview).status_code == 403


def test_the_overview_shows_the_top_callers_and_sums_the_rest_which_its_csv_lists(
    client_for, platform_admin, copy_assistant, marketing
):
    keys = [make_key(marketing, f"Service {number:02d}") for number in range(12)]
    ApiKey.objects.filter(pk=keys[0].pk).update(expires_at=at("2026-03-20"))
    ApiKey.objects.filter(pk=keys[1].pk).update(grace_until=at("2026-03-20"))
    ApiKey.objects.filter(pk=keys[2].pk).update(grace_until=END_OF_MARCH + timedelta(days=3650))
    for number, key in enumerate(keys):
        call(copy_assistant, marketing, day="2026-03-09", input_tokens=100_000 * (number + 1), key=key)
    admin = client_for(platform_admin)

    table = admin.get(reverse("reports:overview"), MONTH).context["report"].tables["callers"]

    assert [row["caller"] for row in table.rows] == [
        *[f"Service {number:02d}" for number in range(11, 1, -1)],
        "2 more callers",
    ]
    rows = csv_rows(admin.get(table.csv_url))
    kinds = {row["Caller"]: row["Kind"] for row in rows[:-1]}
    assert len(kinds) == 12
    assert (kinds["Service 00"], kinds["Service 01"], kinds["Service 02"]) == (
        "API key, expired",
        "API key, replaced",
        "API key, being replaced",
    )
    assert Decimal(rows[-1]["Charged (USD)"]) == table.totals["total"] == Decimal("15.60")  # 7.8M x $2


# Provisioned hours ------------------------------------------------------------------------------


def test_provisioned_hours_go_to_the_callers_by_tokens_and_unused_ones_stand_alone(
    client_for, prices, marketing, finance, finance_approver, callers
):
    """Marketing's PTU deployment (2 PTU, $3 per PTU-hour, tokens free) runs all of 31 March: $144,
    used by the chat (300k tokens) and a key (100k); Finance's (1 PTU) runs the same day without a
    call: $72."""
    used = make_deployment(
        department=marketing, model_name=MODEL, model_version="1", sku=ModelDeployment.Sku.PROVISIONED,
        capacity=2,
    )  # fmt: skip
    idle = make_deployment(
        department=finance, model_name=MODEL, model_version="1", sku=ModelDeployment.Sku.PROVISIONED,
        capacity=1,
    )  # fmt: skip
    for deployment in [used, idle]:
        set_created(deployment, at("2026-03-31", 0))
    call(used, marketing, day="2026-03-31", input_tokens=300_000, source=CHAT)
    call(used, marketing, day="2026-03-31", input_tokens=100_000, key=callers["batch"])
    admin = client_for(finance_approver)

    marketing_page = admin.get(reverse("reports:department", args=[marketing.slug]), MONTH)
    finance_page = admin.get(reverse("reports:department", args=[finance.slug]), MONTH)

    sources = by_first_column(marketing_page.context["report"].tables["sources"])
    assert (sources["Chat"]["fixed_cost"], sources["Chat"]["total"]) == (Decimal("108.00"), Decimal("108.00"))
    assert (sources["API"]["fixed_cost"], sources["API"]["total"]) == (Decimal("36.00"), Decimal("36.00"))
    idle_sources = finance_page.context["report"].tables["sources"]
    assert [(row["source"], row["total"]) for row in idle_sources.rows] == [
        ("Provisioned hours without calls", Decimal("72.00"))
    ]
    assert idle_sources.totals["total"] == finance_page.context["report"].stats["spend"]
    statement = csv_rows(admin.get(reverse("reports:chargeback_export", args=[finance.cost_center]), MONTH))
    assert [(row["Source"], row["Amount (USD)"]) for row in statement[:-1]] == [
        ("Provisioned hours without calls", "72.00")
    ]


# Usage metered before the caller rollup ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_usage_metered_before_the_caller_rollup_is_rolled_up_by_the_migration(prices, marketing):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)

    deployment = make_deployment(department=marketing, model_name=MODEL, model_version="1")
    migrate([("money", "0003_gateway_callers")])
    for day, source in [("2026-02-27", CHAT), ("2026-03-02", CHAT), ("2026-03-03", API)]:
        # As the release before wrote them: records only, the caller rollup left empty.
        UsageRecord.objects.create(
            department=marketing,
            deployment=deployment,
            input_tokens=1_000,
            output_tokens=500,
            cost=Decimal("0.006"),
            source=source,
            created_at=at(day),
        )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert [row[3:8] for row in caller_rollups()] == [
        (CHAT, 0, 0, 1, 1_000),
        (API, 0, 0, 1, 1_000),
        (CHAT, 0, 0, 1, 1_000),
    ]
    assert [row[0] for row in caller_rollups()] == [date(2026, 2, 1), date(2026, 3, 1), date(2026, 3, 1)]


# Reconciliation ---------------------------------------------------------------------------------


def test_api_calls_are_metered_for_their_account_as_azure_bills_them(copywriter, marketing):  # noqa: F811
    """An application's call (served by the emulator, metered on a key) counts in its account's
    metered cost just as a chat call does: metered and billed still agree."""
    from django.utils import timezone
    from openai import AzureOpenAI

    from provisioning.azure import data_plane_token_provider
    from reports.reconciliation import reconciliation_run

    client = AzureOpenAI(
        azure_endpoint=copywriter.account.endpoint,
        api_version="2025-04-01-preview",
        azure_ad_token_provider=data_plane_token_provider(),
    )
    for _ in range(2):
        answer = client.chat.completions.create(
            model=copywriter.name, messages=[{"role": "user", "content": "A tagline for tea"}], max_tokens=60
        )
        usage_record_create(
            department=marketing,
            user=None,
            deployment=copywriter,
            input_tokens=answer.usage.prompt_tokens,
            cached_input_tokens=0,
            output_tokens=answer.usage.completion_tokens,
            source=API,
            api_key_id=make_key(marketing, "Tagline service").pk,
        )

    [line] = reconciliation_run(month=timezone.localdate().replace(day=1))

    assert line.metered == sum(record.cost for record in UsageRecord.objects.filter(source=API)) > 0
    assert abs(line.billed - line.metered) < Decimal("0.000001")
    assert not line.flagged
