"""The unchanged azure-mgmt-cognitiveservices and azure-mgmt-authorization clients against the
emulator's ARM control plane: what a provisioning engine would see on Azure."""

import threading

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from provisioning.emulator.app import build_app
from tests.emulator.fixtures import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    TEST_SETTINGS,
    arm_token,
    keyless_account,
    model_deployment,
)
from tests.servers import ThreadedServer

RG = RESOURCE_GROUP
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"


def usage(cognitive, location: str, name: str):
    return next(item for item in cognitive.usages.list(location) if item.name.value == name)


def create_account(cognitive, name="oai-test", **kwargs):
    return cognitive.accounts.begin_create(RG, name, keyless_account(name, **kwargs)).result()


class TestAccounts:
    def test_a_keyless_private_account_is_created_as_asked(self, cognitive, emulator):
        poller = cognitive.accounts.begin_create(RG, "oai-mkt", keyless_account("oai-mkt", private=True))
        assert poller.status() in {"InProgress", "Accepted", "Creating"}

        account = poller.result()

        assert account.properties.provisioning_state == "Succeeded"
        assert account.properties.endpoint == f"{emulator.url}/accounts/oai-mkt-sub/"
        assert account.properties.custom_sub_domain_name == "oai-mkt-sub"
        assert account.properties.disable_local_auth is True
        assert account.properties.public_network_access == "Disabled"
        assert account.properties.network_acls.default_action == "Deny"
        assert account.kind == "OpenAI"
        assert account.sku.name == "S0"

    def test_get_list_and_an_idempotent_re_create(self, cognitive):
        created = create_account(cognitive)

        again = cognitive.accounts.begin_create(RG, "oai-test", keyless_account("oai-test")).result()

        assert again.properties.provisioning_state == "Succeeded"
        assert again.properties.internal_id == created.properties.internal_id
        assert cognitive.accounts.get(RG, "oai-test").properties.endpoint == created.properties.endpoint
        assert [account.name for account in cognitive.accounts.list_by_resource_group(RG)] == ["oai-test"]
        assert [account.name for account in cognitive.accounts.list()] == ["oai-test"]

    def test_keys_are_refused_when_local_auth_is_disabled(self, cognitive):
        create_account(cognitive)

        with pytest.raises(HttpResponseError) as refused:
            cognitive.accounts.list_keys(RG, "oai-test")

        assert refused.value.status_code == 400
        assert "disableLocalAuth is set to be true" in refused.value.message

    def test_delete_soft_deletes_and_purge_frees_name_subdomain_and_quota(self, cognitive):
        create_account(cognitive)
        cognitive.deployments.begin_create_or_update(
            RG, "oai-test", "chat", model_deployment(capacity=20)
        ).result()

        cognitive.accounts.begin_delete(RG, "oai-test").result()

        with pytest.raises(ResourceNotFoundError):
            cognitive.accounts.get(RG, "oai-test")
        deleted = cognitive.deleted_accounts.get("swedencentral", RG, "oai-test")
        assert deleted.name == "oai-test"
        assert usage(cognitive, "swedencentral", "OpenAI.GlobalStandard.gpt-4o-mini").current_value == 20
        with pytest.raises(HttpResponseError) as blocked:
            create_account(cognitive)
        assert blocked.value.error.code == "FlagMustBeSetForRestore"
        with pytest.raises(HttpResponseError) as subdomain_taken:
            cognitive.accounts.begin_create(RG, "other", keyless_account("oai-test")).result()
        assert subdomain_taken.value.error.code == "CustomDomainInUse"

        cognitive.deleted_accounts.begin_purge("swedencentral", RG, "oai-test").result()

        assert list(cognitive.deleted_accounts.list()) == []
        assert usage(cognitive, "swedencentral", "OpenAI.GlobalStandard.gpt-4o-mini").current_value == 0
        assert create_account(cognitive).properties.provisioning_state == "Succeeded"

    def test_invalid_names_and_regions_are_refused_as_azure_refuses_them(self, cognitive):
        with pytest.raises(HttpResponseError) as bad_name:
            cognitive.accounts.begin_create(RG, "-bad", keyless_account("bad")).result()
        with pytest.raises(HttpResponseError) as bad_region:
            create_account(cognitive, location="mars")

        assert bad_name.value.error.code == "InvalidResourceName"
        assert bad_region.value.error.code == "LocationNotAvailableForResourceType"

    def test_the_abuse_monitoring_opt_out_shows_as_content_logging_false(self, cognitive, emulator):
        account = create_account(cognitive)
        assert "ContentLogging" not in {capability.name for capability in account.properties.capabilities}

        response = requests.put(
            f"{emulator.url}/_emulator/content-logging",
            json={"accountId": account.id, "contentLogging": False},
            timeout=10,
        )

        assert response.status_code == 200
        capabilities = {
            c.name: c.value for c in cognitive.accounts.get(RG, "oai-test").properties.capabilities
        }
        assert capabilities["ContentLogging"] == "false"


class TestDeployments:
    def test_create_change_capacity_list_and_delete(self, cognitive):
        create_account(cognitive)

        deployment = cognitive.deployments.begin_create_or_update(
            RG, "oai-test", "marketing-copy", model_deployment(capacity=20)
        ).result()

        assert deployment.properties.provisioning_state == "Succeeded"
        assert deployment.properties.model.version == "2024-07-18"
        limits = {rule.key: rule.count for rule in deployment.properties.rate_limits}
        assert limits == {"request": 200, "token": 20000}  # gpt-4o-mini: 10 RPM per 1K TPM

        resized = cognitive.deployments.begin_create_or_update(
            RG, "oai-test", "marketing-copy", model_deployment(capacity=50)
        ).result()
        assert resized.sku.capacity == 50
        assert [d.name for d in cognitive.deployments.list(RG, "oai-test")] == ["marketing-copy"]
        assert usage(cognitive, "swedencentral", "OpenAI.GlobalStandard.gpt-4o-mini").current_value == 50

        cognitive.deployments.begin_delete(RG, "oai-test", "marketing-copy").result()

        with pytest.raises(ResourceNotFoundError):
            cognitive.deployments.get(RG, "oai-test", "marketing-copy")

    def test_the_default_version_is_used_when_none_is_given(self, cognitive):
        create_account(cognitive)

        deployment = cognitive.deployments.begin_create_or_update(
            RG, "oai-test", "gpt4o", model_deployment("gpt-4o", None, capacity=10)
        ).result()

        assert deployment.properties.model.version == "2024-08-06"

    def test_insufficient_quota_says_what_is_left(self, cognitive, emulator):
        create_account(cognitive)
        requests.put(
            f"{emulator.url}/_emulator/quotas",
            json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o", "limit": 10},
            timeout=10,
        ).raise_for_status()

        with pytest.raises(HttpResponseError) as refused:
            cognitive.deployments.begin_create_or_update(
                RG, "oai-test", "big", model_deployment("gpt-4o", "2024-11-20", capacity=50)
            ).result()

        assert refused.value.status_code == 400
        assert refused.value.error.code == "InsufficientQuota"
        assert "require 50 new capacity" in refused.value.error.message
        assert "current available capacity 10" in refused.value.error.message
        assert "Tokens Per Minute (thousands) - gpt-4o - GlobalStandard" in refused.value.error.message

    @pytest.mark.parametrize(
        ("deployment", "code"),
        [
            (model_deployment("gpt-5-turbo", "1"), "DeploymentModelNotSupported"),
            (model_deployment("gpt-4o-mini", "1999-01-01"), "InvalidResourceProperties"),
            (
                model_deployment("gpt-4o-mini", "2024-07-18", sku="DataZoneStandard"),
                "InvalidResourceProperties",
            ),
            (
                model_deployment("gpt-4o", "2024-08-06", sku="ProvisionedManaged", capacity=75),
                "InvalidCapacity",
            ),
            (
                model_deployment("gpt-4o", "2024-08-06", sku="ProvisionedManaged", capacity=25),
                "InvalidCapacity",
            ),
        ],
        ids=["unknown-model", "unknown-version", "sku-not-in-region", "ptu-off-step", "ptu-below-minimum"],
    )
    def test_what_the_region_does_not_offer_is_refused(self, cognitive, deployment, code):
        # japaneast has no Data Zone SKUs; regional PTU moves in steps of 50 from 50.
        create_account(cognitive, location="japaneast")

        with pytest.raises(HttpResponseError) as refused:
            cognitive.deployments.begin_create_or_update(RG, "oai-test", "probe", deployment).result()

        assert refused.value.error.code == code

    def test_a_provisioned_deployment_on_the_step_is_accepted(self, cognitive):
        create_account(cognitive)

        deployment = cognitive.deployments.begin_create_or_update(
            RG,
            "oai-test",
            "ptu",
            model_deployment("gpt-4o", "2024-08-06", sku="GlobalProvisionedManaged", capacity=15),
        ).result()

        assert deployment.sku.capacity == 15
        assert usage(cognitive, "swedencentral", "OpenAI.GlobalProvisionedManaged").current_value == 15


class TestCatalog:
    def test_models_per_region_with_skus_and_capacity_bounds(self, cognitive):
        models = {(m.model.name, m.model.version): m.model for m in cognitive.models.list("swedencentral")}

        mini = models[("gpt-4o-mini", "2024-07-18")]
        skus = {sku.name: sku for sku in mini.skus}
        assert {"Standard", "GlobalStandard", "DataZoneStandard"} <= set(skus)
        assert skus["GlobalStandard"].usage_name == "OpenAI.GlobalStandard.gpt-4o-mini"
        assert mini.lifecycle_status
        assert ("text-embedding-3-small", "1") in models
        japan = {sku.name for m in cognitive.models.list("japaneast") for sku in m.model.skus}
        assert "DataZoneStandard" not in japan

    def test_usages_report_limits_per_quota_name(self, cognitive):
        usages = {item.name.value: item for item in cognitive.usages.list("swedencentral")}

        assert usages["OpenAI.GlobalStandard.gpt-4o-mini"].limit == 2000
        assert usages["OpenAI.GlobalStandard.gpt-4o-mini"].current_value == 0
        assert usages["OpenAI.GlobalStandard.gpt4.1"].name.localized_value.startswith("Tokens Per Minute")
        assert usages["OpenAI.S0.AccountCount"].limit == 30

    def test_model_capacities_tell_where_capacity_is_left(self, cognitive):
        capacities = list(
            cognitive.model_capacities.list(
                model_format="OpenAI", model_name="gpt-4o-mini", model_version="2024-07-18"
            )
        )

        sweden = [c for c in capacities if c.location == "swedencentral" and c.name == "GlobalStandard"]
        assert sweden[0].properties.available_capacity == 2000


class TestRoleAssignments:
    def test_create_get_and_delete_a_data_role_at_account_scope(self, emulator, cognitive, settings):
        from provisioning.azure import authorization_client

        account = create_account(cognitive)
        authorization = authorization_client(SUBSCRIPTION)
        role = (
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}"
        )
        name = "7f3b2a51-0b7e-4d1c-9f63-8a1e5c2d4b60"

        created = authorization.role_assignments.create(
            account.id,
            name,
            {
                "properties": {
                    "roleDefinitionId": role,
                    "principalId": settings.AZURE_PORTAL_PRINCIPAL_ID,
                    "principalType": "ServicePrincipal",
                }
            },
        )

        assert created.role_definition_id == role
        assert (
            authorization.role_assignments.get(account.id, name).principal_id
            == settings.AZURE_PORTAL_PRINCIPAL_ID
        )
        with pytest.raises(ResourceExistsError):
            authorization.role_assignments.create(
                account.id,
                "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
                {"properties": {"roleDefinitionId": role, "principalId": settings.AZURE_PORTAL_PRINCIPAL_ID}},
            )
        authorization.role_assignments.delete(account.id, name)
        with pytest.raises(ResourceNotFoundError):
            authorization.role_assignments.get(account.id, name)

    def test_role_assignments_are_listed_as_azure_lists_them(self, emulator, cognitive):
        from provisioning.azure import authorization_client

        account = create_account(cognitive)
        group_scope = account.id.split("/providers/")[0]
        authorization = authorization_client(SUBSCRIPTION)
        role = (
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}"
        )
        at_account, above = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
        for scope, name, principal in (
            (account.id, at_account, "7d6c5b4a-3928-4170-9e8d-7c6b5a493827"),
            (group_scope, above, "8e7d6c5b-4a39-4281-8f9e-8d7c6b5a4938"),
        ):
            authorization.role_assignments.create(
                scope, name, {"properties": {"roleDefinitionId": role, "principalId": principal}}
            )

        def names(scope, **filter_):
            return {item.name for item in authorization.role_assignments.list_for_scope(scope, **filter_)}

        # Without a filter: at, above and below; atScope(): only what reaches the scope.
        assert names(group_scope) == {at_account, above}
        assert names(group_scope, filter="atScope()") == {above}
        assert names(account.id, filter="atScope()") == {at_account, above}
        assert names(group_scope, filter="principalId eq '7d6c5b4a-3928-4170-9e8d-7c6b5a493827'") == {
            at_account
        }
        with pytest.raises(HttpResponseError, match="InvalidFilter"):
            names(account.id, filter="assignedTo('x')")


class TestProtocol:
    def test_requests_without_a_bearer_token_are_refused(self, emulator):
        response = requests.get(
            f"{emulator.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral/models",
            params={"api-version": "2025-09-01"},
            timeout=10,
        )

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "AuthenticationFailed"

    def test_errors_are_written_as_azure_writes_them(self, emulator):
        response = requests.get(
            f"{emulator.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.CognitiveServices/accounts/none",
            params={"api-version": "2025-09-01"},
            headers={"Authorization": f"Bearer {arm_token()}"},
            timeout=10,
        )

        assert response.status_code == 404
        assert set(response.json()["error"]) == {"code", "message"}
        assert response.json()["error"]["code"] == "ResourceNotFound"


class TestFaults:
    def test_a_failed_provisioning_run_is_reported_by_the_poller(self, cognitive, emulator):
        emulator.inject(operation="accounts.put", kind="lro_failure", count=1)

        with pytest.raises(HttpResponseError) as failed:
            create_account(cognitive)

        assert "ProvisioningFailed" in str(failed.value)
        assert cognitive.accounts.get(RG, "oai-test").properties.provisioning_state == "Failed"
        # A second PUT recovers the account, as on Azure.
        assert create_account(cognitive).properties.provisioning_state == "Succeeded"

    def test_transient_server_errors_are_retried_by_the_sdk(self, cognitive, emulator):
        create_account(cognitive)
        emulator.inject(operation="accounts.get", kind="503", count=2)

        assert cognitive.accounts.get(RG, "oai-test").name == "oai-test"

    def test_throttling_answers_429_with_retry_after(self, emulator):
        emulator.inject(operation="models.list", kind="429", count=1, retry_after_seconds=7)

        response = requests.get(
            f"{emulator.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral/models",
            params={"api-version": "2025-09-01"},
            headers={"Authorization": f"Bearer {arm_token()}"},
            timeout=10,
        )

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"

    @pytest.mark.parametrize(
        "body",
        [
            {"operation": "chat", "kind": "explode"},
            {"operation": "nothing", "kind": "500"},
            {"operation": "chat", "kind": "429", "rate": 3},
            {"operation": "chat", "kind": "429", "count": 0},
            {"operation": "chat", "kind": "429", "colour": "red"},
        ],
    )
    def test_malformed_faults_are_refused_with_the_reason(self, emulator, body):
        response = requests.post(f"{emulator.url}/_emulator/faults", json=body, timeout=10)

        assert response.status_code == 400
        assert response.json()["error"]["message"]

    def test_malformed_settings_are_refused_with_the_reason(self, emulator):
        unknown = requests.patch(f"{emulator.url}/_emulator/settings", json={"speed": 3}, timeout=10)
        negative = requests.patch(f"{emulator.url}/_emulator/settings", json={"per_token_ms": -1}, timeout=10)

        assert unknown.status_code == 400
        assert "unknown settings" in unknown.json()["error"]["message"]
        assert negative.status_code == 400


class TestState:
    def test_state_survives_a_restart(self, tmp_path, settings):
        from provisioning.azure import cognitive_services_client

        state = tmp_path / "state.json"
        with ThreadedServer(build_app(state_path=state)) as first:
            requests.patch(f"{first.url}/_emulator/settings", json=TEST_SETTINGS, timeout=10)
            settings.AZURE_EMULATOR_URL = first.url
            create_account(cognitive_services_client(SUBSCRIPTION))

        with ThreadedServer(build_app(state_path=state)) as second:
            settings.AZURE_EMULATOR_URL = second.url
            account = cognitive_services_client(SUBSCRIPTION).accounts.get(RG, "oai-test")

        assert account.properties.provisioning_state == "Succeeded"
        assert account.properties.disable_local_auth is True

    def test_concurrent_puts_of_one_account_leave_one_account(self, cognitive, emulator):
        outcomes: list[str] = []

        def put() -> None:
            try:
                create_account(cognitive)
                outcomes.append("created")
            except HttpResponseError as error:
                outcomes.append(error.error.code)

        threads = [threading.Thread(target=put) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert "created" in outcomes
        assert set(outcomes) <= {"created", "Conflict"}
        assert [account.name for account in cognitive.accounts.list()] == ["oai-test"]
