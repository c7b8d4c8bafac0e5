"""Cost fixtures: a fictional model with round prices, so every expectation can be worked out by
hand, and usage metered the way the chat meters it."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from money.models import UsageRecord
from money.usage import usage_record_create
from org.models import Department, User
from provisioning.models import ModelDeployment, Price
from tests.factories import make_deployment

MODEL = "gpt-test"


def at(day: date | str, hour: int = 12, minute: int = 0) -> datetime:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.get_current_timezone())


def meter(
    deployment: ModelDeployment,
    department: Department,
    *,
    when: datetime,
    input_tokens: int = 0,
    cached_input_tokens: int = 0,
    output_tokens: int = 0,
    user: User | None = None,
) -> UsageRecord:
    return usage_record_create(
        department=department,
        user=user,
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        at=when,
    )


def set_created(deployment: ModelDeployment, moment: datetime) -> ModelDeployment:
    ModelDeployment.objects.filter(pk=deployment.pk).update(created_at=moment)
    deployment.refresh_from_db()
    return deployment


@pytest.fixture
def prices(db) -> dict[str, Price]:
    """gpt-test: $2 input, $1 cached input, $8 output per 1M tokens from 1 Jan 2026; provisioned
    capacity $3 per PTU-hour from the same day."""
    return {
        "tokens": Price.objects.create(
            model_name=MODEL,
            model_version="1",
            sku=ModelDeployment.Sku.GLOBAL_STANDARD,
            input_per_million=Decimal("2.00"),
            cached_input_per_million=Decimal("1.00"),
            output_per_million=Decimal("8.00"),
            valid_from=date(2026, 1, 1),
        ),
        "ptu": Price.objects.create(
            model_name="",
            model_version="",
            sku=ModelDeployment.Sku.PROVISIONED,
            ptu_per_hour=Decimal("3.00"),
            valid_from=date(2026, 1, 1),
        ),
    }


@pytest.fixture
def copy_assistant(prices, marketing) -> ModelDeployment:
    """Marketing's dedicated token-billed deployment."""
    return make_deployment(
        department=marketing, display_name="Marketing copy assistant", model_name=MODEL, model_version="1"
    )


@pytest.fixture
def central_it(db) -> Department:
    from tests.factories import make_department

    return make_department(name="Central IT", cost_center="CC-1000", monthly_budget=Decimal("25000.00"))


@pytest.fixture
def company_assistant(prices, central_it, marketing, finance) -> ModelDeployment:
    """Central IT's shared token-billed deployment, granted to Marketing and Finance."""
    return make_deployment(
        department=central_it,
        display_name="Company assistant",
        model_name=MODEL,
        model_version="1",
        shared_with=[central_it, marketing, finance],
    )
