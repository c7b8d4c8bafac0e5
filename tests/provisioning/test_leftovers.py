"""What Azure holds in Switchyard's landing zones that no Switchyard deployment uses: the drift
check finds it with the quota it holds, and a platform admin removes it, audited."""

import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from audit.models import AuditEvent
from provisioning import drift, leftovers, services
from provisioning.azure import cognitive_services_client
from provisioning.models import LeftoverResource, ModelDeployment
from tests.emulator.fixtures import SUBSCRIPTION, keyless_account, model_deployment
from tests.factories import make_department, make_deployment, make_landing_zone
from tests.provisioning.test_engine import ZONE_GROUP, clean_up, provision, quota_used, run

Kind = LeftoverResource.Kind
State = ModelDeployment.State


@pytest.fixture
def engine(emulator, settings):
    settings.PROVISIONING_POLL_SECONDS = 0.1
    return emulator


@pytest.fixture
def zone(db):
    return make_landing_zone(
        name="Central IT shared", slug="central", subscription_id=SUBSCRIPTION, resource_group=ZONE_GROUP
    )


@pytest.fixture
def sales(db):
    return make_department(name="Sales")


def azure():
    return cognitive_services_client(SUBSCRIPTION)


def new_deployment(zone, department, *, name, capacity=20):
    return make_deployment(
        department=department, landing_zone=zone, name=name, capacity=capacity, state=State.REQUESTED
    )


def failed_and_not_cleaned_up(engine, zone, department, *, name="stuck"):
    """A first run Azure refuses three times, and whose clean-up Azure refuses too."""
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)
    engine.inject(operation="deployments.delete", kind="lro_failure", count=3)
    failed = clean_up(provision(new_deployment(zone, department, name=name)))
    requests.delete(f"{engine.url}/_emulator/faults", timeout=5)
    return failed


def leftovers_by_name():
    return {
        (leftover.kind, leftover.deployment_name or leftover.account_name): leftover
        for leftover in LeftoverResource.objects.all()
    }


def remove(leftover, actor, *, limit_seconds: float = 30):
    """Ask for the removal, then drive it as its Celery task would."""
    started = leftovers.leftover_remove(leftover=leftover, actor=actor)
    deadline = time.monotonic() + limit_seconds
    while (wait := leftovers.leftover_advance_removal(leftover_id=started.pk, token=None)) is not None:
        assert time.monotonic() < deadline, "the removal did not finish"
        time.sleep(min(wait, 0.1))
    return LeftoverResource.objects.filter(pk=started.pk).first()


def test_the_drift_check_reports_what_no_switchyard_deployment_uses_with_the_quota_it_holds(
    engine, zone, sales
):
    kept = provision(new_deployment(zone, sales, name="kept", capacity=5))
    failed = failed_and_not_cleaned_up(engine, zone, sales)
    account = kept.account.name
    azure().deployments.begin_create_or_update(
        ZONE_GROUP, account, "stranger", model_deployment(capacity=3)
    ).result()
    azure().accounts.begin_create(ZONE_GROUP, "oai-by-hand", keyless_account("oai-by-hand")).result()
    azure().accounts.begin_create(ZONE_GROUP, "oai-deleted", keyless_account("oai-deleted")).result()
    azure().accounts.begin_delete(ZONE_GROUP, "oai-deleted").result()

    drift.deployments_check_drift()

    found = leftovers_by_name()
    assert set(found) == {
        (Kind.DEPLOYMENT, "stuck"),
        (Kind.DEPLOYMENT, "stranger"),
        (Kind.ACCOUNT, "oai-by-hand"),
        (Kind.DELETED_ACCOUNT, "oai-deleted"),
    }
    stuck = found[(Kind.DEPLOYMENT, "stuck")]
    assert (stuck.reason, stuck.azure_state, stuck.region) == ("failed", "Failed", "swedencentral")
    assert stuck.holds == "20K TPM of gpt-4o-mini (GlobalStandard)"
    assert stuck.deployment == failed
    assert stuck.account_name == account
    stranger = found[(Kind.DEPLOYMENT, "stranger")]
    assert (stranger.reason, stranger.holds, stranger.deployment) == (
        "unused",
        "3K TPM of gpt-4o-mini (GlobalStandard)",
        None,
    )
    assert found[(Kind.ACCOUNT, "oai-by-hand")].reason == "unused"
    assert found[(Kind.DELETED_ACCOUNT, "oai-deleted")].reason == "not_purged"
    assert found[(Kind.DELETED_ACCOUNT, "oai-deleted")].purge_scheduled_at is not None


def test_an_account_only_a_failed_deployment_is_left_on_is_left_over_too(engine, zone, sales):
    failed_and_not_cleaned_up(engine, zone, sales)

    drift.deployments_check_drift()

    assert set(leftovers_by_name()) == {(Kind.DEPLOYMENT, "stuck"), (Kind.ACCOUNT, failed_account_name())}


def failed_account_name():
    return ModelDeployment.objects.get(name="stuck").account.name


def test_nothing_is_left_over_while_runs_are_under_way_or_after_a_clean_one(engine, zone, sales):
    provision(new_deployment(zone, sales, name="kept"))
    engine.inject(operation="deployments.put", kind="lro_failure", count=3)
    failed = provision(new_deployment(zone, sales, name="failing"))
    assert ModelDeployment.objects.get(pk=failed.pk).is_cleaning_up

    drift.deployments_check_drift()
    assert not LeftoverResource.objects.exists()  # the clean-up will remove it

    clean_up(failed)
    drift.deployments_check_drift()
    assert not LeftoverResource.objects.exists()


def test_a_leftover_azure_no_longer_has_is_forgotten(engine, zone, sales):
    kept = provision(new_deployment(zone, sales, name="kept"))
    azure().deployments.begin_create_or_update(
        ZONE_GROUP, kept.account.name, "stranger", model_deployment(capacity=3)
    ).result()
    drift.deployments_check_drift()
    assert LeftoverResource.objects.count() == 1

    azure().deployments.begin_delete(ZONE_GROUP, kept.account.name, "stranger").result()
    drift.deployments_check_drift()

    assert not LeftoverResource.objects.exists()


def test_an_active_deployment_azure_reports_failed_is_drift(engine, zone, sales):
    kept = provision(new_deployment(zone, sales, name="kept", capacity=5))
    engine.inject(operation="deployments.put", kind="lro_failure", count=1)
    update = azure().deployments.begin_create_or_update(
        ZONE_GROUP, kept.account.name, "kept", model_deployment(capacity=5)
    )
    with pytest.raises(HttpResponseError):
        update.result()  # someone's update in the Azure portal failed

    assert drift.deployments_check_drift() == 1

    assert ModelDeployment.objects.get(pk=kept.pk).drift == {
        "state": {"switchyard": "Active", "azure": "Failed"}
    }
    assert not LeftoverResource.objects.exists()  # Switchyard still runs it


def test_an_admin_removes_a_failed_deployment_and_its_quota_is_free(engine, zone, sales, platform_admin):
    failed_and_not_cleaned_up(engine, zone, sales)
    drift.deployments_check_drift()
    assert quota_used() == 20

    gone = remove(leftovers_by_name()[(Kind.DEPLOYMENT, "stuck")], platform_admin)

    assert gone is None
    assert quota_used() == 0
    assert [d.name for d in azure().deployments.list(ZONE_GROUP, failed_account_name())] == []
    verbs = list(
        AuditEvent.objects.filter(object_type="provisioning.leftoverresource").values_list("verb", "actor")
    )
    assert verbs == [("leftover.removal_requested", platform_admin.pk), ("leftover.removed", None)]


def test_an_admin_removes_an_account_and_it_is_purged(engine, zone, sales, platform_admin):
    azure().accounts.begin_create(ZONE_GROUP, "oai-by-hand", keyless_account("oai-by-hand")).result()
    azure().accounts.begin_create(ZONE_GROUP, "oai-deleted", keyless_account("oai-deleted")).result()
    azure().accounts.begin_delete(ZONE_GROUP, "oai-deleted").result()
    drift.deployments_check_drift()

    remove(leftovers_by_name()[(Kind.ACCOUNT, "oai-by-hand")], platform_admin)
    remove(leftovers_by_name()[(Kind.DELETED_ACCOUNT, "oai-deleted")], platform_admin)

    assert list(azure().accounts.list()) == []
    assert list(azure().deleted_accounts.list()) == []
    drift.deployments_check_drift()
    assert not LeftoverResource.objects.exists()


def test_only_platform_admins_remove_leftovers(engine, zone, sales, finance_approver):
    failed_and_not_cleaned_up(engine, zone, sales)
    drift.deployments_check_drift()
    leftover = leftovers_by_name()[(Kind.DEPLOYMENT, "stuck")]

    with pytest.raises(leftovers.LeftoverRemovalRefused, match="Only platform admins"):
        leftovers.leftover_remove(leftover=leftover, actor=finance_approver)

    assert LeftoverResource.objects.get(pk=leftover.pk).state == LeftoverResource.State.FOUND


def test_a_leftover_a_deployment_uses_again_is_not_removed(engine, zone, sales, platform_admin):
    failed = failed_and_not_cleaned_up(engine, zone, sales)
    drift.deployments_check_drift()
    leftover = leftovers_by_name()[(Kind.DEPLOYMENT, "stuck")]
    services.deployment_request_provisioning(deployment=failed)  # an admin retries the request

    with pytest.raises(leftovers.LeftoverRemovalRefused, match=r"uses the deployment stuck on .* again"):
        leftovers.leftover_remove(leftover=leftover, actor=platform_admin)

    assert run(services.deployment_provision, failed).state == State.ACTIVE


def test_a_removal_azure_keeps_refusing_is_marked_failed_with_the_reason(engine, zone, sales, platform_admin):
    failed_and_not_cleaned_up(engine, zone, sales)
    drift.deployments_check_drift()
    engine.inject(operation="deployments.delete", kind="lro_failure", count=3)

    left = remove(leftovers_by_name()[(Kind.DEPLOYMENT, "stuck")], platform_admin)

    assert left.state == LeftoverResource.State.REMOVAL_FAILED
    assert left.error == "Azure failed to delete the deployment stuck 3 times."
    assert AuditEvent.objects.filter(verb="leftover.removal_failed", object_id=str(left.pk)).exists()
    assert quota_used() == 20
