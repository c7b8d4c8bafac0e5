"""The catalog through the API, as the request form shows it: for those who may ask for a
deployment, the offers, regions and quota of their departments' landing zones (every zone for
platform admins), and the prices in force on a day."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from provisioning.models import CatalogEntry, ModelDeployment, Price, Quota
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.factories import make_landing_zone, make_offer

Sku = ModelDeployment.Sku
PATHS = [
    "/api/v1/catalog/models",
    "/api/v1/catalog/regions",
    "/api/v1/catalog/quotas",
    "/api/v1/catalog/prices",
]
SCOPED_PATHS = PATHS[:3]


@pytest.fixture
def marketing_zone(marketing):
    zone = make_landing_zone(
        name="Marketing subscription",
        slug="mkt",
        owner_department=marketing,
        allowed_regions=["swedencentral", "westeurope"],
    )
    make_offer(region="swedencentral", subscription_id=zone.subscription_id, quota_left=100)
    make_offer(region="swedencentral", sku=Sku.STANDARD, subscription_id=zone.subscription_id, quota_left=30)
    make_offer(
        region="westeurope",
        model_name="gpt-4o",
        model_version="2024-08-06",
        subscription_id=zone.subscription_id,
    )
    return zone


@pytest.fixture
def finance_zone(finance):
    zone = make_landing_zone(
        name="Finance subscription", slug="fin", owner_department=finance, allowed_regions=["eastus2"]
    )
    make_offer(region="eastus2", subscription_id=zone.subscription_id, quota_left=7)
    return zone


@pytest.fixture
def catalog(marketing_zone, finance_zone):
    return marketing_zone, finance_zone


# The ladder --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_anonymous_gets_a_401(anonymous, catalog, path):
    assert_problem(anonymous.get(path), 401)


@pytest.mark.parametrize("path", SCOPED_PATHS)
def test_another_departments_lead_gets_a_404_for_its_zone(api_as, finance_lead, catalog, path):
    assert_problem(api_as(finance_lead).get(f"{path}?department=marketing"), 404)


@pytest.mark.parametrize("path", PATHS)
def test_a_plain_member_gets_a_403(api_as, marketing_member, catalog, path):
    body = assert_problem(api_as(marketing_member).get(path), 403)
    assert "leads" in body["detail"]


def test_a_finance_approver_asks_for_no_deployments_so_gets_a_403(finance_approver, catalog):
    client = bearer(token_for(finance_approver))
    for path in PATHS:
        assert_problem(client.get(path), 403)


@pytest.mark.parametrize("path", PATHS)
def test_a_lead_reads_the_catalog(api_as, marketing_lead, catalog, path):
    client = api_as(marketing_lead)
    assert client.get(path).status_code == 200
    if path in SCOPED_PATHS:
        assert client.get(f"{path}?department=marketing").status_code == 200


# Offers ------------------------------------------------------------------------------------------


def _offers(client, query: str = "") -> list[tuple[str, str, str]]:
    response = client.get(f"/api/v1/catalog/models?{query}")
    assert response.status_code == 200, response.content
    return [(o["region"], o["model_name"], o["sku"]) for o in response.json()["items"]]


def test_a_lead_sees_the_offers_of_their_landing_zones_regions(marketing_lead, catalog):
    assert sorted(_offers(bearer(token_for(marketing_lead)))) == [
        ("swedencentral", "gpt-4o-mini", "GlobalStandard"),
        ("swedencentral", "gpt-4o-mini", "Standard"),
        ("westeurope", "gpt-4o", "GlobalStandard"),
    ]


def test_a_platform_admin_sees_every_zones_offers_or_one_departments(platform_admin, catalog):
    client = bearer(token_for(platform_admin))

    assert len(_offers(client)) == 4
    assert [region for region, _, _ in _offers(client, "department=finance")] == ["eastus2"]


def test_an_offer_with_its_lifecycle_and_capacity(marketing_lead, catalog):
    CatalogEntry.objects.filter(model_name="gpt-4o").update(
        lifecycle_status="GenerallyAvailable",
        is_default_version=True,
        retirement_date=timezone.now() - timedelta(days=1),
        max_context_tokens=128_000,
        max_output_tokens=16_384,
        requests_per_minute_per_unit=Decimal("6.00"),
    )

    [offer] = bearer(token_for(marketing_lead)).get("/api/v1/catalog/models?model=gpt-4o").json()["items"]

    assert (offer["model_version"], offer["region_label"], offer["data_zone"]) == (
        "2024-08-06",
        "West Europe",
        "EU",
    )
    assert offer["usage_name"] == "OpenAI.GlobalStandard.gpt-4o"
    assert (offer["lifecycle_status"], offer["is_default_version"], offer["retired"]) == (
        "GenerallyAvailable",
        True,
        True,
    )
    assert offer["capacity"] == {"unit": "K TPM", "minimum": 1, "maximum": 500, "step": 1, "default": 10}
    assert (offer["max_context_tokens"], offer["max_output_tokens"]) == (128_000, 16_384)
    assert offer["requests_per_minute_per_unit"] == "6"


def test_offers_filter_sort_and_page(marketing_lead, catalog):
    make_offer(region="swedencentral", sku=Sku.PROVISIONED, minimum=50, step=50)
    CatalogEntry.objects.filter(model_name="gpt-4o").update(
        retirement_date=timezone.now() - timedelta(days=1)
    )
    client = bearer(token_for(marketing_lead))

    assert _offers(client, "region=westeurope") == [("westeurope", "gpt-4o", "GlobalStandard")]
    assert _offers(client, "sku=ProvisionedManaged") == [
        ("swedencentral", "gpt-4o-mini", "ProvisionedManaged")
    ]
    assert ("westeurope", "gpt-4o", "GlobalStandard") not in _offers(client, "current_only=true")
    assert next(model for _, model, _ in _offers(client, "sort=-model_name")) == "gpt-4o-mini"
    first = client.get("/api/v1/catalog/models?sort=region&limit=3").json()
    rest = client.get(f"/api/v1/catalog/models?sort=region&limit=3&cursor={first['next_cursor']}").json()
    regions = [o["region"] for o in first["items"] + rest["items"]]
    assert regions == sorted(regions)
    assert len(regions) == 4
    assert rest["next_cursor"] is None
    provisioned = client.get("/api/v1/catalog/models?sku=ProvisionedManaged").json()["items"][0]
    assert provisioned["capacity"]["unit"] == "PTU"
    assert_problem(client.get(f"/api/v1/catalog/models?sort=sku&cursor={first['next_cursor']}"), 400)


def test_bad_catalog_filters_are_422_problems(platform_admin):
    client = bearer(token_for(platform_admin))

    body = assert_problem(
        client.get("/api/v1/catalog/models?region=Sweden%20Central&sku=Premium&sort=id"), 422
    )
    assert {"region", "sku", "sort"} <= body["errors"].keys()
    assert_problem(client.get("/api/v1/catalog/quotas?department=no%00pe"), 422)
    assert_problem(client.get("/api/v1/catalog/prices?on=2026-02-30"), 422)
    assert_problem(client.get("/api/v1/catalog/prices?on=0"), 422)


# Regions -----------------------------------------------------------------------------------------


def test_regions_with_their_names_and_data_zones(marketing_lead, platform_admin, catalog):
    make_landing_zone(name="Asia", allowed_regions=["japaneast", "swedencentral"])

    own = bearer(token_for(marketing_lead)).get("/api/v1/catalog/regions").json()
    every = bearer(token_for(platform_admin)).get("/api/v1/catalog/regions").json()

    assert own == [
        {"name": "swedencentral", "label": "Sweden Central", "data_zone": "EU", "offers": 2},
        {"name": "westeurope", "label": "West Europe", "data_zone": "EU", "offers": 1},
    ]
    assert [(r["name"], r["data_zone"], r["offers"]) for r in every] == [
        ("swedencentral", "EU", 2),
        ("westeurope", "EU", 1),
        ("eastus2", "US", 1),
        ("japaneast", None, 0),
    ]


def test_a_department_without_a_zone_of_its_own_deploys_into_central_its(marketing_lead):
    make_landing_zone(name="Central IT", allowed_regions=["francecentral"])

    regions = bearer(token_for(marketing_lead)).get("/api/v1/catalog/regions").json()

    assert [(r["name"], r["label"]) for r in regions] == [("francecentral", "France Central")]


# Quota -------------------------------------------------------------------------------------------


def test_a_lead_sees_the_quota_left_in_their_subscription(marketing_lead, catalog):
    marketing_zone, _ = catalog
    Quota.objects.filter(usage_name="OpenAI.Standard.gpt-4o-mini").update(current_value=Decimal("12.5"))

    items = bearer(token_for(marketing_lead)).get("/api/v1/catalog/quotas").json()["items"]

    assert [(q["region"], q["usage_name"], q["used"], q["limit"], q["left"]) for q in items] == [
        ("westeurope", "OpenAI.GlobalStandard.gpt-4o", "0", "100", "100"),
        ("swedencentral", "OpenAI.GlobalStandard.gpt-4o-mini", "0", "100", "100"),
        ("swedencentral", "OpenAI.Standard.gpt-4o-mini", "12.5", "30", "17.5"),
    ]
    assert {q["subscription_id"] for q in items} == {marketing_zone.subscription_id}
    assert items[0]["landing_zones"] == ["mkt"]


def test_quota_filters(platform_admin, catalog):
    client = bearer(token_for(platform_admin))

    def names(query: str) -> list[tuple[str, str]]:
        response = client.get(f"/api/v1/catalog/quotas?{query}")
        assert response.status_code == 200, response.content
        return [(q["region"], q["usage_name"]) for q in response.json()["items"]]

    assert names("department=finance") == [("eastus2", "OpenAI.GlobalStandard.gpt-4o-mini")]
    assert names("sku=Standard") == [("swedencentral", "OpenAI.Standard.gpt-4o-mini")]
    assert names("model=gpt-4o") == [("westeurope", "OpenAI.GlobalStandard.gpt-4o")]
    assert names("region=eastus2&sort=-usage_name") == [("eastus2", "OpenAI.GlobalStandard.gpt-4o-mini")]
    assert len(names("")) == 4


# Prices ------------------------------------------------------------------------------------------


@pytest.fixture
def prices(db):
    """Prices of a made-up model beside the shipped table: a cut on 1 March 2026, and a PTU pool."""
    for valid_from, input_price in [(date(2025, 1, 1), "0.15"), (date(2026, 3, 1), "0.1")]:
        Price.objects.create(
            model_name="gpt-test",
            model_version="1",
            sku=Sku.GLOBAL_STANDARD,
            input_per_million=Decimal(input_price),
            cached_input_per_million=Decimal("0.075"),
            output_per_million=Decimal("0.6"),
            valid_from=valid_from,
            source="Test sheet",
        )


def test_the_prices_in_force_on_a_day(marketing_lead, prices):
    client = bearer(token_for(marketing_lead))

    before = client.get("/api/v1/catalog/prices?model=gpt-test&on=2026-02-28").json()["items"]
    after = client.get("/api/v1/catalog/prices?model=gpt-test&on=2026-03-01&sku=GlobalStandard").json()[
        "items"
    ]

    tokens = [p for p in before if p["model_name"] == "gpt-test"]
    assert [(p["valid_from"], p["input_per_million"]) for p in tokens] == [
        ("2025-01-01", {"amount": "0.15", "currency": "USD"})
    ]
    assert tokens[0]["cached_input_per_million"] == {"amount": "0.075", "currency": "USD"}
    assert tokens[0]["output_per_million"] == {"amount": "0.60", "currency": "USD"}
    assert (tokens[0]["billed"], tokens[0]["ptu_per_hour"], tokens[0]["source"]) == (
        "per_token",
        None,
        "Test sheet",
    )
    assert [(p["model_name"], p["valid_from"], p["input_per_million"]["amount"]) for p in after] == [
        ("gpt-test", "2026-03-01", "0.10")
    ]


def test_a_provisioned_pool_is_priced_per_ptu_hour_for_every_model(marketing_lead, prices):
    items = bearer(token_for(marketing_lead)).get("/api/v1/catalog/prices?model=gpt-test").json()["items"]

    pools = [p for p in items if p["billed"] == "per_ptu_hour"]
    assert pools, items
    pool = next(p for p in pools if p["sku"] == "ProvisionedManaged")
    assert (pool["model_name"], pool["model_version"], pool["input_per_million"]) == (None, None, None)
    assert pool["ptu_per_hour"] == {"amount": "2.00", "currency": "USD"}


def test_before_any_price_there_is_none(marketing_lead, prices):
    body = bearer(token_for(marketing_lead)).get("/api/v1/catalog/prices?on=2001-01-01").json()

    assert body == {"items": [], "next_cursor": None}


def test_prices_page_through_the_shipped_table(marketing_lead, prices):
    client = bearer(token_for(marketing_lead))
    shipped = Price.objects.count()

    seen, cursor = [], ""
    while True:
        page = client.get(f"/api/v1/catalog/prices?sort=-valid_from&limit=7{cursor}").json()
        seen += page["items"]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"

    # One row per model, version and SKU: the made-up model's older price is superseded.
    assert len(seen) == len({p["id"] for p in seen}) == shipped - 1
    assert [p["valid_from"] for p in seen] == sorted((p["valid_from"] for p in seen), reverse=True)


# The document ------------------------------------------------------------------------------------


def test_answers_match_the_document(
    anonymous, platform_admin, marketing_member, finance_lead, catalog, prices
):
    document = anonymous.get("/api/v1/openapi.json").json()
    admin = bearer(token_for(platform_admin))
    calls = [
        (admin.get("/api/v1/catalog/models?limit=2"), "/api/v1/catalog/models"),
        (admin.get("/api/v1/catalog/regions"), "/api/v1/catalog/regions"),
        (admin.get("/api/v1/catalog/quotas"), "/api/v1/catalog/quotas"),
        (admin.get("/api/v1/catalog/prices?limit=200"), "/api/v1/catalog/prices"),
        (admin.get("/api/v1/catalog/prices?on=yesterday"), "/api/v1/catalog/prices"),
        (bearer(token_for(marketing_member)).get("/api/v1/catalog/models"), "/api/v1/catalog/models"),
        (
            bearer(token_for(finance_lead)).get("/api/v1/catalog/quotas?department=marketing"),
            "/api/v1/catalog/quotas",
        ),
        (anonymous.get("/api/v1/catalog/regions"), "/api/v1/catalog/regions"),
    ]
    for response, path in calls:
        _validate(document, path, "get", response)
    assert {response.status_code for response, _ in calls} == {200, 401, 403, 404, 422}
