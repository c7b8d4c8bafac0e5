"""Prices in force: what a call costs at the price of its day (`usage_cost`), and every price of
some SKUs read once for a report's per-day lookups (`PriceBook`)."""

import time
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from money.amounts import MILLION, ZERO
from provisioning.catalog import price_in_force
from provisioning.models import ModelDeployment, Price

PROVISIONED_SKUS = [sku for sku in ModelDeployment.Sku.values if sku.endswith("ProvisionedManaged")]


def usage_cost(
    *,
    deployment: ModelDeployment,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    at: datetime,
    prices: "PriceBook | RememberedPrices | None" = None,
) -> tuple[Decimal, Price | None]:
    """What a call cost at the price in force when it was made (USD, unrounded). `prices` saves
    the query per call when many calls are priced at once."""
    lookup = prices.on if prices is not None else _price_in_force
    price = lookup(
        model_name=deployment.model_name,
        model_version=deployment.model_version,
        sku=deployment.sku,
        day=timezone.localdate(at),
    )
    if price is None or deployment.is_provisioned_sku:
        # Provisioned capacity is paid by the hour whether used or not, not per token.
        return ZERO, price
    uncached = max(input_tokens - cached_input_tokens, 0)
    cost = (
        uncached * price.input_per_million
        + cached_input_tokens * price.cached_input_per_million
        + output_tokens * price.output_per_million
    ) / MILLION
    return cost, price


# Every answer is priced as it is saved: the price in force is remembered in the process for a
# minute instead of costing a query per answer. A price saved in this process is seen at once,
# one saved elsewhere (admin in another web process) within the minute.
PRICE_MEMO_SECONDS = 60.0
_price_memo: dict[tuple[str, str, str, date], tuple[float, Price | None]] = {}


def _price_in_force(*, model_name: str, model_version: str, sku: str, day: date) -> Price | None:
    key = (model_name, model_version, sku, day)
    now = time.monotonic()
    remembered = _price_memo.get(key)
    if remembered is not None and remembered[0] > now:
        return remembered[1]
    price = price_in_force(model_name=model_name, model_version=model_version, sku=sku, on=day)
    if len(_price_memo) > 1000:  # days gone by
        _price_memo.clear()
    _price_memo[key] = (now + PRICE_MEMO_SECONDS, price)
    return price


class NotRemembered(Exception):
    """The price in force is not remembered in this process: it has to be read."""


class RememberedPrices:
    """The prices in force as this process remembers them (`usage_cost(prices=...)`), for a caller
    that must not wait for the database: `NotRemembered` where `_price_in_force` would read one."""

    @staticmethod
    def on(*, model_name: str, model_version: str, sku: str, day: date) -> Price | None:
        remembered = _price_memo.get((model_name, model_version, sku, day))
        if remembered is None or remembered[0] <= time.monotonic():
            raise NotRemembered(f"{model_name} {model_version} {sku} on {day}")
        return remembered[1]


def prices_changed(**_signal: Any) -> None:
    """A receiver for saved and deleted prices."""
    _price_memo.clear()


class PriceBook:
    """Every price of the given SKUs, read once: the per-day lookups of a report then cost no
    queries. Same rule as `price_in_force`: the most specific row, then the latest start."""

    def __init__(self, skus: Iterable[str]) -> None:
        self.prices = list(Price.objects.filter(sku__in=list(skus)).order_by("-valid_from"))

    def on(self, *, model_name: str, model_version: str, sku: str, day: date) -> Price | None:
        best: tuple[int, date] | None = None
        found = None
        for price in self.prices:
            if price.sku != sku or price.valid_from > day:
                continue
            if price.model_name == model_name and price.model_version == model_version:
                rank = 2
            elif price.model_name == model_name and price.model_version == "":
                rank = 1
            elif price.model_name == "" and price.model_version == "":
                rank = 0
            else:
                continue
            if best is None or (rank, price.valid_from) > best:
                best, found = (rank, price.valid_from), price
        return found
