"""Admission by reservation, seen from the chat: no limit can be overrun by calls at once, a
refused question is never sent later, and a call that may have reached Azure is always metered."""

from decimal import Decimal

import pytest
from django.utils import timezone

from chat.models import Conversation, Message
from chat.turns import Turn, chat_turn_prepare
from money.budgets import department_spend
from money.models import UsageRecord
from provisioning import tokenizer
from provisioning.models import CatalogEntry, ModelDeployment
from tests.chat.conftest import provisioned, streamed
from tests.chat.test_streaming import start
from tests.factories import make_offer, make_spend

# About 6,400 tokens: a long document pasted into one message, under the 32,000-character limit.
PARAGRAPH = (
    "Our quarterly review covers the launch plan, the channel mix, the budget by region and the "
    "lessons from the spring campaign, with the figures the finance team asked for last week. "
)
LONG_MESSAGE = (PARAGRAPH * 200)[:31_900]


@pytest.fixture
def roomy(chat_emulator, zone, marketing, lena) -> ModelDeployment:
    """A deployment with room enough (200K TPM on Azure) that only Switchyard's limits bind."""
    return provisioned(
        marketing, zone, display_name="Marketing analyst", name="marketing-analyst", capacity=200
    )


def tokens_recorded() -> int:
    return sum(record.input_tokens + record.output_tokens for record in UsageRecord.objects.all())


def test_nine_long_turns_at_once_never_pass_the_persons_tokens_per_minute(browser_for, mark, roomy, settings):
    settings.CHAT_USER_TOKENS_PER_MINUTE = 40_000
    browser = browser_for(mark)
    started = start(browser, roomy)

    replies = browser.stream_many(started["stream_url"], [{"content": LONG_MESSAGE}] * 9)

    answered = [reply for reply in replies if reply.names[-1] == "done"]
    refused = [reply for reply in replies if reply.names[-1] == "error"]
    assert answered
    assert len(answered) + len(refused) == 9
    assert tokens_recorded() <= 40_000
    for reply in refused:
        assert reply.one("error")["message"].startswith("You may use 40,000 tokens a minute;")
    # The refused questions are kept for the person, marked as not sent.
    assert Message.objects.filter(role="user", refused=True).count() == len(refused)


def test_calls_at_once_never_record_more_spend_than_the_budget(browser_for, mark, roomy, marketing, settings):
    settings.CHAT_MAX_ANSWER_TOKENS = 200
    browser = browser_for(mark)
    started = start(browser, roomy)
    # Half a thousandth of a dollar left: room for a few answers of gpt-4o-mini, not ten.
    marketing.monthly_budget = Decimal("1.00")
    marketing.save()
    make_spend(marketing, roomy, Decimal("0.9995"))

    replies = browser.stream_many(started["stream_url"], [{"content": f"Tagline {n}"} for n in range(10)])

    spent = department_spend(department=marketing, on=timezone.localdate())
    assert spent <= marketing.monthly_budget
    answered = [reply for reply in replies if reply.names[-1] == "done"]
    refused = [reply for reply in replies if reply.names[-1] == "error"]
    assert answered
    assert refused
    for reply in refused:
        message = reply.one("error")["message"]
        assert (
            "left of its monthly budget of $1.00, and this message could cost up to $0.0001" in message
            or (message.startswith("Marketing has used its whole monthly budget of $1.00."))
        ), message


def test_a_refused_question_is_never_sent_with_a_later_one(browser_for, mark, roomy, marketing):
    browser = browser_for(mark)
    marketing.monthly_budget = Decimal("0.01")
    marketing.save()
    make_spend(marketing, roomy, Decimal("0.01"))
    refused_in = start(browser, roomy)
    assert browser.stream(refused_in["stream_url"], {"content": LONG_MESSAGE}).names[-1] == "error"
    marketing.monthly_budget = Decimal("100.00")
    marketing.save()

    after_refusal = browser.stream(refused_in["stream_url"], {"content": "Summarise our plan"})
    fresh = browser.stream(start(browser, roomy)["stream_url"], {"content": "Summarise our plan"})

    # Azure billed the same prompt for both: the refused message did not go with the later one.
    assert after_refusal.one("done")["prompt_tokens"] == fresh.one("done")["prompt_tokens"]


def test_stopping_before_azure_answers_still_meters_the_prompt(browser_for, mark, roomy, chat_emulator):
    chat_emulator.inject(operation="chat", kind="hang", count=1)
    browser = browser_for(mark)
    started = start(browser, roomy)

    browser.stream_and_leave(started["stream_url"], {"content": "Are you there?"}, after_deltas=0)

    record = UsageRecord.objects.get()
    assert record.estimated
    assert record.input_tokens > 0
    assert record.output_tokens == 0
    assert Message.objects.get(role="assistant").finish_reason == "stopped"


def test_one_message_over_the_per_turn_limit_is_refused_and_not_saved(browser_for, mark, roomy, settings):
    settings.CHAT_MAX_MESSAGE_TOKENS = 100
    browser = browser_for(mark)
    started = start(browser, roomy)

    reply = browser.stream(started["stream_url"], {"content": "word " * 150})

    assert reply.status == 413
    assert reply.json == {
        "error": "That message is 150 tokens long; one message may have at most 100. "
        "Shorten it or split it into parts."
    }
    assert not Message.objects.exists()


def test_the_context_sent_fits_the_models_window_from_the_catalog(browser_for, mark, roomy, settings):
    settings.CHAT_MAX_ANSWER_TOKENS = 1_000
    make_offer(model_name=roomy.model_name, model_version=roomy.model_version)
    CatalogEntry.objects.update(max_context_tokens=9_000)
    browser = browser_for(mark)
    started = start(browser, roomy)

    # Each long message is over 6,000 tokens: the second turn has room for itself only.
    first = browser.stream(started["stream_url"], {"content": LONG_MESSAGE})
    second_text = LONG_MESSAGE.replace("review", "plan")
    second = browser.stream(started["stream_url"], {"content": second_text})

    assert first.names[-1] == "done"
    alone = tokenizer.prompt_tokens([tokenizer.text_tokens(second_text, model_name=roomy.model_name)])
    sent = second.one("done")["prompt_tokens"]
    # The second question and the answer before it; the first question no longer fits.
    assert alone < sent <= 9_000 - 1_000
    assert sent - alone < 1_000


@pytest.mark.parametrize(
    "text",
    [
        "Plain English, with punctuation!!! And numbers: 1234567, 3.14159.",
        "日本語のテキストと한국어 문장, emoji 🎉🚀 and accents: déjà vu, naïve, Ångström.",
        "def f(x):\n    return {k: v for k, v in x.items() if v is not None}  # code",
        "<|endoftext|> special markers are text, too <|endofprompt|>",
    ],
)
def test_a_prompts_bound_is_never_below_what_azure_counts(mark, roomy, marketing, text):
    conversation = Conversation.objects.create(user=mark, deployment=roomy, department=marketing)

    turn = chat_turn_prepare(user=mark, conversation_id=conversation.pk, content=text, session={})

    assert isinstance(turn, Turn)
    usage = streamed(turn).usage
    assert usage is not None
    assert turn.prompt_tokens >= usage["prompt_tokens"]
    # The shipped encoding is the model's own: the bound is Azure's count exactly.
    assert turn.prompt_tokens == usage["prompt_tokens"]
