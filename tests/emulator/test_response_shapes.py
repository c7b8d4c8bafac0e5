"""The emulator's bodies carry the fields of Azure's published examples (Azure/azure-rest-api-specs,
see tests/fixtures/azure_examples/SOURCES.md), field by field."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION, arm_token, keyless_account, model_deployment

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "azure_examples"
ACCOUNT_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.CognitiveServices/accounts/oai-test"
LOCATION_PATH = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral"


def example(name: str) -> dict[str, Any]:
    responses: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())["responses"]
    return responses


# Maps whose keys are data, not fields (tag names, capability names).
OPAQUE = {"tags", "capabilities"}


def keys_of(value: Any) -> Any:
    """The field tree of a body; a list's items are merged, since examples show one item."""
    if isinstance(value, dict):
        return {key: None if key in OPAQUE else keys_of(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = merge(merged, keys_of(item))
        return [merged] if isinstance(merged, dict) else []
    return None


def merge(left: Any, right: Any) -> Any:
    if isinstance(left, dict) and isinstance(right, dict):
        return {key: merge(left.get(key), right.get(key)) for key in left.keys() | right.keys()}
    if isinstance(left, list) and isinstance(right, list):
        return [merge(left[0] if left else None, right[0] if right else None)] if left or right else []
    return left if left is not None else right


def missing_fields(ours: Any, theirs: Any, path: str = "") -> list[str]:
    missing = []
    if isinstance(theirs, dict):
        for key, sub in theirs.items():
            if not isinstance(ours, dict) or key not in ours:
                missing.append(f"{path}{key}")
            else:
                missing += missing_fields(ours[key], sub, f"{path}{key}.")
    elif isinstance(theirs, list) and theirs and isinstance(ours, list) and ours:
        missing += missing_fields(ours[0], theirs[0], f"{path}[].")
    return missing


def arm(method: str, url: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        url,
        params={"api-version": "2025-09-01"},
        headers={"Authorization": f"Bearer {arm_token()}"},
        timeout=10,
        **kwargs,
    )


@pytest.fixture
def estate(cognitive, emulator):
    """An account (keys allowed, so listKeys answers) with one deployment and a content filter."""
    account = keyless_account("oai-test")
    account.properties.disable_local_auth = False
    cognitive.accounts.begin_create(RESOURCE_GROUP, "oai-test", account).result()
    cognitive.deployments.begin_create_or_update(
        RESOURCE_GROUP, "oai-test", "chat", model_deployment()
    ).result()
    arm(
        "PUT",
        f"{emulator.url}{ACCOUNT_PATH}/raiPolicies/strict",
        json={
            "properties": {
                "basePolicyName": "Microsoft.DefaultV2",
                "mode": "Blocking",
                "contentFilters": [
                    {
                        "name": "Hate",
                        "blocking": True,
                        "enabled": True,
                        "severityThreshold": "Medium",
                        "source": "Prompt",
                    }
                ],
            }
        },
    ).raise_for_status()
    return emulator


# Fields the examples show that an Azure OpenAI account in this setup does not have.
NOT_APPLICABLE = {
    # customer-managed keys and bring-your-own storage are not configured by Switchyard
    "properties.encryption",
    "properties.userOwnedStorage",
    # a managed identity appears only when the PUT asks for one
    "identity",
    # fine-tuning retirement dates: the shipped catalog tracks inference retirement only
    "value.[].model.deprecation.fineTune",
    "value.[].model.finetuneCapabilities",
    # only models Microsoft has scheduled an automatic upgrade for carry a replacement
    "value.[].model.replacementConfig",
}


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("GetAccount", ACCOUNT_PATH),
        ("CreateAccount", ACCOUNT_PATH),
        (
            "ListAccountsBySubscription",
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/accounts",
        ),
        (
            "ListAccountsByResourceGroup",
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.CognitiveServices/accounts",
        ),
        ("GetDeployment", f"{ACCOUNT_PATH}/deployments/chat"),
        ("ListDeployments", f"{ACCOUNT_PATH}/deployments"),
        ("GetRaiPolicy", f"{ACCOUNT_PATH}/raiPolicies/strict"),
        ("ListUsages", f"{LOCATION_PATH}/usages"),
        ("ListLocationModels", f"{LOCATION_PATH}/models"),
        (
            "ListModelCapacities",
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/modelCapacities?modelFormat=OpenAI&modelName=gpt-4o-mini&modelVersion=2024-07-18",
        ),
    ],
)
def test_bodies_have_every_field_of_azures_example(estate, name, path):
    response = arm("GET", f"{estate.url}{path}")

    assert response.status_code == 200, response.text
    missing = missing_fields(keys_of(response.json()), keys_of(example(name)["200"]["body"]))
    assert [field for field in missing if field not in NOT_APPLICABLE] == []


def test_list_keys_and_deleted_accounts_match_their_examples(estate):
    keys = arm("POST", f"{estate.url}{ACCOUNT_PATH}/listKeys")
    assert missing_fields(keys.json(), example("ListKeys")["200"]["body"]) == []

    deleting = arm("DELETE", f"{estate.url}{ACCOUNT_PATH}")
    assert str(deleting.status_code) in example("DeleteAccount")
    deadline = time.monotonic() + 10
    while arm("GET", f"{estate.url}{ACCOUNT_PATH}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.1)

    deleted_path = f"{LOCATION_PATH}/resourceGroups/{RESOURCE_GROUP}/deletedAccounts/oai-test"
    deleted = arm("GET", f"{estate.url}{deleted_path}")
    assert deleted.status_code == 200
    assert missing_fields(keys_of(deleted.json()), keys_of(example("GetDeletedAccount")["200"]["body"])) == []
    listed = arm(
        "GET",
        f"{estate.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/deletedAccounts",
    )
    assert (
        missing_fields(
            keys_of(listed.json()), keys_of(example("ListDeletedAccountsBySubscription")["200"]["body"])
        )
        == []
    )
    purge = arm("DELETE", f"{estate.url}{deleted_path}")
    assert str(purge.status_code) in example("PurgeDeletedAccount")


def test_deployment_put_and_delete_answer_with_the_examples_statuses(estate):
    created = arm(
        "PUT",
        f"{estate.url}{ACCOUNT_PATH}/deployments/second",
        json={
            "sku": {"name": "GlobalStandard", "capacity": 5},
            "properties": {"model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"}},
        },
    )

    assert str(created.status_code) in example("PutDeployment")
    assert missing_fields(keys_of(created.json()), keys_of(example("PutDeployment")["201"]["body"])) == []
    assert created.headers["Azure-AsyncOperation"]
    deleted = arm("DELETE", f"{estate.url}{ACCOUNT_PATH}/deployments/chat")
    assert str(deleted.status_code) in example("DeleteDeployment")


def test_role_assignment_bodies_match_microsoft_authorizations_example(estate, settings):
    assignment = "/providers/Microsoft.Authorization/roleAssignments/05c5a614-a7d6-4502-b150-c2fb455033ff"
    body = {
        "properties": {
            "roleDefinitionId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
            "principalId": settings.AZURE_PORTAL_PRINCIPAL_ID,
            "principalType": "ServicePrincipal",
        }
    }

    created = arm("PUT", f"{estate.url}{ACCOUNT_PATH}{assignment}", json=body)

    assert created.status_code == 201
    expected = example("authorization-RoleAssignments_CreateForResource")["201"]["body"]
    assert missing_fields(keys_of(created.json()), keys_of(expected)) == []
