"""Cost Management's query API, answered from the usage the data plane served, priced from the
portal's shipped price table."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from openai import AzureOpenAI

from provisioning.azure import data_plane_token_provider
from provisioning.emulator.catalog import Catalog
from tests.emulator.conftest import RESOURCE_GROUP, SUBSCRIPTION, deploy_chat
from tests.emulator.fixtures import arm_token, keyless_account, model_deployment

QUERY = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CostManagement/query"


def cost_query(
    emulator, body: dict[str, Any], scope: str = f"/subscriptions/{SUBSCRIPTION}"
) -> requests.Response:
    return requests.post(
        f"{emulator.url}{scope}/providers/Microsoft.CostManagement/query",
        params={"api-version": "2025-03-01"},
        json=body,
        headers={"Authorization": f"Bearer {arm_token()}"},
        timeout=10,
    )


def by_resource(granularity: str = "None") -> dict[str, Any]:
    return {
        "type": "ActualCost",
        "timeframe": "MonthToDate",
        "dataset": {
            "granularity": granularity,
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [{"type": "Dimension", "name": "ResourceId"}],
        },
    }


def test_metered_tokens_come_back_priced_per_account(emulator, cognitive):
    chat = deploy_chat(cognitive)
    client = AzureOpenAI(
        azure_endpoint=chat.endpoint,
        api_version="2025-04-01-preview",
        azure_ad_token_provider=data_plane_token_provider(),
    )
    prompt_tokens = completion_tokens = 0
    for question in ["Write a tagline for our spring campaign.", "Summarise our brand values in a list."]:
        answer = client.chat.completions.create(
            model=chat.deployment, messages=[{"role": "user", "content": question}], max_tokens=80
        )
        prompt_tokens += answer.usage.prompt_tokens
        completion_tokens += answer.usage.completion_tokens

    response = cost_query(emulator, by_resource())

    assert response.status_code == 200
    body = response.json()["properties"]
    assert [column["name"] for column in body["columns"]] == ["Cost", "ResourceId", "Currency"]
    price_in, _, price_out = Catalog.load().token_price(
        model="gpt-4o-mini", version="2024-07-18", sku="GlobalStandard"
    )
    expected = (prompt_tokens * price_in + completion_tokens * price_out) / Decimal(1_000_000)
    [[cost, resource_id, currency]] = body["rows"]
    assert resource_id == chat.account_id.lower()
    assert currency == "USD"
    assert Decimal(str(cost)).quantize(Decimal("0.0000001")) == expected.quantize(Decimal("0.0000001"))


def test_provisioned_deployments_accrue_by_the_hour_used_or_not(emulator, cognitive):
    cognitive.accounts.begin_create(RESOURCE_GROUP, "oai-ptu", keyless_account("oai-ptu")).result()
    cognitive.deployments.begin_create_or_update(
        RESOURCE_GROUP,
        "oai-ptu",
        "ptu",
        model_deployment("gpt-4o", "2024-08-06", sku="GlobalProvisionedManaged", capacity=15),
    ).result()

    response = cost_query(emulator, by_resource("Daily"))

    rows = response.json()["properties"]["rows"]
    [[cost, usage_date, resource_id, currency]] = rows
    assert usage_date == int(datetime.now(UTC).strftime("%Y%m%d"))
    assert resource_id.endswith("/accounts/oai-ptu")
    assert currency == "USD"
    # 15 PTU at $1.00 per PTU-hour, for the few seconds the deployment has existed.
    assert 0 < cost < 15 * 1.00 * 60 / 3600


def test_a_query_scoped_to_another_resource_group_sees_nothing_of_this_one(emulator, cognitive):
    deploy_chat(cognitive)

    response = cost_query(
        emulator, by_resource(), scope=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/other"
    )

    assert response.json()["properties"]["rows"] == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"timeframe": "Someday"}, "timeframe"),
        ({"timeframe": "Custom", "timePeriod": {"from": "2026-11-10"}}, "timePeriod"),
        ({"dataset": {"grouping": [{"type": "Dimension", "name": "Colour"}]}}, "cannot group by"),
    ],
)
def test_malformed_queries_get_a_reason(emulator, body, reason):
    response = cost_query(emulator, {"type": "ActualCost", **body})

    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]
