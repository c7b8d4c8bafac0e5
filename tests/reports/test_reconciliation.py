"""Reconciliation through the real Cost Management SDK client against the emulator, which bills
what its data plane served: metered and billed agree per account until the portal meters usage
Azure never saw."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from openai import AzureOpenAI

from money.usage import usage_record_create
from provisioning.azure import data_plane_token_provider
from reports.reconciliation import reconciliation_run
from tests.chat.conftest import chat_emulator, copywriter, lena, zone  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_metered_and_billed_match_per_account_and_a_difference_is_flagged(
    copywriter,  # noqa: F811
    marketing,
    client_for,
    platform_admin,
):
    client = AzureOpenAI(
        azure_endpoint=copywriter.account.endpoint,
        api_version="2025-04-01-preview",
        azure_ad_token_provider=data_plane_token_provider(),
    )
    answer = client.chat.completions.create(
        model=copywriter.name, messages=[{"role": "user", "content": "A tagline for tea"}], max_tokens=60
    )
    usage_record_create(
        department=marketing,
        user=None,
        deployment=copywriter,
        input_tokens=answer.usage.prompt_tokens,
        cached_input_tokens=0,
        output_tokens=answer.usage.completion_tokens,
    )
    month = timezone.localdate().replace(day=1)

    [line] = reconciliation_run(month=month)

    assert line.account == copywriter.account
    assert line.metered > 0
    assert abs(line.billed - line.metered) < Decimal("0.000001")
    assert not line.flagged

    # Usage the portal metered but Azure never served: 50M input tokens at $0.15 per million.
    usage_record_create(
        department=marketing,
        user=None,
        deployment=copywriter,
        input_tokens=50_000_000,
        cached_input_tokens=0,
        output_tokens=0,
    )
    admin = client_for(platform_admin)
    response = admin.post(reverse("reports:reconciliation_run"), {"month": f"{month:%Y-%m}"}, follow=True)

    page = response.content.decode()
    assert "1 account differs by more than the tolerance." in page
    assert "Differs" in page
    [line] = response.context["lines"]
    assert line.difference.quantize(Decimal("0.01")) == Decimal("-7.50")
