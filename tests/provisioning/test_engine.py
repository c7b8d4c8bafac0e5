"""The provisioning engine against the emulator, through the official SDKs: provision,
re-provision, resize, decommission with purge, refusals a lead can read, faults, drift."""

import time
from collections import Counter

import pytest
import requests

from org.models import Department
from provisioning import drift, services
from provisioning.azure import cognitive_services_client
from provisioning.azure_errors import TransientAzureError
from provisioning.errors import ProvisioningRefused
from provisioning.models import (
    LandingZone,
    ModelDeployment,
    NetworkMode,
    OpenAIAccount,
    ProvisioningOperation,
)
from tests.emulator.fixtures import SUBSCRIPTION
from tests.factories import make_department, make_deployment, make_landing_zone

State = ModelDeployment.State
ZONE_GROUP = "rg-central-ai"


@pytest.fixture
def engine(emulator, settings):
    settings.PROVISIONING_POLL_SECONDS = 0.1
    return emulator


@pytest.fixture
def zone(db) -> LandingZone:
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group=ZONE_GROUP
    )


@pytest.fixture
def marketing(db) -> Department:
    return make_department(name="Marketing", entra_member_group_id="6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f")


def new_deployment(
    zone, department, *, name="marketing-copy", model="gpt-4o-mini", version="2024-07-18", **options
):
    """A deployment as a request would leave it: not yet provisioned."""
    return make_deployment(
        department=department,
        landing_zone=zone,
        name=name,
        model_name=model,
        model_version=version,
        state=State.REQUESTED,
        **options,
    )


def run(service, deployment: ModelDeployment, *, limit_seconds: float = 60) -> ModelDeployment:
    """Drive a run as the Celery task would: call, wait what it asks, retry transient errors."""
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            wait = service(deployment_id=deployment.pk, token=token)
        except TransientAzureError:
            wait = 0.05
        if wait is None:
            return ModelDeployment.objects.get(pk=deployment.pk)
        time.sleep(min(wait, 0.1))
    raise AssertionError("the run did not finish")


def run_until_transient_error(deployment: ModelDeployment, token: str) -> None:
    for _ in range(100):
        time.sleep(0.1)
        services.deployment_provision(deployment_id=deployment.pk, token=token)


def provision(deployment: ModelDeployment) -> ModelDeployment:
    services.deployment_request_provisioning(deployment=deployment)
    return run(services.deployment_provision, deployment)


def decommission(deployment: ModelDeployment) -> ModelDeployment:
    services.deployment_request_decommission(deployment=deployment)
    return run(services.deployment_decommission, deployment)


def azure():
    return cognitive_services_client(SUBSCRIPTION)


def test_provisioning_creates_a_keyless_account_the_role_and_the_deployment(
    engine, zone, marketing, settings
):
    deployment = provision(new_deployment(zone, marketing))

    assert deployment.state == State.ACTIVE
    account = deployment.account
    assert account.state == OpenAIAccount.State.ACTIVE
    assert account.endpoint.startswith(engine.url)
    in_azure = azure().accounts.get(ZONE_GROUP, account.name)
    assert in_azure.properties.disable_local_auth is True
    assert in_azure.properties.custom_sub_domain_name == account.custom_subdomain
    assert azure().deployments.get(ZONE_GROUP, account.name, "marketing-copy").sku.capacity == 20
    steps = list(deployment.operations.values_list("step", "status"))
    assert steps == [
        ("ensure_account", "succeeded"),
        ("ensure_content_filter", "succeeded"),
        ("grant_role", "succeeded"),
        ("ensure_deployment", "succeeded"),
    ]
    # Through Switchyard only (the default): the department's group gets no role on the account.
    principals = {item["properties"]["principalId"] for item in _role_assignments(engine, account.arm_id)}
    assert principals == {settings.AZURE_PORTAL_PRINCIPAL_ID}


def _role_assignments(engine, scope):
    from tests.emulator.fixtures import arm_token

    response = requests.get(
        f"{engine.url}{scope}/providers/Microsoft.Authorization/roleAssignments",
        params={"api-version": "2022-04-01"},
        headers={"Authorization": f"Bearer {arm_token()}"},
        timeout=5,
    )
    return response.json()["value"]


def test_the_portal_can_chat_with_what_it_provisioned(engine, zone, marketing):
    from openai import AzureOpenAI

    from provisioning.azure import data_plane_token_provider

    deployment = provision(new_deployment(zone, marketing))
    client = AzureOpenAI(
        azure_endpoint=deployment.account.endpoint,
        api_version="2025-04-01-preview",
        azure_ad_token_provider=data_plane_token_provider(),
    )

    answer = client.chat.completions.create(
        model=deployment.name, messages=[{"role": "user", "content": "Hello"}], max_tokens=5
    )

    assert answer.choices[0].message.content


def test_a_second_run_changes_nothing_and_creates_nothing(engine, zone, marketing):
    first = provision(new_deployment(zone, marketing))
    again = services.deployment_provision(deployment_id=first.pk)  # a duplicate task message

    assert again is None
    assert OpenAIAccount.objects.count() == 1
    assert [a.name for a in azure().accounts.list()] == [first.account.name]
    assert [d.name for d in azure().deployments.list(ZONE_GROUP, first.account.name)] == ["marketing-copy"]


def test_deployments_share_one_account_per_zone_region_and_network_mode(engine, zone, marketing):
    public = [provision(new_deployment(zone, marketing, name=f"copy-{n}", capacity=5)) for n in range(2)]
    private = provision(
        new_deployment(zone, marketing, name="private-copy", capacity=5, network_mode=NetworkMode.PRIVATE)
    )

    assert public[0].account == public[1].account
    assert private.account != public[0].account
    assert (
        azure().accounts.get(ZONE_GROUP, private.account.name).properties.public_network_access == "Disabled"
    )
    assert OpenAIAccount.objects.count() == 2


def test_capacity_change(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing))

    services.deployment_change_capacity(deployment=deployment, capacity=40)
    deployment = run(services.deployment_provision, deployment)

    assert deployment.state == State.ACTIVE
    assert azure().deployments.get(ZONE_GROUP, deployment.account.name, deployment.name).sku.capacity == 40
    assert list(deployment.operations.filter(run=deployment.run).values_list("step", flat=True)) == [
        "change_capacity"
    ]


def test_a_capacity_change_is_refused_for_a_deployment_that_is_not_active(zone, marketing):
    deployment = new_deployment(zone, marketing)

    with pytest.raises(ProvisioningRefused, match="Only an active deployment can change capacity"):
        services.deployment_change_capacity(deployment=deployment, capacity=40)
    with pytest.raises(ProvisioningRefused, match="Capacity is at least 1"):
        services.deployment_change_capacity(deployment=deployment, capacity=0)
    assert ModelDeployment.objects.get(pk=deployment.pk).state == State.REQUESTED


def test_decommission_deletes_the_deployment_then_the_empty_account_and_purges_it(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing))
    account_name = deployment.account.name

    deployment = decommission(deployment)

    assert deployment.state == State.DECOMMISSIONED
    assert list(azure().accounts.list()) == []
    assert list(azure().deleted_accounts.list()) == []  # purged: quota and name are free
    usage = {u.name.value: u.current_value for u in azure().usages.list("swedencentral")}
    assert usage["OpenAI.GlobalStandard.gpt-4o-mini"] == 0
    assert OpenAIAccount.objects.get(name=account_name).state == OpenAIAccount.State.DELETED


def test_decommission_keeps_an_account_other_deployments_still_use(engine, zone, marketing):
    kept = provision(new_deployment(zone, marketing, name="kept", capacity=5))
    gone = provision(new_deployment(zone, marketing, name="gone", capacity=5))

    decommission(gone)

    assert [d.name for d in azure().deployments.list(ZONE_GROUP, kept.account.name)] == ["kept"]
    assert ModelDeployment.objects.get(pk=kept.pk).state == State.ACTIVE


def test_insufficient_quota_fails_with_a_message_a_lead_understands(engine, zone, marketing):
    requests.put(
        f"{engine.url}/_emulator/quotas",
        json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o", "limit": 10},
        timeout=5,
    ).raise_for_status()

    deployment = provision(new_deployment(zone, marketing, model="gpt-4o", version="2024-11-20", capacity=50))

    assert deployment.state == State.FAILED
    assert deployment.status_message.startswith("Sweden Central has 10K TPM of gpt-4o (GlobalStandard) left")
    assert "you asked for 50K TPM" in deployment.status_message
    assert list(azure().accounts.list()) == []  # refused before anything was created
    failed = deployment.operations.get(step="ensure_account")
    assert failed.status == ProvisioningOperation.Status.FAILED


def test_quota_taken_after_the_account_exists_still_fails_readably(engine, zone, marketing):
    provision(new_deployment(zone, marketing, name="first", capacity=5))
    requests.put(
        f"{engine.url}/_emulator/quotas",
        json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o-mini", "limit": 10},
        timeout=5,
    ).raise_for_status()

    deployment = provision(new_deployment(zone, marketing, name="second", capacity=8))

    assert deployment.state == State.FAILED
    assert deployment.status_message.startswith(
        "Sweden Central has 5K TPM of gpt-4o-mini (GlobalStandard) left"
    )
    assert deployment.operations.get(step="ensure_deployment").status == ProvisioningOperation.Status.FAILED


def test_an_unknown_model_fails_and_leaves_no_deployment_behind(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing, model="gpt-9", version="2030-01-01"))

    assert deployment.state == State.FAILED
    assert "gpt-9 2030-01-01" in deployment.status_message
    assert "cannot be deployed in Sweden Central" in deployment.status_message
    assert list(azure().accounts.list()) == []


def test_runs_survive_throttling_and_server_errors_without_duplicates(engine, zone, marketing):
    for operation in [
        "accounts.put",
        "accounts.get",
        "deployments.put",
        "deployments.get",
        "roleAssignments.put",
    ]:
        engine.inject(operation=operation, kind="429", rate=0.3)
        engine.inject(operation=operation, kind="500", rate=0.15)
    departments = [marketing, *(make_department(name=f"Dept {n}") for n in range(4))]
    deployments = [
        new_deployment(
            zone, departments[n % 5], name=f"dep-{n}", capacity=2, region=["swedencentral", "eastus2"][n % 2]
        )
        for n in range(20)
    ]

    finished = [provision(deployment) for deployment in deployments]

    assert Counter(d.state for d in finished) == {State.ACTIVE: 20}
    requests.delete(f"{engine.url}/_emulator/faults", timeout=5)
    accounts = list(azure().accounts.list())
    assert len(accounts) == 2  # one per region for this zone and network mode
    names = Counter(
        d.name for account in accounts for d in azure().deployments.list(ZONE_GROUP, account.name)
    )
    assert names == {f"dep-{n}": 1 for n in range(20)}


def test_a_failed_azure_provisioning_is_put_again(engine, zone, marketing):
    engine.inject(operation="deployments.put", kind="lro_failure", count=1)

    deployment = provision(new_deployment(zone, marketing))

    assert deployment.state == State.ACTIVE
    assert deployment.operations.get(step="ensure_deployment").attempt == 2


def test_drift_flags_a_deployment_deleted_behind_the_portals_back(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing))
    azure().deployments.begin_delete(ZONE_GROUP, deployment.account.name, deployment.name).result()
    other = provision(new_deployment(zone, marketing, name="resized", capacity=5))
    from tests.emulator.fixtures import model_deployment

    azure().deployments.begin_create_or_update(
        ZONE_GROUP, other.account.name, "resized", model_deployment(capacity=9)
    ).result()
    azure().deployments.begin_create_or_update(
        ZONE_GROUP, other.account.name, "stranger", model_deployment(capacity=1)
    ).result()

    assert drift.deployments_check_drift() == 2

    assert ModelDeployment.objects.get(pk=deployment.pk).drift == {
        "exists": {"switchyard": True, "azure": False}
    }
    assert ModelDeployment.objects.get(pk=other.pk).drift == {"capacity": {"switchyard": 5, "azure": 9}}
    assert OpenAIAccount.objects.get(pk=other.account.pk).drift == {"unknown_deployments": ["stranger"]}


def test_a_retried_run_after_a_failure_redoes_the_steps_that_never_succeeded(engine, zone, marketing):
    engine.inject(operation="roleAssignments.put", kind="500", count=20)
    deployment = new_deployment(zone, marketing)
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    # The account gets made; then the role assignment keeps failing.
    with pytest.raises(TransientAzureError):
        run_until_transient_error(deployment, token)
    # What the task does once its retries are spent.
    services.deployment_fail(deployment_id=deployment.pk, message="Azure kept failing.")
    requests.delete(f"{engine.url}/_emulator/faults", timeout=5)

    deployment = provision(ModelDeployment.objects.get(pk=deployment.pk))

    assert deployment.state == State.ACTIVE
    steps = list(deployment.operations.filter(run=deployment.run).values_list("step", flat=True))
    assert "grant_role" in steps


def test_an_overdue_step_is_sent_again_and_only_one_message_can_take_it(engine, zone, marketing):
    deployment = new_deployment(zone, marketing)
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    # The worker that held the first step's message died before it was due.
    ModelDeployment.objects.filter(pk=deployment.pk).update(next_step_at="2020-01-01T00:00:00Z")

    assert services.deployments_resume_stalled(overdue_seconds=10) == [deployment.pk]

    # The copy carries the run's token; the first message to run it hands the next step a new
    # one, so the other copy (or a late original) finds nothing to do.
    assert services.deployment_provision(deployment_id=deployment.pk, token=token) is not None
    next_token = services.deployment_schedule_next_step(deployment_id=deployment.pk, token=token, seconds=0.1)
    assert next_token not in {None, token}
    assert services.deployment_provision(deployment_id=deployment.pk, token=token) is None
    assert services.deployment_schedule_next_step(deployment_id=deployment.pk, token=token, seconds=1) is None
    assert run(services.deployment_provision, deployment).state == State.ACTIVE


def test_a_step_that_is_not_yet_due_is_left_alone(engine, zone, marketing):
    deployment = new_deployment(zone, marketing)
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    # A retry backing off for two minutes is waiting, not stalled.
    services.deployment_schedule_next_step(deployment_id=deployment.pk, token=token, seconds=120)

    assert services.deployments_resume_stalled(overdue_seconds=10) == []


def quota_used(model: str = "gpt-4o-mini", region: str = "swedencentral") -> float:
    usage = {u.name.value: u.current_value for u in azure().usages.list(region)}
    return float(usage[f"OpenAI.GlobalStandard.{model}"])


def clean_up(deployment: ModelDeployment) -> ModelDeployment:
    """Drive the clean-up the failed run started, as its Celery task would."""
    assert ModelDeployment.objects.get(pk=deployment.pk).is_cleaning_up
    return run(services.deployment_clean_up, deployment)


def test_a_run_that_gives_up_removes_the_deployment_and_the_account_it_created(engine, zone, marketing):
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)

    deployment = provision(new_deployment(zone, marketing))

    assert deployment.state == State.FAILED
    assert deployment.status_message == "Azure failed to create the deployment marketing-copy 3 times."
    assert quota_used() == 20  # the failed deployment still holds its quota...
    deployment = clean_up(deployment)

    assert deployment.state == State.FAILED
    assert not deployment.is_cleaning_up
    assert deployment.status_message == (
        "Azure failed to create the deployment marketing-copy 3 times. "
        "What the run created in Azure has been removed, so it holds no quota."
    )
    assert quota_used() == 0  # ...until the run removes it
    assert list(azure().accounts.list()) == []
    assert list(azure().deleted_accounts.list()) == []  # purged
    assert OpenAIAccount.objects.get().state == OpenAIAccount.State.DELETED
    assert dict(deployment.operations.filter(run=deployment.run).values_list("step", "status")) == {
        "ensure_account": "succeeded",
        "ensure_content_filter": "succeeded",
        "grant_role": "succeeded",
        "ensure_deployment": "failed",
        "delete_deployment": "succeeded",
        "delete_account": "succeeded",
        "purge_account": "succeeded",
    }


def test_a_run_that_gives_up_keeps_the_account_other_deployments_use(engine, zone, marketing):
    kept = provision(new_deployment(zone, marketing, name="kept", capacity=5))
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)

    failed = clean_up(provision(new_deployment(zone, marketing, name="failed", capacity=5)))

    assert [d.name for d in azure().deployments.list(ZONE_GROUP, kept.account.name)] == ["kept"]
    assert quota_used() == 5
    steps = failed.operations.filter(run=failed.run).values_list("step", flat=True)
    assert "delete_account" not in steps


def test_retries_spent_on_a_first_run_start_the_clean_up_too(engine, zone, marketing):
    engine.inject(operation="deployments.get", kind="500", count=1000)
    deployment = new_deployment(zone, marketing)
    services.deployment_request_provisioning(deployment=deployment)
    token = ModelDeployment.objects.get(pk=deployment.pk).run_token
    with pytest.raises(TransientAzureError):
        run_until_transient_error(deployment, token)
    # What the task does once its retries are spent.
    services.deployment_fail(deployment_id=deployment.pk, token=token, message="Azure kept failing.")
    requests.delete(f"{engine.url}/_emulator/faults", timeout=5)

    deployment = clean_up(deployment)

    assert deployment.status_message.startswith("Azure kept failing. What the run created")
    assert list(azure().accounts.list()) == []


def test_a_refusal_before_anything_was_created_has_nothing_to_remove(engine, zone, marketing):
    requests.put(
        f"{engine.url}/_emulator/quotas",
        json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o-mini", "limit": 10},
        timeout=5,
    ).raise_for_status()

    deployment = provision(new_deployment(zone, marketing, capacity=50))

    assert deployment.state == State.FAILED
    assert not deployment.is_cleaning_up
    assert list(deployment.operations.values_list("step", flat=True)) == ["ensure_account"]


def test_a_failed_capacity_change_keeps_the_deployment_that_works(engine, zone, marketing):
    deployment = provision(new_deployment(zone, marketing, capacity=10))
    requests.put(
        f"{engine.url}/_emulator/quotas",
        json={"location": "swedencentral", "usageName": "OpenAI.GlobalStandard.gpt-4o-mini", "limit": 20},
        timeout=5,
    ).raise_for_status()

    services.deployment_change_capacity(deployment=deployment, capacity=40)
    deployment = run(services.deployment_provision, deployment)

    assert deployment.state == State.FAILED
    assert not deployment.is_cleaning_up
    assert azure().deployments.get(ZONE_GROUP, deployment.account.name, deployment.name).sku.capacity == 10


def test_a_clean_up_that_azure_keeps_refusing_gives_up_and_says_so(engine, zone, marketing):
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)
    engine.inject(operation="deployments.delete", kind="lro_failure", count=3)

    deployment = clean_up(provision(new_deployment(zone, marketing)))

    assert not deployment.is_cleaning_up
    assert "Removing what the run created in Azure failed too" in deployment.status_message
    assert "Azure failed to delete the deployment marketing-copy 3 times" in deployment.status_message
    assert quota_used() == 20


def test_retrying_a_failed_run_while_it_cleans_up_takes_over(engine, zone, marketing):
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)
    failed = provision(new_deployment(zone, marketing))
    clean_up_token = ModelDeployment.objects.get(pk=failed.pk).run_token

    services.deployment_request_provisioning(deployment=failed)

    assert services.deployment_clean_up(deployment_id=failed.pk, token=clean_up_token) is None
    deployment = run(services.deployment_provision, failed)
    assert deployment.state == State.ACTIVE
    assert [d.name for d in azure().deployments.list(ZONE_GROUP, deployment.account.name)] == [
        "marketing-copy"
    ]
