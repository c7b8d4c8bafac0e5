"""The operations page: who may open it, and figures that equal what the test's minute rows,
usage and sync runs make, for each window."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from calls.models import CallMinute
from chat.models import Conversation
from money.models import UsageRecord
from org.models import DirectorySyncRun, Membership
from provisioning.models import ModelDeployment
from tests.factories import make_deployment, make_user
from tests.operations.conftest import PAGE, row_of, tables

Sku = ModelDeployment.Sku


def page_tables(client: Client, query: str = "") -> tuple[str, dict[str, list[list[str]]]]:
    response = client.get(PAGE + query)
    assert response.status_code == 200
    html = response.content.decode()
    return html, tables(html)


# Who may open it ------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(db):
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={PAGE}"


@pytest.mark.parametrize(
    "person", ["marketing_lead", "marketing_member", "finance_approver", "security_approver"]
)
def test_people_who_do_not_run_the_service_are_refused(request, client_for, person):
    # A department's lead or member (another department's page, in effect), and the approvers
    # who see every department's costs or the audit trail: none of them runs the service.
    user = request.getfixturevalue(person)
    response = client_for(user).get(PAGE)
    assert response.status_code == 403
    assert "Operations" not in [item.label for item in response.context["nav_items"]]


def test_a_platform_admin_opens_it_from_the_navigation(client_for, platform_admin):
    response = client_for(platform_admin).get("/")
    links = {item.label: item.url for item in response.context["nav_items"]}
    assert links["Operations"] == PAGE
    response = client_for(platform_admin).get(PAGE)
    assert response.status_code == 200
    assert "Service health" in response.content.decode()


# Deployments, per window ----------------------------------------------------------------------


@pytest.fixture
def assistant(now, marketing, finance) -> ModelDeployment:
    return make_deployment(
        department=marketing, display_name="Marketing copy assistant", shared_with=[finance]
    )


@pytest.fixture
def calls(minute_row, assistant, marketing, finance) -> None:
    """Calls to one deployment at known distances from now: inside the hour, the day, the week,
    on the edge of the hour, and too old for any window."""
    minute_row(
        deployment=assistant, department=marketing, minutes_ago=2,
        calls=10, answered=9, upstream_errors=1, throttled=2, failovers=1,
        first_token_ms=[120] * 10, answer_ms=[900] * 9,
    )  # fmt: skip
    minute_row(
        deployment=assistant, department=finance, minutes_ago=59, source=CallMinute.Source.API,
        calls=10, answered=10, refused=3, first_token_ms=[120] * 9 + [1200], answer_ms=[2500] * 10,
    )  # fmt: skip
    minute_row(deployment=assistant, department=marketing, minutes_ago=60, calls=5, answered=5)
    minute_row(
        deployment=assistant, department=marketing, minutes_ago=180,
        calls=20, answered=20, first_token_ms=[40] * 20, answer_ms=[400] * 20,
    )  # fmt: skip
    minute_row(
        deployment=assistant, department=marketing, minutes_ago=2 * 24 * 60,
        calls=40, answered=40, first_token_ms=[40] * 40,
    )  # fmt: skip
    minute_row(deployment=assistant, department=marketing, minutes_ago=8 * 24 * 60, calls=1000, answered=1000)


def test_the_last_hour_adds_up_the_minutes_inside_it(client_for, platform_admin, calls):
    _, found = page_tables(client_for(platform_admin), "?window=hour")
    row = row_of(found["deployments-table"], "Marketing copy assistant")
    # 20 calls in 60 minutes; first tokens: 19 between 100 and 150 ms, 1 between 1 and 1.5 s.
    assert row[1:] == [
        "20",
        "0.3",
        "126 ms",  # the 10th of 19 in the 100-150 ms bucket: 100 + 50 x 10/19
        "150 ms",
        "2.9 s",  # 19 answers, 10 between 2 and 3 s: 2,000 + 1,000 x (0.95 x 19 - 9)/10
        "5.0% 1",
        "10.0% 2",
        "1",
        "3",
    ]


def test_the_last_day_and_week_add_older_minutes(client_for, platform_admin, calls):
    client = client_for(platform_admin)
    _, day = page_tables(client, "?window=day")
    row = row_of(day["deployments-table"], "Marketing copy assistant")
    # 45 calls; first tokens: 20 in 30-50 ms, 19 in 100-150 ms, 1 in 1-1.5 s.
    assert row[1:5] == ["45", "0.03", "50 ms", "147 ms"]
    _, week = page_tables(client, "?window=week")
    row = row_of(week["deployments-table"], "Marketing copy assistant")
    # 85 calls; first tokens: 60 in 30-50 ms, 19 in 100-150 ms, 1 in 1-1.5 s.
    assert row[1:5] == ["85", "0.01", "43 ms", "142 ms"]


def test_the_default_window_is_the_last_day_and_the_switch_marks_it(client_for, platform_admin, calls):
    client = client_for(platform_admin)
    html, found = page_tables(client)
    assert row_of(found["deployments-table"], "Marketing copy assistant")[1] == "45"
    assert '<a href="?window=day" aria-current="page">Last 24 hours</a>' in html
    html, _ = page_tables(client, "?window=week")
    assert '<a href="?window=week" aria-current="page">Last 7 days</a>' in html


def test_the_totals_add_every_deployment(client_for, platform_admin, minute_row, calls, assistant, marketing):
    other = make_deployment(department=marketing, display_name="Second assistant")
    minute_row(
        deployment=other, department=marketing, minutes_ago=5, calls=15, answered=15, first_token_ms=[40] * 15
    )
    response = client_for(platform_admin).get(PAGE + "?window=hour")
    html = response.content.decode()
    assert '<span class="stat__value" id="total-calls">35</span>' in html
    assert "0.6 a minute" in html  # 35 calls in 60 minutes
    assert '<span class="stat__value" id="total-errors">2.9%</span>' in html  # 1 of 35
    rows = tables(html)["deployments-table"]
    assert [row[0].split(" ", 1)[0] for row in rows] == ["Marketing", "Second"]  # busiest first


def test_live_deployments_without_calls_show_as_quiet_and_gone_ones_only_with_calls(
    client_for, platform_admin, minute_row, now, marketing
):
    make_deployment(department=marketing, display_name="Unused assistant")
    make_deployment(
        department=marketing, display_name="Retired quietly", state=ModelDeployment.State.DECOMMISSIONED
    )
    retired = make_deployment(
        department=marketing, display_name="Retired today", state=ModelDeployment.State.DECOMMISSIONED
    )
    minute_row(deployment=retired, department=marketing, minutes_ago=30, calls=4, answered=4)
    _, found = page_tables(client_for(platform_admin), "?window=hour")
    rows = found["deployments-table"]
    assert row_of(rows, "Unused assistant")[1:] == ["0", "No calls last hour."]
    assert row_of(rows, "Retired today")[0].endswith("decommissioned")
    assert row_of(rows, "Retired today")[1] == "4"
    assert not [row for row in rows if row[0].startswith("Retired quietly")]


def test_an_empty_estate_reads_well(client_for, platform_admin):
    html = client_for(platform_admin).get(PAGE).content.decode()
    assert "No deployment is live yet." in html
    assert "No provisioned (PTU) deployment is live." in html
    assert "Sign-in with Microsoft is not configured here" in html


@pytest.mark.parametrize("window", ["month", "", "<script>alert(1)</script>", "hour&window=day"])
def test_a_window_the_page_does_not_know_is_refused_with_a_message(client_for, platform_admin, window):
    response = client_for(platform_admin).get(PAGE, {"window": window})
    html = response.content.decode()
    if window == "":
        assert response.status_code == 200  # no choice: the default
        return
    assert response.status_code == 400
    assert "Choose the last hour, the last 24 hours or the last 7 days." in html
    assert "<script>alert(1)</script>" not in html


# Provisioned throughput -----------------------------------------------------------------------


def provisioned(department, name: str, *, model: str, version: str, units: int, now) -> ModelDeployment:
    deployment = make_deployment(
        department=department,
        display_name=name,
        model_name=model,
        model_version=version,
        sku=Sku.GLOBAL_PROVISIONED,
        capacity=units,
    )
    # Live long before the window: the whole window's throughput was paid for.
    ModelDeployment.objects.filter(pk=deployment.pk).update(created_at=now - timedelta(days=30))
    deployment.refresh_from_db()
    return deployment


def test_idle_and_saturated_provisioned_deployments_stand_out(
    client_for, platform_admin, minute_row, now, marketing
):
    # gpt-4o-mini: a PTU serves 37,000 input or 12,333 output tokens a minute; gpt-4.1: 3,000 or 750.
    idle = provisioned(
        marketing, "Nightly batch", model="gpt-4o-mini", version="2024-07-18", units=50, now=now
    )
    minute_row(
        deployment=idle, department=marketing, minutes_ago=10, calls=10, answered=10, input_tokens=1_000_000
    )
    steady = provisioned(
        marketing, "Steady pipeline", model="gpt-4.1", version="2025-04-14", units=50, now=now
    )
    for minutes_ago in range(60):
        # 45,000 / 3,000 + 7,500 / 750 = 25 PTU-minutes of 50: half the units, every minute.
        minute_row(
            deployment=steady, department=marketing, minutes_ago=minutes_ago,
            calls=5, answered=5, input_tokens=45_000, output_tokens=7_500,
        )  # fmt: skip
    burst = provisioned(marketing, "One burst", model="gpt-4.1", version="2025-04-14", units=50, now=now)
    minute_row(
        deployment=burst, department=marketing, minutes_ago=7, calls=3, answered=3, input_tokens=150_000
    )
    peaky = provisioned(marketing, "Peaky pipeline", model="gpt-4.1", version="2025-04-14", units=50, now=now)
    for minutes_ago in (3, 4, 5):
        # 150,000 input tokens in a minute (both sources together) is all 50 PTUs of gpt-4.1.
        minute_row(
            deployment=peaky, department=marketing, minutes_ago=minutes_ago,
            calls=30, answered=30, input_tokens=140_000,
        )  # fmt: skip
        minute_row(
            deployment=peaky, department=marketing, minutes_ago=minutes_ago, source=CallMinute.Source.API,
            calls=2, answered=2, input_tokens=10_000,
        )  # fmt: skip
    throttled = provisioned(
        marketing, "Throttled pipeline", model="gpt-4.1", version="2025-04-14", units=100, now=now
    )
    minute_row(deployment=throttled, department=marketing, minutes_ago=1, calls=10, answered=10, throttled=3)
    make_deployment(department=marketing, display_name="Pay as you go")

    html, found = page_tables(client_for(platform_admin), "?window=hour")
    rows = found["ptu-table"]
    assert not [row for row in rows if row[0].startswith("Pay as you go")]
    # 1,000,000 input tokens on 50 PTUs in an hour: 20,000 per PTU-hour of 2,220,000, though
    # all in one minute (54% of that minute's 1,850,000).
    assert row_of(rows, "Nightly batch")[1:] == [
        "50",
        "20,000",
        "2,220,000",
        "0.9%",
        "54.1%",
        "0 of 60",
        "Idle",
    ]
    assert row_of(rows, "Steady pipeline")[1:] == [
        "50",
        "63,000",
        "180,000",
        "50.0%",
        "50.0%",
        "0 of 60",
        "In use",
    ]
    # One full minute in an hour is a burst on an idle deployment; three (5% of the hour) are not.
    assert row_of(rows, "One burst")[4:] == ["1.7%", "100.0%", "1 of 60", "Idle"]
    assert row_of(rows, "Peaky pipeline")[4:] == ["5.0%", "100.0%", "3 of 60", "Saturated"]
    assert row_of(rows, "Throttled pipeline")[-1] == "Saturated 3 throttled (429)"
    assert 'class="ptu-idle" data-deployment="' in html
    assert 'class="ptu-saturated" data-deployment="' in html


def test_a_provisioned_deployment_made_during_the_window_is_judged_on_its_time_live(
    client_for, platform_admin, minute_row, now, marketing
):
    new = provisioned(marketing, "New pipeline", model="gpt-4.1", version="2025-04-14", units=50, now=now)
    ModelDeployment.objects.filter(pk=new.pk).update(created_at=now - timedelta(minutes=10))
    for minutes_ago in range(10):
        minute_row(
            deployment=new, department=marketing, minutes_ago=minutes_ago, calls=1, input_tokens=75_000
        )
    _, found = page_tables(client_for(platform_admin), "?window=week")
    # 10 x 75,000 / 3,000 = 250 PTU-minutes of the 50 x 11 minutes it has been live, not of a week.
    assert row_of(found["ptu-table"], "New pipeline")[4:] == ["45.5%", "50.0%", "0 of 11", "In use"]


# Adoption ---------------------------------------------------------------------------------------


def usage(department, deployment, *, user=None, source=UsageRecord.Source.CHAT, at) -> UsageRecord:
    return UsageRecord.objects.create(
        department=department,
        deployment=deployment,
        user=user,
        source=source,
        input_tokens=100,
        output_tokens=100,
        cost=Decimal("0.01"),
        created_at=at,
    )


def test_adoption_counts_the_last_week_per_department(
    client_for, platform_admin, now, marketing, finance, assistant
):
    people = [make_user(department=marketing) for _ in range(3)]
    make_user(department=finance)
    for person in people[:2]:
        usage(marketing, assistant, user=person, at=now - timedelta(days=1))
    usage(marketing, assistant, user=people[0], at=now - timedelta(days=2))
    usage(marketing, assistant, user=people[2], at=now - timedelta(days=8))  # before the week
    usage(marketing, assistant, source=UsageRecord.Source.API, at=now - timedelta(hours=3))
    usage(marketing, assistant, source=UsageRecord.Source.API, at=now - timedelta(hours=4))
    usage(finance, assistant, source=UsageRecord.Source.API, at=now - timedelta(days=6))
    recent = Conversation.objects.create(user=people[0], deployment=assistant, department=marketing)
    Conversation.objects.create(user=people[1], deployment=assistant, department=marketing)
    old = Conversation.objects.create(user=people[2], deployment=assistant, department=marketing)
    Conversation.objects.filter(pk=old.pk).update(updated_at=now - timedelta(days=10))
    Conversation.objects.filter(pk=recent.pk).update(updated_at=now - timedelta(days=6))

    _, found = page_tables(client_for(platform_admin))
    rows = found["adoption-table"]
    assert row_of(rows, "Marketing") == ["Marketing", "2 66.7% of members", "3", "2", "3", "2"]
    assert row_of(rows, "Finance") == ["Finance", "0 0.0% of members", "1", "0", "0", "1"]
    assert Membership.objects.count() == 4


# The Microsoft Graph sync ---------------------------------------------------------------------


def run(now, *, minutes_ago: int, outcome: str, error: str = "", **counters) -> DirectorySyncRun:
    started = now - timedelta(minutes=minutes_ago)
    return DirectorySyncRun.objects.create(
        started_at=started,
        finished_at=None if outcome == DirectorySyncRun.Outcome.RUNNING else started + timedelta(seconds=40),
        outcome=outcome,
        error=error,
        **counters,
    )


Outcome = DirectorySyncRun.Outcome


def test_a_failed_last_sync_is_a_warning_with_its_reason(client_for, platform_admin, now, settings):
    settings.ENTRA_ENABLED = True
    run(now, minutes_ago=20, outcome=Outcome.SUCCEEDED, people_checked=12, memberships_removed=1)
    run(now, minutes_ago=5, outcome=Outcome.FAILED, error="Microsoft Graph answered 503 Service Unavailable")
    response = client_for(platform_admin).get(PAGE)
    html = response.content.decode()
    assert 'id="sync-warning"' in html
    assert "The last sync with Microsoft Entra ID failed" in html
    assert "Microsoft Graph answered 503 Service Unavailable" in html
    assert "Last successful sync: 4 Dec 2026, 11:40." in html
    rows = tables(html)["sync-table"]
    assert [row[1].split(" ")[0] for row in rows] == ["Failed", "Succeeded"]
    assert rows[1][3:] == ["12", "0 · 0 · 1", "0", "0"]


def test_a_run_under_way_after_a_failure_keeps_the_warning_and_a_success_clears_it(
    client_for, platform_admin, now, settings
):
    settings.ENTRA_ENABLED = True
    client = client_for(platform_admin)
    run(now, minutes_ago=20, outcome=Outcome.FAILED, error="Graph could not be reached")
    run(now, minutes_ago=1, outcome=Outcome.RUNNING)
    html = client.get(PAGE).content.decode()
    assert "The last sync with Microsoft Entra ID failed" in html
    assert "No sync has succeeded yet." in html
    DirectorySyncRun.objects.filter(outcome=Outcome.RUNNING).update(
        outcome=Outcome.SUCCEEDED, finished_at=now
    )
    html = client.get(PAGE).content.decode()
    assert 'id="sync-warning"' not in html


def test_a_sync_that_stopped_running_is_overdue(client_for, platform_admin, now, settings):
    settings.ENTRA_ENABLED = True
    run(now, minutes_ago=3 * 60, outcome=Outcome.SUCCEEDED)
    html = client_for(platform_admin).get(PAGE).content.decode()
    assert "The sync with Microsoft Entra ID is overdue" in html


def test_no_sync_yet_reads_well(client_for, platform_admin, now, settings):
    settings.ENTRA_ENABLED = True
    html = client_for(platform_admin).get(PAGE).content.decode()
    assert "No sync has run yet." in html
    assert 'id="sync-warning"' not in html


def test_slow_answers_past_the_last_bucket_read_as_a_floor(client_for, platform_admin, minute_row, marketing):
    slow = make_deployment(department=marketing, display_name="Slow assistant")
    minute_row(
        deployment=slow, department=marketing, minutes_ago=1,
        calls=4, answered=4, first_token_ms=[900] * 4, answer_ms=[200_000] * 4,
    )  # fmt: skip
    _, found = page_tables(client_for(platform_admin), "?window=hour")
    assert row_of(found["deployments-table"], "Slow assistant")[3:6] == ["875 ms", "988 ms", "over 2 min"]


def test_the_page_reads_as_many_times_whatever_the_number_of_minutes(
    client_for, platform_admin, minute_row, marketing, finance
):
    """The figures are summed by the database: more minute rows, departments or sources mean no
    more queries (there is one per provisioned deployment, for its busiest minutes)."""
    standard = make_deployment(department=marketing, display_name="Busy assistant")
    ptu = make_deployment(department=marketing, display_name="Pipeline", sku=Sku.PROVISIONED, capacity=50)
    client = client_for(platform_admin)
    minute_row(deployment=standard, department=marketing, minutes_ago=1, calls=1, first_token_ms=[100])
    client.get(PAGE)  # the first request of a session reads a little more
    with CaptureQueriesContext(connection) as few_minutes:
        client.get(PAGE + "?window=week")
    for minutes_ago in range(2, 200):
        for department in (marketing, finance):
            for source in CallMinute.Source.values:
                for deployment in (standard, ptu):
                    minute_row(
                        deployment=deployment, department=department, minutes_ago=minutes_ago, source=source,
                        calls=3, input_tokens=900, first_token_ms=[100, 200, 300], answer_ms=[900, 1900],
                    )  # fmt: skip
    with CaptureQueriesContext(connection) as many_minutes:
        response = client.get(PAGE + "?window=week")
    assert response.status_code == 200
    assert row_of(tables(response.content.decode())["deployments-table"], "Busy assistant")[1] == "2,377"
    assert len(many_minutes.captured_queries) == len(few_minutes.captured_queries)
