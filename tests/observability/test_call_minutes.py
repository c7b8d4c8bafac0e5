"""Every model call, of the chat and of the gateway, lands once in its minute rollup (CallMinute),
written with its settlement: answered, failed over, refused by Azure, refused at admission."""

from dataclasses import replace
from decimal import Decimal

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from calls.latency import BUCKET_COUNT
from calls.models import CallMinute
from provisioning.models import Fallback, ModelDeployment
from tests.chat.conftest import ChatClient, provisioned
from tests.chat.test_streaming import start
from tests.factories import make_spend, make_user
from tests.gateway.conftest import openai_client, wait_for
from tests.operations.conftest import row_of, tables

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


def minute_of(
    deployment: ModelDeployment, source: str, *, calls: int = 1, field: str = "calls"
) -> CallMinute:
    """The deployment's one minute row for `source`, once `field` reached `calls`."""
    found = wait_for(
        lambda: CallMinute.objects.filter(
            deployment=deployment, source=source, **{f"{field}__gte": calls}
        ).first()
    )
    assert isinstance(found, CallMinute), list(CallMinute.objects.values())
    return found


@pytest.fixture
def spare(assistant, zone, marketing) -> ModelDeployment:
    fallback = provisioned(
        marketing, zone, display_name="Company assistant spare", name="company-assistant-spare", capacity=200
    )
    Fallback.objects.create(deployment=assistant, fallback=fallback, position=1)
    return fallback


def test_a_streamed_gateway_call_and_a_chat_turn_each_land_in_their_minute(
    gateway, marketing_key, assistant, marketing
):
    chunks = openai_client(gateway, marketing_key).chat.completions.create(
        model="company-assistant", messages=QUESTION, stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))
    assert browser.stream(start(browser, assistant)["stream_url"], {"content": "Hello"}).names[-1] == "done"

    for source in (CallMinute.Source.API, CallMinute.Source.CHAT):
        row = minute_of(assistant, source)
        assert (row.calls, row.answered, row.upstream_errors, row.refused, row.failovers) == (1, 1, 0, 0, 0)
        assert row.department == marketing
        assert row.input_tokens > 0
        assert row.output_tokens > 0
        assert len(row.first_token_ms) == BUCKET_COUNT
        assert sum(row.first_token_ms) == 1
        assert sum(row.answer_ms) == 1
        assert row.minute.second == 0
        assert row.minute.microsecond == 0


def test_calls_in_the_same_minute_add_up_in_one_row(gateway, marketing_key, assistant):
    client = openai_client(gateway, marketing_key)
    for _ in range(3):
        client.chat.completions.create(model="company-assistant", messages=QUESTION)

    row = minute_of(assistant, CallMinute.Source.API, calls=3)
    # The three may straddle a minute's turn: every call is counted once, in one row or two.
    rows = CallMinute.objects.filter(deployment=assistant, source=CallMinute.Source.API)
    assert sum(each.calls for each in rows) == 3 == sum(each.answered for each in rows)
    assert sum(sum(each.first_token_ms) for each in rows) == 3
    assert row.calls <= 3


def test_a_failover_counts_on_the_deployment_that_sent_it_away_and_the_call_on_the_one_that_served(
    gateway, marketing_key, assistant, spare, gateway_emulator
):
    gateway_emulator.inject(operation="chat", kind="429", deployment="company-assistant")

    openai_client(gateway, marketing_key).chat.completions.create(
        model="company-assistant", messages=QUESTION
    )

    served = minute_of(spare, CallMinute.Source.API)
    assert (served.calls, served.answered, served.failovers, served.throttled) == (1, 1, 0, 0)
    sent_away = minute_of(assistant, CallMinute.Source.API, field="failovers")
    assert (sent_away.calls, sent_away.failovers, sent_away.throttled) == (0, 1, 1)


def test_an_azure_error_is_an_upstream_error_without_latency(
    gateway, marketing_key, assistant, gateway_emulator
):
    gateway_emulator.inject(operation="chat", kind="500", deployment="company-assistant")

    with pytest.raises(openai.InternalServerError):
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION
        )

    row = minute_of(assistant, CallMinute.Source.API, field="upstream_errors")
    assert (row.calls, row.answered, row.upstream_errors) == (1, 0, 1)
    assert sum(row.first_token_ms) == 0
    assert sum(row.answer_ms) == 0


def test_a_chat_turn_azure_refuses_is_an_upstream_error(
    assistant, gateway_emulator, marketing, transactional_db
):
    gateway_emulator.inject(operation="chat", kind="500", deployment="company-assistant")
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))

    assert browser.stream(start(browser, assistant)["stream_url"], {"content": "Hello"}).names[-1] == "error"

    row = minute_of(assistant, CallMinute.Source.CHAT, field="upstream_errors")
    assert (row.calls, row.answered, row.upstream_errors) == (1, 0, 1)


def test_calls_refused_at_admission_are_counted_without_a_settlement(
    gateway, marketing_key, assistant, marketing
):
    marketing.monthly_budget = Decimal("0.01")
    marketing.save(update_fields=["monthly_budget"])
    make_spend(marketing, assistant, Decimal("0.01"))

    with pytest.raises(openai.RateLimitError):
        openai_client(gateway, marketing_key).chat.completions.create(
            model="company-assistant", messages=QUESTION
        )
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))
    assert browser.stream(start(browser, assistant)["stream_url"], {"content": "Hello"}).names[-1] == "error"

    for source in (CallMinute.Source.API, CallMinute.Source.CHAT):
        row = minute_of(assistant, source, field="refused")
        assert (row.calls, row.refused) == (0, 1)


@pytest.mark.parametrize("vendor_statement", [True, False], ids=["one statement", "orm"])
def test_minutes_add_up_bucket_by_bucket_whichever_way_they_are_written(db, monkeypatch, vendor_statement):
    from datetime import UTC, datetime

    from django.db import connection

    from calls import observe
    from calls.latency import bucket_index
    from tests.factories import make_department, make_deployment

    if not vendor_statement:
        monkeypatch.setattr(connection, "vendor", "the ORM's")
    elif connection.vendor != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")
    marketing = make_department(name="Marketing", slug="marketing")
    deployment = make_deployment(department=marketing)
    at = datetime(2026, 12, 4, 9, 30, 12, tzinfo=UTC)

    def observed(
        outcome: str, first: int | None = None, answer: int | None = None
    ) -> observe.CallObservation:
        return observe.CallObservation(
            deployment_id=deployment.pk,
            deployment="d",
            department_id=marketing.pk,
            department="marketing",
            source=observe.API,
            outcome=outcome,
            at=at,
            first_token_ms=first,
            answer_ms=answer,
            throttled=outcome == observe.UPSTREAM_ERROR,
            input_tokens=10,
            output_tokens=5,
        )

    # A row made by a refusal (no latencies), then calls added to it, twice.
    observe.call_minutes_add(
        observations=[replace(observed(observe.REFUSED), input_tokens=0, output_tokens=0)]
    )
    observe.call_minutes_add(
        observations=[observed(observe.ANSWERED, 40, 900), observed(observe.ANSWERED, 40, 2_500)]
    )
    observe.call_minutes_add(
        observations=[observed(observe.UPSTREAM_ERROR), observed(observe.ANSWERED, 130_000, 130_000)]
    )

    (row,) = CallMinute.objects.all()
    assert row.minute == at.replace(second=0)
    assert (row.calls, row.answered, row.upstream_errors, row.throttled, row.refused) == (4, 3, 1, 1, 1)
    assert (row.input_tokens, row.output_tokens) == (40, 20)
    first = [0] * BUCKET_COUNT
    answer = [0] * BUCKET_COUNT
    for milliseconds in (40, 40, 130_000):
        first[bucket_index(milliseconds)] += 1
    for milliseconds in (900, 2_500, 130_000):
        answer[bucket_index(milliseconds)] += 1
    assert row.first_token_ms == first
    assert row.answer_ms == answer


def test_the_operations_page_counts_the_calls_people_and_applications_made(
    gateway, marketing_key, assistant, marketing, client_for, platform_admin
):
    """From real calls to the page: two gateway calls and a chat turn are three calls on the
    deployment's row, every one answered, none refused, and their first tokens make the median."""
    client = openai_client(gateway, marketing_key)
    for _ in range(2):
        client.chat.completions.create(model="company-assistant", messages=QUESTION)
    browser = ChatClient(make_user(email="mark@example.com", department=marketing))
    assert browser.stream(start(browser, assistant)["stream_url"], {"content": "Hello"}).names[-1] == "done"
    minute_of(assistant, CallMinute.Source.API, calls=2)
    minute_of(assistant, CallMinute.Source.CHAT)

    for window in ("hour", "day", "week"):
        response = client_for(platform_admin).get(f"/operations/?window={window}")
        assert response.status_code == 200
        row = row_of(tables(response.content.decode())["deployments-table"], assistant.display_name)
        calls, _per_minute, first_token_p50, _p95, _answer_p95, errors, throttled, failovers, refused = row[
            1:10
        ]
        assert calls == "3", (window, row)
        assert first_token_p50.endswith("ms") or first_token_p50.endswith(" s"), row
        assert (errors.split()[0], throttled.split()[0], failovers, refused) == ("0.0%", "0.0%", "0", "0"), (
            row
        )
