"""A key's own limits (requests and tokens per minute) refuse calls with words for its developer,
and a call that may fail over is reserved at the dearest deployment it may land on."""

import time
from decimal import Decimal

import openai
import pytest
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from money.admission import admission_reserve, call_bound
from money.limits import Claim
from money.models import Reservation, UsageRecord
from tests.factories import make_deployment
from tests.gateway.conftest import make_key, records

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


def in_a_fresh_minute() -> None:
    """A key's per-minute limits count in clock minutes: a test's calls begin early in one, so a
    slow machine cannot spread them over two (where each minute would have room for them)."""
    now = timezone.now()
    second = now.second + now.microsecond / 1_000_000
    if second > 40:
        time.sleep(60.5 - second)


def ask(url: str, key: str, **options) -> None:
    openai.OpenAI(base_url=f"{url}/openai/v1", api_key=key, max_retries=0).chat.completions.create(
        model="company-assistant", messages=QUESTION, **options
    )


def test_a_keys_requests_per_minute_refuse_the_call_over_them(gateway, assistant, marketing):
    raw, _key = make_key(marketing, [assistant], requests_per_minute=2)
    in_a_fresh_minute()
    ask(gateway, raw, max_tokens=20)
    ask(gateway, raw, max_tokens=20)

    with pytest.raises(openai.RateLimitError) as refused:
        ask(gateway, raw, max_tokens=20)

    assert "This API key may make 2 requests a minute" in refused.value.message
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert refused.value.code == "rate_limit_exceeded"
    assert len(records(2)) == 2


def test_a_keys_tokens_per_minute_count_the_calls_bound(gateway, assistant, marketing):
    raw, _key = make_key(marketing, [assistant], tokens_per_minute=1_000)
    in_a_fresh_minute()

    with pytest.raises(openai.RateLimitError) as too_big:
        ask(gateway, raw, max_tokens=2_000)
    ask(gateway, raw, max_tokens=900)
    (first,) = records()  # settled: the window keeps what the call used, not its bound
    with pytest.raises(openai.RateLimitError) as full:
        ask(gateway, raw, max_tokens=900)

    assert "lower max_tokens or shorten the prompt" in too_big.value.message
    assert first.total_tokens + 900 > 1_000
    assert "This API key may use 1,000 tokens a minute" in full.value.message
    assert UsageRecord.objects.filter(source="api").count() == 1


def test_a_call_is_reserved_at_the_dearest_deployment_it_may_fail_over_to(db, marketing):
    # Regional Standard costs more per token than Global Standard.
    cheap = make_deployment(department=marketing, sku="GlobalStandard")
    dear = make_deployment(department=marketing, sku="Standard")
    now = timezone.now()
    claim = Claim(
        department=marketing,
        deployment=cheap,
        prompt_tokens=1_000,
        max_output_tokens=1_000,
        source=UsageRecord.Source.API,
        fallbacks=(dear,),
    )

    admission = admission_reserve(claim=claim, now=now)

    expected = call_bound(deployment=dear, prompt_tokens=1_000, max_output_tokens=1_000, at=now)
    assert expected > call_bound(deployment=cheap, prompt_tokens=1_000, max_output_tokens=1_000, at=now)
    assert admission.amount == expected > Decimal(0)
    assert Reservation.objects.get().deployment == cheap
