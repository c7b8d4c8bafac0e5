"""Many applications' calls at once against a department with little budget left: each is admitted
only if its most expensive outcome fits what is left, so the recorded spend never passes the
budget, and the refused ones hear why in words a developer can act on."""

import asyncio
from decimal import Decimal

import openai
import pytest
from django.utils import timezone
from openai.types.chat import ChatCompletionMessageParam

from money.budgets import department_spend
from money.models import Reservation, UsageRecord
from tests.factories import make_spend
from tests.gateway.conftest import make_key, wait_for

CALLS = 40


@pytest.mark.parametrize("known", [False, True], ids=["first calls", "after a call"])
def test_calls_at_once_never_record_more_spend_than_the_budget(gateway, assistant, marketing, known):
    marketing.monthly_budget = Decimal("1.00")
    marketing.save()
    make_spend(marketing, assistant, Decimal("0.9990"))
    # A key of its own limits nothing: only the budget binds.
    raw, _key = make_key(marketing, [assistant])
    if known:
        # The web process now knows the key, the deployment, its price and the budget's ledger: the
        # calls are admitted from its event loop, and those without room handed to the database
        # thread, which refuses them.
        openai.OpenAI(base_url=f"{gateway}/openai/v1", api_key=raw, max_retries=0).chat.completions.create(
            model="company-assistant", messages=[{"role": "user", "content": "Hello"}], max_tokens=5
        )

    async def call_all() -> list[object]:
        client = openai.AsyncOpenAI(base_url=f"{gateway}/openai/v1", api_key=raw, max_retries=0)

        async def one(number: int) -> object:
            question: list[ChatCompletionMessageParam] = [
                {"role": "user", "content": f"Tagline number {number}"}
            ]
            try:
                if number % 2:
                    return await client.chat.completions.create(
                        model="company-assistant", messages=question, max_tokens=300
                    )
                stream = await client.chat.completions.create(
                    model="company-assistant", messages=question, max_tokens=300, stream=True
                )
                return [chunk async for chunk in stream]
            except openai.RateLimitError as refused:
                return refused

        try:
            return list(await asyncio.gather(*(one(number) for number in range(CALLS))))
        finally:
            await client.close()

    results = asyncio.run(call_all())

    refused = [result for result in results if isinstance(result, openai.RateLimitError)]
    answered = CALLS - len(refused) + known
    assert answered > 0
    assert refused
    for refusal in refused:
        assert refusal.code == "insufficient_quota"
        assert refusal.response.headers["x-should-retry"] == "false"
        assert "of its monthly budget of $1.00" in refusal.message
    wait_for(lambda: UsageRecord.objects.filter(source="api").count() == answered)
    wait_for(lambda: not Reservation.objects.exists())
    assert UsageRecord.objects.filter(source="api").count() == answered
    spent = department_spend(department=marketing, on=timezone.localdate())
    assert spent <= marketing.monthly_budget
