"""The streamed chat against the emulator with the real openai SDK: answers stored with their
usage and cost, content filters, Azure's 429, broken and stopped streams, budgets, the user's
rate limit and regenerate."""

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from asgiref.sync import sync_to_async
from django.urls import reverse
from django.utils import timezone

from chat import streaming, turns
from chat.models import Conversation, Message
from money import windows
from money.models import UsageRecord
from org.models import Membership
from provisioning.catalog import price_in_force
from provisioning.models import AccessGrant, ModelDeployment
from tests.chat.conftest import in_event_loop
from tests.factories import make_account, make_deployment, make_landing_zone, make_spend

pytestmark = pytest.mark.django_db


def start(browser, deployment, **extra) -> dict[str, str]:
    response = browser.post(reverse("chat:start"), {"deployment": deployment.pk, **extra})
    assert response.status_code == 201, response.content
    started: dict[str, str] = response.json()
    return started


def emulator_calls(emulator) -> int:
    usage = requests.get(f"{emulator.control_url}/", timeout=5).json()["usage"]
    return sum(row["requests"] for row in usage)


def test_a_streamed_answer_is_stored_with_its_usage_and_cost(browser_for, mark, copywriter, marketing):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "write a tagline for\nour new coffee"})

    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.names[0] == "start"
    assert reply.names[-1] == "done"
    assert reply.of("delta")
    done = reply.one("done")
    conversation = Conversation.objects.get(pk=started["id"])
    question, answer = conversation.messages.all()
    assert reply.one("start") == {"user_message_id": question.pk, "warning": None}
    assert question.content == "write a tagline for\nour new coffee"
    assert answer.content == reply.text
    assert answer.finish_reason == "stop"
    assert done["finish_reason"] == "stop"
    assert answer.time_to_first_token_ms is not None
    assert answer.duration_ms is not None
    assert conversation.title == done["title"] == "Write a tagline for our new coffee"

    record = UsageRecord.objects.get()
    assert (record.department, record.user, record.deployment, record.conversation) == (
        marketing,
        mark,
        copywriter,
        conversation,
    )
    assert record.input_tokens == done["prompt_tokens"] == answer.prompt_tokens > 0
    assert record.output_tokens == done["completion_tokens"] == answer.completion_tokens > 10
    price = price_in_force(
        model_name="gpt-4o-mini", model_version="2024-07-18", sku="GlobalStandard", on=timezone.localdate()
    )
    expected = (
        record.input_tokens * price.input_per_million + record.output_tokens * price.output_per_million
    ) / Decimal(1_000_000)
    assert record.cost == expected
    assert done["cost"] == f"{expected:.6f}" == done["conversation_cost"]
    assert conversation.expires_at > timezone.now() + timedelta(days=29)


def test_the_system_prompt_and_the_history_go_to_the_model(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    browser.stream(started["stream_url"], {"content": "First question"})

    second = browser.stream(started["stream_url"], {"content": "Second question"})

    # Usage grows with the history the second call carried (system prompt, Q1, A1, Q2).
    first_prompt, second_prompt = UsageRecord.objects.order_by("created_at").values_list(
        "input_tokens", flat=True
    )
    assert second_prompt > first_prompt + second.one("done")["completion_tokens"] // 2
    total = sum((record.cost for record in UsageRecord.objects.all()), Decimal(0))
    assert Decimal(second.one("done")["conversation_cost"]) == total.quantize(Decimal("0.000001"))


def test_a_blocked_prompt_shows_the_category_and_keeps_the_message(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "Tell me how to build a bomb"})

    assert reply.names == ["start", "error"]
    error = reply.one("error")
    assert error["message"] == (
        "This message was blocked by the content filter (violence). Rephrase it and try again."
    )
    assert error["retry_after"] is None
    question = Message.objects.get(role="user")
    assert question.content == "Tell me how to build a bomb"
    assert reply.one("start")["user_message_id"] == question.pk
    answer = Message.objects.get(role="assistant")
    assert answer.error == error["message"]
    assert answer.content_filter["violence"]["filtered"] is True
    assert not UsageRecord.objects.exists()  # Azure refused the call: nothing billed


def test_an_answer_cut_by_the_content_filter_keeps_what_was_written(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "Write me a gory story about pirates"})

    done = reply.one("done")
    assert done["finish_reason"] == "content_filter"
    assert "content filter" in done["note"]
    answer = Message.objects.get(role="assistant")
    assert answer.finish_reason == "content_filter"
    assert answer.content == reply.text != ""
    assert answer.content_filter is not None
    assert UsageRecord.objects.get().output_tokens == done["completion_tokens"] > 0


def test_azure_429_after_the_sdk_retries_says_when_to_try_again(browser_for, mark, copywriter, chat_emulator):
    chat_emulator.inject(operation="chat", kind="429", count=5, retry_after_seconds=1)
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "Hello"})

    assert reply.names == ["start", "error"]
    error = reply.one("error")
    assert error["retry_after"] == 1
    assert "Try again in 1 seconds" in error["message"] or "Try again in 1 second" in error["message"]
    assert Message.objects.get(role="user").content == "Hello"
    # The SDK retried twice (three calls in all) before giving up.
    assert len(chat_emulator.faults()) == 1
    assert chat_emulator.faults()[0]["count"] == 2


def test_a_stream_dropped_half_way_keeps_the_partial_answer_and_meters_it(
    browser_for, mark, copywriter, chat_emulator
):
    chat_emulator.inject(operation="chat", kind="drop_stream", after_chunks=5, count=1)
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "Explain in detail how budgets work"})

    assert reply.names[-1] == "error"
    assert "broke" in reply.one("error")["message"]
    answer = Message.objects.get(role="assistant")
    assert answer.content == reply.text != ""
    assert answer.finish_reason == "interrupted"
    record = UsageRecord.objects.get()
    assert record.output_tokens == 5  # one token per chunk, as Azure streams them
    assert record.input_tokens > 0  # estimated: the usage chunk never came
    assert record.cost > 0
    assert streaming._streaming == 0  # a broken answer no longer counts as streaming


def test_stopping_an_answer_keeps_and_meters_what_was_delivered(browser_for, mark, copywriter, chat_emulator):
    chat_emulator.configure(per_token_ms=20)  # so that the person leaves while it is still writing
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream_and_leave(
        started["stream_url"], {"content": "Explain in detail how budgets work"}, after_deltas=3
    )

    assert reply.status == 200
    assert len(reply.of("delta")) == 3
    answer = Message.objects.get(role="assistant")
    assert answer.finish_reason == "stopped"
    assert answer.content.startswith(reply.text)
    assert 3 <= answer.completion_tokens < 20
    record = UsageRecord.objects.get()
    assert record.output_tokens == answer.completion_tokens
    assert record.conversation_id == answer.conversation_id
    assert streaming._streaming == 0  # a stopped answer no longer counts as streaming


def test_at_exactly_100_percent_of_the_budget_the_model_is_not_called(
    browser_for, mark, copywriter, marketing, chat_emulator
):
    marketing.monthly_budget = Decimal("5000.00")
    marketing.save()
    make_spend(marketing, copywriter, Decimal("2500.00"))
    make_spend(marketing, copywriter, Decimal("2500.00"))
    browser = browser_for(mark)
    started = start(browser, copywriter)
    calls_before = emulator_calls(chat_emulator)

    reply = browser.stream(started["stream_url"], {"content": "One more tagline please"})

    assert reply.names == ["start", "error"]
    assert reply.one("error")["message"] == (
        "Marketing has used its whole monthly budget of $5,000.00. Ask Lena Lindqvist to raise it."
    )
    assert emulator_calls(chat_emulator) == calls_before
    assert UsageRecord.objects.count() == 2
    assert Message.objects.get(role="user").content == "One more tagline please"  # kept for a retry


def test_from_80_percent_the_answer_comes_with_a_warning(browser_for, mark, copywriter, marketing):
    marketing.monthly_budget = Decimal("100.00")
    marketing.save()
    make_spend(marketing, copywriter, Decimal("85.00"))
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": "Hello"})

    assert reply.one("start")["warning"] == "Marketing has used 85% of its monthly budget."
    assert reply.names[-1] == "done"


def test_the_page_shows_the_budget_of_the_paying_department(browser_for, mark, copywriter, marketing):
    marketing.monthly_budget = Decimal("100.00")
    marketing.save()
    make_spend(marketing, copywriter, Decimal("100.00"))

    response = browser_for(mark).get(reverse("chat:index"))

    assert response.context["budget"].exhausted
    assert "Marketing has used its monthly budget" in response.content.decode()


def test_a_user_sending_too_fast_is_told_how_long_to_wait(browser_for, mark, copywriter, settings):
    settings.CHAT_USER_REQUESTS_PER_MINUTE = 2
    browser = browser_for(mark)
    started = start(browser, copywriter)
    for text in ("One", "Two"):
        assert browser.stream(started["stream_url"], {"content": text}).names[-1] == "done"

    reply = browser.stream(started["stream_url"], {"content": "Three"})

    error = reply.one("error")
    assert 1 <= error["retry_after"] <= 60
    assert error["message"].startswith("You are sending messages too fast. Try again in ")
    assert UsageRecord.objects.count() == 2


def test_a_turn_whose_bound_does_not_fit_the_token_limit_is_refused_and_not_sent(
    browser_for, mark, copywriter, settings, chat_emulator
):
    settings.CHAT_USER_TOKENS_PER_MINUTE = 1_000
    browser = browser_for(mark)
    started = start(browser, copywriter)
    calls_before = emulator_calls(chat_emulator)

    reply = browser.stream(started["stream_url"], {"content": "Explain in detail budgets"})

    message = reply.one("error")["message"]
    assert message.startswith("You may use 1,000 tokens a minute; this message needs up to 2,")
    assert emulator_calls(chat_emulator) == calls_before
    question = Message.objects.get()
    assert question.refused
    assert question.error == message


def test_what_a_call_did_not_use_goes_back_to_the_token_limit(browser_for, mark, copywriter, settings):
    settings.CHAT_USER_TOKENS_PER_MINUTE = 5_000
    settings.CHAT_MAX_ANSWER_TOKENS = 2_000
    browser = browser_for(mark)
    started = start(browser, copywriter)
    first_minute = windows.window_number(timezone.now())

    # Each turn holds 2,000 tokens for its answer while it runs; three in a row fit because
    # each gives back what its answer did not use.
    for question in ("A slogan for tea", "Another one", "And a third"):
        assert browser.stream(started["stream_url"], {"content": question}).names[-1] == "done"

    used = sum(record.input_tokens + record.output_tokens for record in UsageRecord.objects.all())
    minutes = range(first_minute, windows.window_number(timezone.now()) + 1)
    assert sum(windows.windows_used([f"person-tokens:{mark.pk}:{minute}" for minute in minutes])) == used


def test_regenerate_replaces_the_last_answer(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    first = browser.stream(started["stream_url"], {"content": "A slogan for tea"})
    old_answer = first.one("done")["message_id"]

    reply = browser.stream(started["regenerate_url"])

    done = reply.one("done")
    assert reply.one("start")["user_message_id"] is None
    messages = list(Message.objects.values_list("role", "pk"))
    assert messages == [("user", messages[0][1]), ("assistant", done["message_id"])]
    assert done["message_id"] != old_answer
    assert UsageRecord.objects.count() == 2  # both calls are paid for


def test_regenerate_answers_a_question_left_without_answer(browser_for, mark, copywriter, marketing):
    marketing.monthly_budget = Decimal("1.00")
    marketing.save()
    make_spend(marketing, copywriter, Decimal("1.00"))
    browser = browser_for(mark)
    started = start(browser, copywriter)
    browser.stream(started["stream_url"], {"content": "Refused first"})
    marketing.monthly_budget = Decimal("100.00")
    marketing.save()

    reply = browser.stream(started["regenerate_url"])

    assert reply.names[-1] == "done"
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("   ", "Type a message first."), ("x" * 32_001, "That message is 32,001 characters long")],
)
def test_empty_or_too_long_messages_are_refused_without_saving(
    browser_for, mark, copywriter, content, message
):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    reply = browser.stream(started["stream_url"], {"content": content})

    assert reply.status == 400
    assert reply.json["error"].startswith(message)
    assert not Message.objects.exists()


def test_a_user_no_longer_allowed_the_deployment_cannot_continue(browser_for, mark, copywriter, marketing):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    Membership.objects.filter(user=mark, department=marketing).delete()

    reply = browser_for(mark).stream(started["stream_url"], {"content": "Still there?"})

    assert reply.status == 404
    assert "no longer available" in reply.json["error"]
    assert not Message.objects.exists()


def test_access_remembered_between_turns_ends_when_the_membership_does(
    browser_for, mark, copywriter, marketing
):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    assert browser.stream(started["stream_url"], {"content": "Hello"}).names[-1] == "done"
    Membership.objects.filter(user=mark, department=marketing).delete()

    reply = browser.stream(started["stream_url"], {"content": "Still there?"})

    assert reply.status == 404
    assert "no longer available" in reply.json["error"]
    assert Message.objects.filter(role="user").count() == 1


def test_a_new_price_applies_to_the_next_answer(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    browser.stream(started["stream_url"], {"content": "Hello"})
    price = price_in_force(
        model_name=copywriter.model_name,
        model_version=copywriter.model_version,
        sku=copywriter.sku,
        on=timezone.localdate(),
    )
    assert price is not None
    price.output_per_million *= 10
    price.input_per_million *= 10
    price.save()

    browser.stream(started["stream_url"], {"content": "Hello again"})

    first, second = UsageRecord.objects.order_by("created_at")
    per_token = [record.cost / (record.input_tokens + record.output_tokens) for record in (first, second)]
    assert per_token[1] > per_token[0] * 5


def test_another_persons_conversation_cannot_be_streamed_into(browser_for, mark, fred, lena, copywriter):
    started = start(browser_for(mark), copywriter)

    for intruder in (fred, lena):  # another department, and the same department
        reply = browser_for(intruder).stream(started["stream_url"], {"content": "Hi"})
        assert reply.status == 404
        reply = browser_for(intruder).stream(started["regenerate_url"])
        assert reply.status == 404
    assert not Message.objects.exists()


def test_a_shared_deployments_grant_cap_is_respected(browser_for, fred, finance, marketing):
    zone = make_landing_zone()
    shared = make_deployment(
        department=marketing,
        display_name="Company assistant",
        shared_with=[finance],
        landing_zone=zone,
        account=make_account(landing_zone=zone),
    )
    AccessGrant.objects.filter(deployment=shared, department=finance).update(
        monthly_budget_cap=Decimal("50.00")
    )
    make_spend(finance, shared, Decimal("50.00"))
    browser = browser_for(fred)
    started = start(browser, shared)

    reply = browser.stream(started["stream_url"], {"content": "Hello"})

    assert reply.one("error")["message"].startswith(
        "Finance has used its whole monthly allowance of $50.00 for Company assistant."
    )


def test_a_shared_deployments_tpm_cap_says_when_to_retry(browser_for, fred, finance, marketing):
    zone = make_landing_zone()
    shared = make_deployment(
        department=marketing,
        shared_with=[finance],
        landing_zone=zone,
        account=make_account(landing_zone=zone),
    )
    AccessGrant.objects.filter(deployment=shared, department=finance).update(tpm_cap=1)
    make_spend(finance, shared, Decimal("0.01"))  # 2,000 tokens just now
    browser = browser_for(fred)
    started = start(browser, shared)

    reply = browser.stream(started["stream_url"], {"content": "Hello"})

    error = reply.one("error")
    assert 1 <= error["retry_after"] <= 60
    assert "Try again in" in error["message"]


def test_a_deployment_that_is_decommissioned_ends_the_conversation(browser_for, mark, copywriter):
    browser = browser_for(mark)
    started = start(browser, copywriter)
    ModelDeployment.objects.filter(pk=copywriter.pk).update(state=ModelDeployment.State.DECOMMISSIONED)

    assert browser.stream(started["stream_url"], {"content": "Hi"}).status == 404


def test_a_call_whose_answer_nobody_reads_is_closed_and_metered(mark, copywriter, marketing, monkeypatch):
    # The view starts the call before Django sends the response; if the person leaves before
    # the stream begins, Django never reads it, and the call must not stay open or go unpaid.
    monkeypatch.setattr(streaming, "UNCLAIMED_SECONDS", 1.0)  # Azure has accepted the call by then
    conversation = Conversation.objects.create(user=mark, deployment=copywriter, department=marketing)
    turn = turns.chat_turn_prepare(
        user=mark, conversation_id=conversation.pk, content="Hello there", session={}
    )
    assert isinstance(turn, turns.Turn)

    async def start_and_leave() -> None:
        streaming.AnswerStream(turn).call()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if await sync_to_async(Message.objects.filter(role="assistant").exists)():
                return

    in_event_loop(start_and_leave)

    answer = Message.objects.get(role="assistant")
    assert answer.finish_reason == "stopped"
    assert UsageRecord.objects.get().input_tokens > 0


@pytest.mark.parametrize(
    ("streaming_now", "interval_ms"), [(1, 50), (25, 50), (50, 100), (100, 200), (300, 250)]
)
def test_answers_go_out_in_batches_that_widen_while_many_stream_at_once(
    monkeypatch, streaming_now, interval_ms
):
    # Smooth (50 ms) while the process is quiet; under load, fewer writes keep new questions fast.
    monkeypatch.setattr(streaming, "_streaming", streaming_now)

    assert round(streaming.delta_interval() * 1000) == interval_ms


def test_a_message_over_the_upload_limit_gets_the_chats_json_error_and_no_traceback(
    browser_for, mark, copywriter, caplog
):
    browser = browser_for(mark)
    started = start(browser, copywriter)

    with caplog.at_level(logging.INFO):
        reply = browser.stream(started["stream_url"], {"content": "x" * 3_000_000})

    assert reply.status == 413
    assert reply.json == {
        "error": "That is too much to send at once (3.0 MB; the limit is 2.6 MB). Shorten it and try again."
    }
    # A line for the refused request, as for any 4xx, and no traceback.
    assert [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR] == []
    assert not Message.objects.exists()
