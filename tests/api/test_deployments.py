"""Deployments, how to call them, their fallbacks and shared-service grants through the API: the
deployment pages' access rules (another department's deployment is a 404, a plain member a 403),
the page's snippets, and fallbacks set by platform admins through the page's service, with its
refusals, its audit event and If-Match."""

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from provisioning.calling import how_to_call
from provisioning.fallbacks import fallbacks_of
from provisioning.models import AccessGrant, ModelDeployment
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.factories import make_department, make_deployment, make_landing_zone

Sku = ModelDeployment.Sku
State = ModelDeployment.State


@pytest.fixture
def zone(marketing):
    return make_landing_zone(
        name="Marketing subscription",
        owner_department=marketing,
        allowed_regions=["swedencentral", "westeurope", "eastus2"],
    )


@pytest.fixture
def deploy(marketing, zone):
    """A Marketing deployment of gpt-4o in Sweden Central; options override the rest."""

    def make(display_name: str, **options):
        values = {
            "department": marketing,
            "landing_zone": zone,
            "display_name": display_name,
            "model_name": "gpt-4o",
            "model_version": "2024-08-06",
            "sku": Sku.STANDARD,
            "region": "swedencentral",
        }
        values.update(options)
        return make_deployment(**values)

    return make


@pytest.fixture
def assistant(deploy):
    return deploy("Copy assistant")


@pytest.fixture
def central_it(db):
    return make_department(name="Central IT")


@pytest.fixture
def shared_service(central_it, marketing, finance):
    return make_deployment(
        department=central_it,
        display_name="Company assistant",
        shared_with=[marketing, finance],
        model_name="gpt-4o-mini",
    )


@pytest.fixture
def finance_deployment(finance):
    return make_deployment(department=finance, display_name="Ledger helper")


def _grant(deployment, department) -> AccessGrant:
    return AccessGrant.objects.get(deployment=deployment, department=department)


def _paths(deployment) -> list[str]:
    base = f"/api/v1/deployments/{deployment.pk}"
    return [base, f"{base}/how-to-call", f"{base}/fallbacks"]


# The ladder --------------------------------------------------------------------------------------


def test_anonymous_gets_a_401_everywhere(anonymous, assistant, shared_service, marketing):
    grant = _grant(shared_service, marketing)
    for path in [*_paths(assistant), "/api/v1/deployments", "/api/v1/grants", f"/api/v1/grants/{grant.pk}"]:
        assert_problem(anonymous.get(path), 401)
    response = anonymous.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks", {"fallbacks": []}, content_type="application/json"
    )
    assert_problem(response, 401)


def test_another_departments_lead_gets_a_404(api_as, finance_lead, assistant, shared_service, marketing):
    client = api_as(finance_lead)
    for path in _paths(assistant):
        assert_problem(client.get(path), 404)
    assert_problem(client.get(f"/api/v1/grants/{_grant(shared_service, marketing).pk}"), 404)
    assert_problem(client.get("/api/v1/deployments?department=marketing"), 404)
    assert_problem(client.get("/api/v1/grants?department=marketing"), 404)
    response = client.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks", {"fallbacks": []}, content_type="application/json"
    )
    assert_problem(response, 404)


def test_a_plain_member_gets_a_403(api_as, marketing_member, assistant, shared_service, marketing):
    client = api_as(marketing_member)
    grant = _grant(shared_service, marketing)
    for path in [*_paths(assistant), "/api/v1/deployments", "/api/v1/grants", f"/api/v1/grants/{grant.pk}"]:
        body = assert_problem(client.get(path), 403)
        assert "leads" in body["detail"]
    response = client.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks", {"fallbacks": []}, content_type="application/json"
    )
    assert_problem(response, 403)


def test_a_lead_reads_but_may_not_set_fallbacks(api_as, marketing_lead, assistant, shared_service, marketing):
    client = api_as(marketing_lead)
    for path in [*_paths(assistant), "/api/v1/deployments", "/api/v1/grants"]:
        assert client.get(path).status_code == 200, path
    assert client.get(f"/api/v1/grants/{_grant(shared_service, marketing).pk}").status_code == 200

    response = client.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks", {"fallbacks": []}, content_type="application/json"
    )

    body = assert_problem(response, 403)
    assert "platform admins" in body["detail"]


def test_a_platform_admin_sets_fallbacks(api_as, platform_admin, deploy, assistant):
    twin = deploy("Copy West Europe", region="westeurope")

    response = api_as(platform_admin).put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks",
        {"fallbacks": [twin.pk]},
        content_type="application/json",
    )

    assert response.status_code == 200, response.content
    assert [f["gateway_name"] for f in response.json()["fallbacks"]] == [twin.gateway_name]


def test_finance_approvers_read_every_deployment_but_set_no_fallbacks(
    finance_approver, assistant, finance_deployment
):
    client = bearer(token_for(finance_approver))

    listed = client.get("/api/v1/deployments").json()["items"]
    assert {d["id"] for d in listed} == {assistant.pk, finance_deployment.pk}
    response = client.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks", {"fallbacks": []}, content_type="application/json"
    )
    assert_problem(response, 403)


# Listing -----------------------------------------------------------------------------------------


def test_a_lead_lists_their_deployments_and_the_shared_services_granted_to_them(
    marketing_lead, assistant, shared_service, finance_deployment
):
    body = bearer(token_for(marketing_lead)).get("/api/v1/deployments").json()

    assert [(d["display_name"], d["kind"]) for d in body["items"]] == [
        ("Company assistant", "shared"),
        ("Copy assistant", "dedicated"),
    ]
    shared = body["items"][0]
    assert shared["department"] == {"slug": "central-it", "name": "Central IT"}
    assert (shared["model_name"], shared["capacity"], shared["capacity_unit"]) == ("gpt-4o-mini", 20, "K TPM")
    assert body["next_cursor"] is None


def test_filters_by_kind_state_model_and_department(
    platform_admin, marketing, deploy, assistant, shared_service, finance_deployment
):
    deploy("Old assistant", state=State.DECOMMISSIONED)
    deploy("New assistant", state=State.PROVISIONING, model_name="gpt-4o-mini")
    client = bearer(token_for(platform_admin))

    def names(query: str) -> list[str]:
        response = client.get(f"/api/v1/deployments?{query}")
        assert response.status_code == 200, response.content
        return [d["display_name"] for d in response.json()["items"]]

    assert names("kind=shared") == ["Company assistant"]
    assert names("state=provisioning") == ["New assistant"]
    assert names("state=decommissioned") == ["Old assistant"]
    assert "Old assistant" not in names("")
    assert "Old assistant" in names("decommissioned=true")
    assert names("model=gpt-4o-mini&kind=dedicated") == ["Ledger helper", "New assistant"]
    # Marketing's deployments: its own and the shared services granted to it.
    assert names("department=marketing") == ["Company assistant", "Copy assistant", "New assistant"]


def test_pages_follow_the_sort_and_keep_their_filters(platform_admin, deploy):
    for name in ["Alpha", "Bravo", "Charlie"]:
        deploy(name)
    client = bearer(token_for(platform_admin))

    first = client.get("/api/v1/deployments?sort=-display_name&limit=2").json()
    second = client.get(
        f"/api/v1/deployments?sort=-display_name&limit=2&cursor={first['next_cursor']}"
    ).json()

    assert [d["display_name"] for d in first["items"] + second["items"]] == ["Charlie", "Bravo", "Alpha"]
    assert second["next_cursor"] is None
    elsewhere = client.get(
        f"/api/v1/deployments?sort=-display_name&kind=shared&cursor={first['next_cursor']}"
    )
    assert_problem(elsewhere, 400)


def test_bad_filters_are_422_problems(platform_admin):
    client = bearer(token_for(platform_admin))

    body = assert_problem(client.get("/api/v1/deployments?state=sleeping&sort=secret&model=a%00b"), 422)

    assert {"state", "sort", "model"} <= body["errors"].keys()


# One deployment ----------------------------------------------------------------------------------


def test_a_deployment_with_its_facts_and_an_etag(marketing_lead, deploy, assistant):
    twin = deploy("Copy West Europe", region="westeurope")
    ModelDeployment.objects.filter(pk=assistant.pk).update(data_classification="confidential")
    assistant.fallback_links.create(fallback=twin, position=1)

    response = bearer(token_for(marketing_lead)).get(f"/api/v1/deployments/{assistant.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert response["ETag"].startswith('"')
    assert body["gateway_name"] == assistant.gateway_name
    assert (body["region"], body["region_label"], body["data_zone"]) == (
        "swedencentral",
        "Sweden Central",
        "EU",
    )
    assert (body["sku"], body["state"], body["kind"]) == ("Standard", "active", "dedicated")
    assert (body["data_classification"], body["access_mode"]) == ("confidential", "gateway")
    assert body["department"] == {"slug": "marketing", "name": "Marketing"}
    assert body["fallbacks"] == [twin.gateway_name]
    assert body["updated_at"].endswith("Z") or body["updated_at"].endswith("+00:00")


def test_how_to_call_is_the_pages_section(marketing_lead, assistant):
    response = bearer(token_for(marketing_lead)).get(f"/api/v1/deployments/{assistant.pk}/how-to-call")

    assert response.status_code == 200, response.content
    body = response.json()
    page = how_to_call(assistant, base_url="http://testserver")
    assert body["gateway_name"] == assistant.gateway_name
    assert body["v1_base_url"] == "http://testserver/openai/v1"
    assert body["azure_endpoint"] == "http://testserver"
    assert body["api_version"] == page.api_version
    assert [(s["label"], s["code"]) for s in body["snippets"]] == [(s.label, s.code) for s in page.snippets]
    assert any("curl http://testserver/openai/v1/chat/completions" in s["code"] for s in body["snippets"])
    assert body["api_keys_from"] == [{"slug": "marketing", "name": "Marketing"}]
    assert body["active"] is True


def test_how_to_call_names_the_public_gateway_address_and_the_departments_with_keys(
    settings, platform_admin, shared_service
):
    settings.GATEWAY_PUBLIC_URL = "https://switchyard.example.com/"

    body = (
        bearer(token_for(platform_admin)).get(f"/api/v1/deployments/{shared_service.pk}/how-to-call").json()
    )

    assert body["v1_base_url"] == "https://switchyard.example.com/openai/v1"
    assert [d["slug"] for d in body["api_keys_from"]] == ["finance", "marketing"]


# Fallbacks ---------------------------------------------------------------------------------------


def _put(client, deployment, ids, **headers):
    return client.put(
        f"/api/v1/deployments/{deployment.pk}/fallbacks",
        {"fallbacks": ids},
        content_type="application/json",
        headers=headers,
    )


def test_setting_fallbacks_goes_through_the_service_and_is_audited(
    platform_admin, deploy, assistant, django_capture_on_commit_callbacks
):
    west_europe = deploy("Copy West Europe", region="westeurope")
    data_zone = deploy("Copy EU data zone", region="westeurope", sku=Sku.DATA_ZONE_STANDARD)
    client = bearer(token_for(platform_admin))
    read = client.get(f"/api/v1/deployments/{assistant.pk}/fallbacks")
    assert read.json() == {"deployment": assistant.pk, "fallbacks": []}

    with django_capture_on_commit_callbacks(execute=True):
        response = _put(client, assistant, [west_europe.pk, data_zone.pk], **{"If-Match": read["ETag"]})

    assert response.status_code == 200, response.content
    assert fallbacks_of(assistant) == [west_europe, data_zone]
    assert [f["id"] for f in response.json()["fallbacks"]] == [west_europe.pk, data_zone.pk]
    assert response["ETag"] != read["ETag"]
    # The gateway's chain is read afresh once the change is committed (the test's transaction
    # commits only after the answer, so read it again).
    again = client.get(f"/api/v1/deployments/{assistant.pk}/fallbacks")
    assert [(f["id"], f["tried"], f["note"]) for f in again.json()["fallbacks"]] == [
        (west_europe.pk, True, None),
        (data_zone.pk, True, None),
    ]
    event = AuditEvent.objects.get(verb="deployment.fallbacks_set")
    assert event.actor == platform_admin
    assert event.before == {"fallbacks": []}
    assert event.after == {"fallbacks": [west_europe.gateway_name, data_zone.gateway_name]}


def test_a_fallback_across_a_data_zone_is_refused_as_the_page_refuses_it(platform_admin, deploy, assistant):
    east_us = deploy("Copy East US", region="eastus2")

    response = _put(bearer(token_for(platform_admin)), assistant, [east_us.pk])

    body = assert_problem(response, 400)
    assert body["errors"]["fallbacks"] == [
        "Copy East US cannot be a fallback. Same data zone: Copy East US processes prompts in "
        "East US 2, and Copy assistant's must stay in the EU data zone."
    ]
    assert body["detail"] == body["errors"]["fallbacks"][0]
    assert fallbacks_of(assistant) == []
    assert not AuditEvent.objects.filter(verb="deployment.fallbacks_set").exists()


def test_a_stale_if_match_is_a_412_and_changes_nothing(platform_admin, deploy, assistant):
    west_europe = deploy("Copy West Europe", region="westeurope")
    sweden = deploy("Copy Sweden 2")
    client = bearer(token_for(platform_admin))
    stale = client.get(f"/api/v1/deployments/{assistant.pk}/fallbacks")["ETag"]
    assert _put(client, assistant, [west_europe.pk], **{"If-Match": stale}).status_code == 200

    response = _put(client, assistant, [sweden.pk], **{"If-Match": stale})

    assert_problem(response, 412)
    assert response["ETag"] == client.get(f"/api/v1/deployments/{assistant.pk}/fallbacks")["ETag"]
    assert fallbacks_of(assistant) == [west_europe]


def test_bad_fallback_lists_are_refused(platform_admin, deploy, assistant):
    twin = deploy("Copy West Europe", region="westeurope")
    client = bearer(token_for(platform_admin))

    unknown = assert_problem(_put(client, assistant, [twin.pk, 999_999]), 400)
    twice = assert_problem(_put(client, assistant, [twin.pk, twin.pk]), 400)
    itself = assert_problem(_put(client, assistant, [assistant.pk]), 400)
    extra = client.put(
        f"/api/v1/deployments/{assistant.pk}/fallbacks",
        {"fallbacks": [], "primary": True},
        content_type="application/json",
    )
    not_ids = assert_problem(_put(client, assistant, ["first", 0]), 422)

    assert unknown["errors"]["fallbacks"] == ["No deployment with the id 999999."]
    assert "twice" in twice["errors"]["fallbacks"][0]
    assert "its own fallback" in itself["errors"]["fallbacks"][0]
    # (The body's field names, whatever prefix the problem document gives them.)
    assert [key.rsplit(".", 1)[-1] for key in assert_problem(extra, 422)["errors"]] == ["primary"]
    assert sorted(key.rsplit(".", 2)[-2:] for key in not_ids["errors"]) == [
        ["fallbacks", "0"],
        ["fallbacks", "1"],
    ]
    assert fallbacks_of(assistant) == []


def test_a_lead_sees_a_fallback_of_another_department_by_name_only(
    marketing_lead, platform_admin, central_it, marketing, assistant
):
    service = make_deployment(
        department=central_it,
        display_name="Shared gpt-4o",
        shared_with=[marketing],
        model_name="gpt-4o",
        model_version="2024-08-06",
        sku=Sku.STANDARD,
        region="westeurope",
    )
    other = make_deployment(
        department=central_it,
        display_name="Central gpt-4o",
        model_name="gpt-4o",
        model_version="2024-08-06",
        sku=Sku.STANDARD,
    )
    assistant.fallback_links.create(fallback=service, position=1)
    assistant.fallback_links.create(fallback=other, position=2)

    rows = bearer(token_for(marketing_lead)).get(f"/api/v1/deployments/{assistant.pk}/fallbacks").json()

    assert [(f["display_name"], f["id"], f["tried"]) for f in rows["fallbacks"]] == [
        ("Shared gpt-4o", service.pk, True),
        ("Central gpt-4o", None, False),
    ]
    assert rows["fallbacks"][1]["note"].startswith("Not tried: Who pays")


# Grants ------------------------------------------------------------------------------------------


def test_admins_see_every_grant_and_leads_their_departments(
    platform_admin, marketing_lead, marketing, finance, shared_service
):
    AccessGrant.objects.filter(deployment=shared_service, department=marketing).update(
        tpm_cap=50, monthly_budget_cap=Decimal("250")
    )

    every = bearer(token_for(platform_admin)).get("/api/v1/grants").json()["items"]
    own = bearer(token_for(marketing_lead)).get("/api/v1/grants").json()["items"]

    assert sorted(g["department"]["slug"] for g in every) == ["finance", "marketing"]
    assert [g["department"]["slug"] for g in own] == ["marketing"]
    assert own[0]["deployment"]["id"] == shared_service.pk
    assert own[0]["deployment"]["gateway_name"] == shared_service.gateway_name
    assert (own[0]["tpm_cap"], own[0]["monthly_budget_cap"]) == (50, {"amount": "250.00", "currency": "USD"})


def test_grants_filter_by_department_and_deployment(platform_admin, marketing, shared_service, central_it):
    other = make_deployment(department=central_it, display_name="Translator", shared_with=[marketing])
    ModelDeployment.objects.filter(pk=other.pk).update(state=State.DECOMMISSIONED)
    client = bearer(token_for(platform_admin))

    def grants(query: str) -> list[tuple[str, str]]:
        items = client.get(f"/api/v1/grants?{query}").json()["items"]
        return [(g["deployment"]["display_name"], g["department"]["slug"]) for g in items]

    assert grants("department=marketing") == [("Company assistant", "marketing")]
    assert grants("department=marketing&decommissioned=true") == [
        ("Company assistant", "marketing"),
        ("Translator", "marketing"),
    ]
    assert grants(f"deployment={shared_service.pk}&sort=-created_at") == [
        ("Company assistant", "finance"),
        ("Company assistant", "marketing"),
    ]


def test_one_grant(marketing_lead, finance, marketing, shared_service):
    client = bearer(token_for(marketing_lead))

    own = client.get(f"/api/v1/grants/{_grant(shared_service, marketing).pk}")
    finances = client.get(f"/api/v1/grants/{_grant(shared_service, finance).pk}")

    assert own.status_code == 200
    assert own.json()["monthly_budget_cap"] is None
    assert_problem(finances, 404)
    assert_problem(client.get("/api/v1/grants/0"), 422)


# The document ------------------------------------------------------------------------------------


def test_answers_match_the_document(
    anonymous, platform_admin, marketing_member, deploy, assistant, marketing
):
    document = anonymous.get("/api/v1/openapi.json").json()
    twin = deploy("Copy West Europe", region="westeurope")
    east_us = deploy("Copy East US", region="eastus2")
    service = make_deployment(department=marketing, display_name="Shared", shared_with=[marketing])
    grant = _grant(service, marketing)
    admin = bearer(token_for(platform_admin))
    member = bearer(token_for(marketing_member))
    base = "/api/v1/deployments/{deployment_id}"
    calls = [
        (admin.get("/api/v1/deployments?limit=1"), "/api/v1/deployments", "get"),
        (admin.get(f"/api/v1/deployments/{assistant.pk}"), base, "get"),
        (admin.get(f"/api/v1/deployments/{assistant.pk}/how-to-call"), f"{base}/how-to-call", "get"),
        (_put(admin, assistant, [twin.pk]), f"{base}/fallbacks", "put"),
        (admin.get(f"/api/v1/deployments/{assistant.pk}/fallbacks"), f"{base}/fallbacks", "get"),
        (_put(admin, assistant, [east_us.pk]), f"{base}/fallbacks", "put"),
        (admin.get("/api/v1/grants"), "/api/v1/grants", "get"),
        (admin.get(f"/api/v1/grants/{grant.pk}"), "/api/v1/grants/{grant_id}", "get"),
        (member.get(f"/api/v1/grants/{grant.pk}"), "/api/v1/grants/{grant_id}", "get"),
        (admin.get("/api/v1/deployments/999999"), base, "get"),
        (anonymous.get("/api/v1/grants"), "/api/v1/grants", "get"),
    ]
    for response, path, method in calls:
        _validate(document, path, method, response)
    assert {response.status_code for response, _, _ in calls} == {200, 400, 401, 403, 404}
