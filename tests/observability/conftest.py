"""Observability fixtures: the gateway's (a provisioned Company assistant, Marketing's key, the
portal served by uvicorn on committed data), and /metrics read as Prometheus reads it."""

from collections.abc import Callable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import (  # noqa: F401  (fixtures)
    _fresh_cache,
    assistant,
    gateway,
    gateway_emulator,
    marketing_key,
    zone,
)

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = METRICS_TOKEN
    return METRICS_TOKEN


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A scrape's samples: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """A sample's value (0 when the scrape does not have it)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)


Scraped = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def scrape(gateway, metrics_token) -> Callable[[], Scraped]:  # noqa: F811  (the fixture above)
    def scraped() -> Scraped:
        response = requests.get(
            f"{gateway}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return samples(response.text)

    return scraped
