"""Catalog and quota synced from Azure (the emulator, through the official SDK), shipped prices,
the price in force, and the admin pages for the Azure estate."""

from datetime import date
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from org.models import PlatformGroup
from provisioning import catalog
from provisioning.catalog import (
    catalog_offers,
    catalog_sync,
    catalog_sync_all,
    price_in_force,
    prices_load_shipped,
    quota_left,
)
from provisioning.models import (
    AccessGrant,
    CatalogEntry,
    LandingZone,
    ModelDeployment,
    OpenAIAccount,
    Price,
    ProvisioningOperation,
    Quota,
)
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_user

OTHER_SUBSCRIPTION = "99999999-8888-7777-6666-555555555555"
SHIPPED_PRICES = 24  # 21 token rows + 3 provisioned pools in provisioning/data/prices.json


@pytest.fixture
def zone(db) -> LandingZone:
    return LandingZone.objects.create(
        name="Central IT shared",
        slug="central",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central-ai",
        allowed_regions=["swedencentral", "japaneast"],
    )


@pytest.fixture
def fast_retries(monkeypatch):
    """The SDK still retries a 500, but without azure-core's growing backoff between tries."""
    monkeypatch.setattr(catalog, "SYNC_RETRY_OPTIONS", {"retry_total": 2, "retry_backoff_factor": 0.01})


def offers(region: str, **filters) -> set[tuple[str, str, str]]:
    return set(
        CatalogEntry.objects.filter(region=region, **filters).values_list(
            "model_name", "model_version", "sku"
        )
    )


def set_quota(emulator, *, location: str, usage_name: str, limit: float) -> None:
    response = requests.put(
        f"{emulator.url}/_emulator/quotas",
        json={"location": location, "usageName": usage_name, "limit": limit},
        timeout=10,
    )
    assert response.status_code == 200, response.text


# Sync -----------------------------------------------------------------------------------------


def test_sync_mirrors_what_each_region_offers(emulator, zone):
    result = catalog_sync(landing_zone=zone)

    assert result.failures == []
    assert result.regions == ["swedencentral", "japaneast"]
    assert result.entries == CatalogEntry.objects.count() > 0
    for region in ("swedencentral", "japaneast"):
        assert ("gpt-4o-mini", "2024-07-18", "GlobalStandard") in offers(region)
    assert offers("swedencentral", sku="DataZoneStandard")
    assert not offers("japaneast", sku="DataZoneStandard")  # Japan is in no data zone

    mini = CatalogEntry.objects.get(
        region="swedencentral", model_name="gpt-4o-mini", model_version="2024-07-18", sku="GlobalStandard"
    )
    assert mini.usage_name == "OpenAI.GlobalStandard.gpt-4o-mini"
    assert (mini.capacity_minimum, mini.capacity_step, mini.capacity_default) == (1, 1, 10)
    assert mini.capacity_maximum == 1_000_000
    assert mini.is_default_version
    assert mini.lifecycle_status == "GenerallyAvailable"
    assert mini.retirement_date is not None
    assert mini.retirement_date.date() == date(2026, 3, 31)
    assert mini.requests_per_minute_per_unit is not None

    ptu = CatalogEntry.objects.get(
        region="swedencentral", model_name="gpt-4o", model_version="2024-08-06", sku="ProvisionedManaged"
    )
    assert (ptu.capacity_minimum, ptu.capacity_step, ptu.capacity_maximum) == (50, 50, 30000)
    assert ptu.usage_name == "OpenAI.ProvisionedManaged"
    assert ptu.requests_per_minute_per_unit is None  # Azure gives provisioned SKUs no rate limits

    # gpt-4o 2024-11-20 GlobalStandard: 1 request per 10 s per unit.
    gpt4o = CatalogEntry.objects.get(
        region="swedencentral", model_name="gpt-4o", model_version="2024-11-20", sku="GlobalStandard"
    )
    assert gpt4o.requests_per_minute_per_unit == Decimal("6.00")
    assert not gpt4o.is_default_version

    for region in ("swedencentral", "japaneast"):
        quota = Quota.objects.get(
            subscription_id=SUBSCRIPTION, region=region, usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
        )
        assert quota.limit == Decimal(2000)
        assert quota.current_value == 0
        assert quota.display_name
    assert result.quotas == Quota.objects.count()


def test_second_sync_changes_nothing(emulator, zone):
    first = catalog_sync(landing_zone=zone)
    entries, quotas = CatalogEntry.objects.count(), Quota.objects.count()

    second = catalog_sync(landing_zone=zone)

    assert (second.entries, second.quotas, second.entries_removed) == (first.entries, first.quotas, 0)
    assert (CatalogEntry.objects.count(), Quota.objects.count()) == (entries, quotas)


def test_quota_change_on_azure_shows_after_the_next_sync(emulator, zone):
    catalog_sync(landing_zone=zone)
    assert quota_left(
        subscription_id=SUBSCRIPTION, region="swedencentral", usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
    ) == Decimal(2000)

    set_quota(emulator, location="swedencentral", usage_name="OpenAI.GlobalStandard.gpt-4o-mini", limit=30)
    catalog_sync(landing_zone=zone)

    left = quota_left(
        subscription_id=SUBSCRIPTION, region="swedencentral", usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
    )
    assert left == Decimal(30)
    assert quota_left(
        subscription_id=SUBSCRIPTION, region="japaneast", usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
    ) == Decimal(2000)
    assert (
        quota_left(subscription_id=SUBSCRIPTION, region="eastus2", usage_name="OpenAI.Standard.gpt-4o")
        is None
    )


def test_quota_left_counts_what_deployments_use(emulator, cognitive, zone):
    from tests.emulator.fixtures import RESOURCE_GROUP, keyless_account, model_deployment

    cognitive.accounts.begin_create(RESOURCE_GROUP, "oai-quota", keyless_account("oai-quota")).result()
    cognitive.deployments.begin_create_or_update(
        RESOURCE_GROUP, "oai-quota", "mini", model_deployment(capacity=120)
    ).result()

    catalog_sync(landing_zone=zone)

    assert quota_left(
        subscription_id=SUBSCRIPTION, region="swedencentral", usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
    ) == Decimal(1880)


def test_offers_azure_no_longer_lists_are_removed(emulator, zone):
    catalog_sync(landing_zone=zone)
    synced = CatalogEntry.objects.get(
        region="japaneast", model_name="gpt-4o-mini", model_version="2024-07-18", sku="GlobalStandard"
    )
    CatalogEntry.objects.create(
        region="japaneast",
        model_name="gpt-35-turbo",
        model_version="0613",
        sku="Standard",
        usage_name="OpenAI.Standard.gpt-35-turbo",
        synced_at=synced.synced_at,
    )
    elsewhere = CatalogEntry.objects.create(
        region="westeurope",  # not one of the zone's regions: this sync does not judge it
        model_name="gpt-35-turbo",
        model_version="0613",
        sku="Standard",
        usage_name="OpenAI.Standard.gpt-35-turbo",
        synced_at=synced.synced_at,
    )

    result = catalog_sync(landing_zone=zone)

    assert result.entries_removed == 1
    assert "removed 1" in result.summary()
    assert not CatalogEntry.objects.filter(region="japaneast", model_name="gpt-35-turbo").exists()
    assert CatalogEntry.objects.filter(pk=elsewhere.pk).exists()
    assert CatalogEntry.objects.filter(pk=synced.pk).exists()  # updated in place, not replaced


def test_a_failing_region_keeps_its_rows_and_does_not_stop_the_others(emulator, zone, fast_retries):
    catalog_sync(landing_zone=zone)
    sweden_before = offers("swedencentral")
    set_quota(emulator, location="japaneast", usage_name="OpenAI.GlobalStandard.gpt-4o-mini", limit=700)
    # swedencentral is synced first: it takes the first try and both SDK retries, then gives up.
    emulator.inject(operation="models.list", kind="500", count=3)

    result = catalog_sync(landing_zone=zone)

    assert result.failed_regions == ["swedencentral"]
    assert result.regions == ["japaneast"]
    assert "InternalServerError" in result.failures[0].message
    assert "swedencentral" in result.summary()
    assert offers("swedencentral") == sweden_before
    assert Quota.objects.get(
        subscription_id=SUBSCRIPTION, region="japaneast", usage_name="OpenAI.GlobalStandard.gpt-4o-mini"
    ).limit == Decimal(700)


def test_a_transient_error_is_retried_by_the_sdk(emulator, zone, fast_retries):
    emulator.inject(operation="models.list", kind="500", count=2)

    result = catalog_sync(landing_zone=zone)

    assert result.failures == []
    assert offers("swedencentral")
    assert offers("japaneast")
    assert requests.get(emulator.control_url + "/", timeout=10).json()["faults"] == []  # both were served


def test_an_unknown_region_is_named_in_the_result(emulator, db):
    zone = LandingZone.objects.create(
        name="Typo",
        slug="typo",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-typo",
        allowed_regions=["sweden-central", "japaneast"],
    )

    result = catalog_sync(landing_zone=zone)

    assert result.failed_regions == ["sweden-central"]
    assert "LocationNotFound" in result.failures[0].message
    assert offers("japaneast")


def test_sync_all_covers_every_zone_and_each_subscriptions_quota(emulator, zone):
    LandingZone.objects.create(
        name="Marketing's own",
        slug="marketing",
        subscription_id=OTHER_SUBSCRIPTION,
        resource_group="rg-marketing-ai",
        allowed_regions=["swedencentral", "westeurope"],
    )
    LandingZone.objects.create(
        name="Central IT, second group",
        slug="central-2",
        subscription_id=SUBSCRIPTION,
        resource_group="rg-central-ai-2",
        allowed_regions=["japaneast"],
    )

    result = catalog_sync_all()

    assert result.failures == []
    assert set(CatalogEntry.objects.values_list("region", flat=True)) == {
        "swedencentral",
        "japaneast",
        "westeurope",
    }
    assert set(Quota.objects.values_list("subscription_id", "region").distinct()) == {
        (SUBSCRIPTION, "swedencentral"),
        (SUBSCRIPTION, "japaneast"),
        (OTHER_SUBSCRIPTION, "swedencentral"),
        (OTHER_SUBSCRIPTION, "westeurope"),
    }
    # Each region's catalog once, however many subscriptions allow it.
    assert result.entries == CatalogEntry.objects.count()


def test_offers_can_leave_out_retired_models(emulator, zone):
    catalog_sync(landing_zone=zone)
    CatalogEntry.objects.update(retirement_date="2020-01-01T00:00:00Z")
    CatalogEntry.objects.filter(model_name="gpt-4o", model_version="2024-11-20").update(
        retirement_date="2099-01-01T00:00:00Z"
    )

    every = set(catalog_offers(regions=["swedencentral"]).values_list("model_name", "model_version"))
    current = set(
        catalog_offers(regions=["swedencentral"], exclude_retired=True).values_list(
            "model_name", "model_version"
        )
    )

    assert ("gpt-4o", "2024-08-06") in every
    assert current == {("gpt-4o", "2024-11-20")}
    assert not catalog_offers(regions=["eastus2"]).exists()


# Prices ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_load_prices_loads_the_shipped_table_once(capsys):
    Price.objects.all().delete()  # the data migration loaded them already

    call_command("load_prices")
    assert Price.objects.count() == SHIPPED_PRICES
    assert f"{SHIPPED_PRICES} created" in capsys.readouterr().out

    call_command("load_prices")
    assert Price.objects.count() == SHIPPED_PRICES
    assert f"0 created, 0 updated, {SHIPPED_PRICES} unchanged" in capsys.readouterr().out

    mini = Price.objects.get(model_name="gpt-4o-mini", model_version="2024-07-18", sku="GlobalStandard")
    assert (mini.input_per_million, mini.cached_input_per_million, mini.output_per_million) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.60"),
    )
    assert mini.valid_from == date(2025, 11, 5)
    pool = Price.objects.get(model_name="", model_version="", sku="ProvisionedManaged")
    assert pool.ptu_per_hour == Decimal("2.00")
    assert pool.input_per_million == 0
    assert all(
        source for source in Price.objects.values_list("source", flat=True)
    )  # every figure says where it is from


@pytest.mark.django_db
def test_the_data_migration_shipped_the_prices():
    assert Price.objects.filter(valid_from=date(2025, 11, 5)).count() == SHIPPED_PRICES


@pytest.mark.django_db
def test_reloading_restores_a_changed_figure_of_the_shipped_start():
    Price.objects.filter(model_name="gpt-4o-mini", sku="GlobalStandard").update(input_per_million=Decimal(9))

    loaded = prices_load_shipped()

    assert (loaded.created, loaded.updated) == (0, 1)
    assert Price.objects.get(model_name="gpt-4o-mini", sku="GlobalStandard").input_per_million == Decimal(
        "0.15"
    )


@pytest.mark.django_db
def test_price_in_force_is_the_latest_start_not_after_the_day():
    def mini_price(valid_from: date, input_per_million: str) -> Price:
        return Price.objects.create(
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            sku="GlobalStandard",
            input_per_million=Decimal(input_per_million),
            valid_from=valid_from,
        )

    mini_price(date(2026, 1, 1), "0.12")
    mini_price(date(2026, 6, 1), "0.10")

    def input_on(day: date) -> Decimal | None:
        price = price_in_force(
            model_name="gpt-4o-mini", model_version="2024-07-18", sku="GlobalStandard", on=day
        )
        return price.input_per_million if price else None

    assert input_on(date(2025, 11, 4)) is None  # before any price
    assert input_on(date(2025, 11, 5)) == Decimal("0.15")  # shipped
    assert input_on(date(2025, 12, 31)) == Decimal("0.15")
    assert input_on(date(2026, 1, 1)) == Decimal("0.12")
    assert input_on(date(2026, 5, 31)) == Decimal("0.12")
    assert input_on(date(2026, 6, 1)) == Decimal("0.10")


@pytest.mark.django_db
def test_provisioned_price_falls_back_to_the_pool_row():
    pool = price_in_force(
        model_name="gpt-4o", model_version="2024-08-06", sku="ProvisionedManaged", on=date(2026, 1, 1)
    )
    assert pool is not None
    assert pool.model_name == ""
    assert pool.ptu_per_hour == Decimal("2.00")

    Price.objects.create(
        model_name="gpt-4o",
        sku="ProvisionedManaged",
        ptu_per_hour=Decimal("2.50"),
        valid_from=date(2025, 12, 1),
    )
    specific = price_in_force(
        model_name="gpt-4o", model_version="2024-08-06", sku="ProvisionedManaged", on=date(2026, 1, 1)
    )
    assert specific is not None
    assert specific.ptu_per_hour == Decimal("2.50")
    assert (
        price_in_force(
            model_name="gpt-4o-mini",
            model_version="2024-07-18",
            sku="ProvisionedManaged",
            on=date(2026, 1, 1),
        )
        == pool
    )
    assert (
        price_in_force(model_name="gpt-4o", model_version="2024-08-06", sku="Nope", on=date(2026, 1, 1))
        is None
    )


# Admin ----------------------------------------------------------------------------------------

ADMIN_MODELS = [
    LandingZone,
    OpenAIAccount,
    ModelDeployment,
    AccessGrant,
    CatalogEntry,
    Quota,
    Price,
    ProvisioningOperation,
]


def changelist(model) -> str:
    return reverse(f"admin:provisioning_{model._meta.model_name}_changelist")


def test_platform_admin_syncs_a_zone_from_its_admin_page(emulator, zone, client_for):
    admin = make_user(email="it-admin@example.com", platform_group=PlatformGroup.ADMINS)

    response = client_for(admin).post(
        changelist(LandingZone),
        {"action": "sync_from_azure", "_selected_action": [zone.pk]},
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Central IT shared: Synced" in page
    assert "quotas in swedencentral, japaneast" in page
    assert CatalogEntry.objects.filter(region="japaneast").exists()


def test_admin_action_says_which_region_failed(emulator, zone, client_for, fast_retries):
    admin = make_user(email="it-admin@example.com", platform_group=PlatformGroup.ADMINS)
    emulator.inject(operation="usages.list", kind="500", count=3)

    response = client_for(admin).post(
        changelist(LandingZone), {"action": "sync_from_azure", "_selected_action": [zone.pk]}, follow=True
    )

    page = response.content.decode()
    assert "Not synced: swedencentral (InternalServerError" in page
    assert "quotas in japaneast" in page


@pytest.fixture
def estate(zone, marketing):
    """One of each row, so every change list and change page renders real data."""
    account = OpenAIAccount.objects.create(
        landing_zone=zone,
        region="swedencentral",
        name="oai-central-swedencentral-pub-abc123",
        custom_subdomain="oai-central-swedencentral-pub-abc123",
        state=OpenAIAccount.State.ACTIVE,
        drift={"extra": ["rogue"]},
    )
    deployment = ModelDeployment.objects.create(
        department=marketing,
        scope=ModelDeployment.Scope.SHARED,
        display_name="Company assistant",
        landing_zone=zone,
        region="swedencentral",
        account=account,
        name="company-assistant",
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        capacity=20,
        state=ModelDeployment.State.ACTIVE,
    )
    AccessGrant.objects.create(deployment=deployment, department=marketing)
    ProvisioningOperation.objects.create(
        deployment=deployment, step=ProvisioningOperation.Step.ENSURE_ACCOUNT
    )
    CatalogEntry.objects.create(
        region="swedencentral",
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        usage_name="OpenAI.GlobalStandard.gpt-4o-mini",
        synced_at=timezone.now(),
    )
    Quota.objects.create(
        subscription_id=SUBSCRIPTION,
        region="swedencentral",
        usage_name="OpenAI.GlobalStandard.gpt-4o-mini",
        current_value=Decimal(20),
        limit=Decimal(2000),
        synced_at=timezone.now(),
    )
    return deployment


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda model: model.__name__)
def test_admin_pages_open_for_platform_admins_only(
    model, estate, platform_admin, marketing_member, client_for
):
    url = changelist(model)

    assert client_for(platform_admin).get(url).status_code == 200
    assert client_for(marketing_member).get(url).status_code in (302, 403)

    row = model.objects.first()
    change = reverse(f"admin:provisioning_{model._meta.model_name}_change", args=[row.pk])
    assert client_for(platform_admin).get(change).status_code == 200


def test_deployment_page_shows_the_operation_log_and_grants(estate, platform_admin, client_for):
    page = (
        client_for(platform_admin)
        .get(reverse("admin:provisioning_modeldeployment_change", args=[estate.pk]))
        .content.decode()
    )

    assert "Ensure account" in page
    assert "Marketing" in page


def test_azure_rows_are_read_only_in_admin(estate, platform_admin, client_for):
    client = client_for(platform_admin)

    assert client.get(reverse("admin:provisioning_catalogentry_add")).status_code == 403
    assert client.get(reverse("admin:provisioning_modeldeployment_add")).status_code == 403
    assert client.get(reverse("admin:provisioning_price_add")).status_code == 200
    response = client.post(
        reverse("admin:provisioning_modeldeployment_change", args=[estate.pk]),
        {
            "display_name": "Company assistant v2",
            "department": estate.department_id,
            "scope": "shared",
            "system_prompt": "",
            "capacity": 999,
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "1",
            "grants-0-id": estate.grants.get().pk,
            "grants-0-deployment": estate.pk,
            "grants-0-department": estate.department_id,
            "operations-TOTAL_FORMS": "1",
            "operations-INITIAL_FORMS": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    estate.refresh_from_db()
    assert estate.display_name == "Company assistant v2"
    assert estate.capacity == 20  # capacity changes go through a request and the engine
