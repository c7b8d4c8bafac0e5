"""Admission by reservation as a service: all-or-nothing reservations that hold under real
concurrency, settlement however a call ends, and reservations that never leak."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DataError, close_old_connections, connection, transaction
from django.utils import timezone

from money import windows
from money.admission import (
    AdmissionRefused,
    Usage,
    admission_held,
    admission_plan,
    admission_release,
    admission_reserve,
    admission_settle,
    call_bound,
    reservations_reconcile,
)
from money.amounts import to_units
from money.limits import Claim, department_ledger_key
from money.models import MonthlyUsageRollup, Reservation, SpendLedger, UsageRecord
from org.models import Membership
from provisioning.models import Price
from tests.factories import make_department, make_deployment, make_spend, make_user

TODAY = timezone.localdate


@pytest.fixture
def price(db) -> Price:
    price, _ = Price.objects.update_or_create(
        model_name="gpt-4o-mini",
        model_version="2024-07-18",
        sku="GlobalStandard",
        valid_from=timezone.localdate() - timedelta(days=400),
        defaults={
            "input_per_million": Decimal("0.15"),
            "cached_input_per_million": Decimal("0.075"),
            "output_per_million": Decimal("0.60"),
        },
    )
    return price


@pytest.fixture
def team(price):
    department = make_department(name="Marketing", cost_center="CC-2100")
    department.monthly_budget = Decimal("10.00")
    department.save()
    lead = make_user(email="lead@example.com", department=department, role=Membership.Role.LEAD)
    deployment = make_deployment(department=department)
    return department, deployment, lead


def claim_for(team, *, prompt_tokens=1_000, max_output_tokens=1_000, user=None) -> Claim:
    department, deployment, _lead = team
    return Claim(
        department=department,
        deployment=deployment,
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_output_tokens,
        source=UsageRecord.Source.API,
        user=user,
    )


def spent_before(team, amount: Decimal) -> None:
    make_spend(team[0], team[1], amount)


def ledger(team) -> SpendLedger:
    return SpendLedger.objects.get(key=department_ledger_key(team[0].pk, TODAY()))


def test_a_call_is_refused_when_its_bound_does_not_fit_the_budget(team):
    spent_before(team, Decimal("9.9990"))
    claim = claim_for(team, prompt_tokens=1_000, max_output_tokens=4_000)  # up to $0.00255

    with pytest.raises(AdmissionRefused) as refused:
        admission_reserve(claim=claim)

    assert refused.value.message == (
        "Marketing has $0.0010 left of its monthly budget of $10.00, and this call could cost up to "
        "$0.0026 (its prompt and the longest answer allowed). Ask Test to raise it."
    )
    assert not Reservation.objects.exists()
    assert ledger(team).held_units == 0


def test_settling_replaces_the_reservation_with_the_real_usage(team):
    claim = claim_for(team)
    admission = admission_reserve(claim=claim)
    assert ledger(team).held_units == to_units(admission.amount)

    record = admission_settle(
        reservation_id=admission.reservation_id, usage=Usage(input_tokens=900, output_tokens=100)
    )

    assert record is not None
    assert record.cost == Decimal("0.000195")  # 900 x $0.15 + 100 x $0.60 per million
    assert not record.estimated
    assert ledger(team).held_units == 0
    assert ledger(team).spent_units == to_units(record.cost)
    assert not Reservation.objects.exists()
    # Settling again (a retried job) changes nothing.
    admission_settle(
        reservation_id=admission.reservation_id, usage=Usage(input_tokens=900, output_tokens=100)
    )
    assert UsageRecord.objects.count() == 1


def test_a_call_azure_refused_gives_everything_back(team, settings):
    settings.CHAT_USER_TOKENS_PER_MINUTE = 5_000
    lead = team[2]
    claim = claim_for(team, user=lead)
    admission = admission_reserve(claim=claim)
    minute = f"person-tokens:{lead.pk}:{windows.window_number(timezone.now())}"
    assert windows.windows_used([minute]) == [2_000]

    admission_release(reservation_id=admission.reservation_id)

    assert windows.windows_used([minute]) == [0]
    assert ledger(team).held_units == 0
    assert not UsageRecord.objects.exists()


def test_a_reservation_left_by_a_dead_process_expires_and_is_settled_on_its_prompt(team, settings):
    settings.ADMISSION_RESERVATION_SECONDS = 60
    admission = admission_reserve(claim=claim_for(team, prompt_tokens=1_000, max_output_tokens=4_000))

    assert reservations_reconcile(now=timezone.now() + timedelta(seconds=30)) == 0
    assert reservations_reconcile(now=timezone.now() + timedelta(seconds=61)) == 1

    record = UsageRecord.objects.get()
    assert record.estimated
    assert (record.input_tokens, record.output_tokens) == (1_000, 0)
    assert ledger(team).held_units == 0
    assert ledger(team).spent_units == to_units(record.cost)
    assert not Reservation.objects.filter(pk=admission.reservation_id).exists()


def test_a_call_that_outlived_its_reservation_replaces_the_estimate_when_it_ends(team, settings):
    settings.ADMISSION_RESERVATION_SECONDS = 60
    admission = admission_reserve(claim=claim_for(team, prompt_tokens=1_000, max_output_tokens=4_000))
    reservations_reconcile(now=timezone.now() + timedelta(seconds=61))

    record = admission_settle(
        reservation_id=admission.reservation_id, usage=Usage(input_tokens=1_000, output_tokens=2_000)
    )

    assert record is not None
    assert UsageRecord.objects.count() == 1
    assert not record.estimated
    assert record.cost == Decimal("0.00135")
    rollup = MonthlyUsageRollup.objects.get()
    assert (rollup.requests, rollup.output_tokens, rollup.cost) == (1, 2_000, Decimal("0.00135"))
    assert ledger(team).spent_units == to_units(Decimal("0.00135"))


def test_spent_follows_the_cost_model_at_most_a_minute_behind(team):
    admission_settle(
        reservation_id=admission_reserve(claim=claim_for(team)).reservation_id,
        usage=Usage(input_tokens=10, output_tokens=10),
    )
    spent_before(team, Decimal("4.00"))  # usage the ledger did not see (a backfill, a rebuild)

    later = timezone.now() + timedelta(seconds=61)
    admission_release(reservation_id=admission_reserve(claim=claim_for(team), now=later).reservation_id)

    assert ledger(team).spent_units == to_units(Decimal("4.00") + Decimal("0.0000075"))


@pytest.mark.django_db(transaction=True)
def test_reservations_made_at_once_never_pass_the_budget(team):
    department, deployment, _lead = team
    claim = claim_for(team, prompt_tokens=1_000, max_output_tokens=1_000)  # up to $0.00075
    bound = call_bound(deployment=deployment, prompt_tokens=1_000, max_output_tokens=1_000, at=timezone.now())
    department.monthly_budget = Decimal("1.00")
    department.save()
    spent_before(team, Decimal("1.00") - bound * 5 - Decimal("0.0001"))  # room for five, not six
    results: list[object] = []
    go = threading.Barrier(20)

    def reserve() -> None:
        try:
            go.wait()
            results.append(admission_reserve(claim=claim))
        except AdmissionRefused as refused:
            results.append(refused)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = [result for result in results if isinstance(result, AdmissionRefused)]
    assert len(results) == 20
    assert len(refused) == 15
    assert {result.limit for result in refused} == {"department"}
    assert Reservation.objects.count() == 5
    assert ledger(team).held_units == 5 * to_units(bound)


@pytest.mark.django_db(transaction=True)
def test_a_call_whose_reservation_the_database_server_lost_is_recorded_when_it_settles(team):
    if connection.vendor != "postgresql":
        pytest.skip("Only on PostgreSQL does a reservation commit without waiting for the disk.")
    admission = admission_reserve(claim=claim_for(team, prompt_tokens=1_000, max_output_tokens=1_000))
    assert admission.reserved is not None  # committed on its own: its settlement gets a copy
    units = to_units(admission.amount)
    # The server crashed just after: the reservation and its hold were never written to disk.
    Reservation.objects.filter(pk=admission.reservation_id).delete()
    SpendLedger.objects.filter(pk=ledger(team).pk).update(held_units=ledger(team).held_units - units)

    record = admission_settle(
        reservation_id=admission.reservation_id,
        usage=Usage(input_tokens=1_000, output_tokens=400),
        reserved=admission.reserved,
    )

    assert record is not None
    assert (record.source, record.input_tokens, record.output_tokens) == ("api", 1_000, 400)
    assert (ledger(team).spent_units, ledger(team).held_units) == (to_units(record.cost), 0)
    # Settling it again changes nothing.
    admission_settle(
        reservation_id=admission.reservation_id,
        usage=Usage(input_tokens=1_000, output_tokens=400),
        reserved=admission.reserved,
    )
    assert UsageRecord.objects.count() == 1
    assert ledger(team).spent_units == to_units(record.cost)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a plan is a PostgreSQL statement")
def test_a_call_planned_from_what_the_process_remembers_is_admitted_as_any_other(team):
    """The gateway's admission from its event loop: the statement of a plan holds the bound and
    makes the reservation, which settles as any other; one without room changes nothing, and
    `admission_reserve` then says why."""
    admission_settle(
        reservation_id=admission_reserve(claim=claim_for(team)).reservation_id, usage=Usage(1, 1)
    )
    now = timezone.now()
    plan = admission_plan(claim=claim_for(team), now=now)
    assert plan is not None

    with connection.cursor() as cursor:
        cursor.execute(plan.sql, plan.params)
        rows = cursor.fetchall()
    admission, _stale = admission_held(plan, rows, now=now)

    assert Reservation.objects.filter(pk=admission.reservation_id).exists()
    assert ledger(team).held_units == to_units(admission.amount)
    record = admission_settle(
        reservation_id=admission.reservation_id, usage=Usage(500, 200), reserved=admission.reserved
    )
    assert record is not None
    assert ledger(team).held_units == 0

    spent_before(team, Decimal("9.9990"))
    later = timezone.now() + timedelta(seconds=61)  # the ledger reads the cost model again
    small = claim_for(team, max_output_tokens=1)
    admission_release(reservation_id=admission_reserve(claim=small, now=later).reservation_id)
    held_before = ledger(team).held_units
    plan = admission_plan(claim=claim_for(team, max_output_tokens=4_000), now=later)
    assert plan is not None
    with pytest.raises(DataError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(plan.sql, plan.params)
    assert ledger(team).held_units == held_before
    assert not Reservation.objects.filter(pk=plan.reservation.pk).exists()
    with pytest.raises(AdmissionRefused, match="monthly budget"):
        admission_reserve(claim=claim_for(team, max_output_tokens=4_000), now=later)
