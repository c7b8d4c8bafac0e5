"""The models, SKUs, quotas and prices the emulator offers: Switchyard's shipped data files
(provisioning/data/), so the emulator and the portal agree on every figure."""

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PROVISIONED_SKUS = {"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"}


@dataclass(frozen=True)
class Offer:
    """One model version in one SKU, as a region offers it."""

    model: dict[str, Any]
    sku: dict[str, Any]

    @property
    def usage_name(self) -> str:
        return str(self.sku["usageName"])

    @property
    def is_provisioned(self) -> bool:
        return self.sku["name"] in PROVISIONED_SKUS

    def requests_per_minute_per_unit(self) -> float:
        for limit in self.sku.get("rateLimits", []):
            if limit.get("key") == "request":
                return float(limit["count"]) * 60 / float(limit["renewalPeriod"])
        return 6.0  # Azure's most common figure, for SKUs the catalog gives none

    def tokens_per_minute_per_unit(self) -> float:
        for limit in self.sku.get("rateLimits", []):
            if limit.get("key") == "token":
                return float(limit["count"]) * 60 / float(limit["renewalPeriod"])
        return 1000.0


class Catalog:
    def __init__(self, catalog: dict[str, Any], prices: dict[str, Any]) -> None:
        self.data = catalog
        self.prices = prices

    @classmethod
    def load(cls, directory: Path = DATA_DIR) -> "Catalog":
        return cls(
            json.loads((directory / "catalog.json").read_text()),
            json.loads((directory / "prices.json").read_text()),
        )

    @cached_property
    def regions(self) -> dict[str, dict[str, Any]]:
        return {region["name"]: region for region in self.data["regions"]}

    def offers_in(self, region: str) -> list[Offer]:
        return [
            Offer(model, sku)
            for model in self.data["models"]
            for sku in model["skus"]
            if region in sku["regions"]
        ]

    def find(self, region: str, *, name: str, version: str | None, sku: str) -> Offer | None:
        """The offer for a model (default version when `version` is empty) in `region`."""
        for offer in self.offers_in(region):
            if offer.model["name"] != name or offer.sku["name"] != sku:
                continue
            if version and offer.model["version"] != version:
                continue
            if not version and not offer.model.get("isDefaultVersion"):
                continue
            return offer
        return None

    def model_versions(self, name: str) -> list[str]:
        return [model["version"] for model in self.data["models"] if model["name"] == name]

    def usage_names_in(self, region: str) -> list[str]:
        return list(self.data["defaultQuotas"].get(region, {}))

    def default_quota(self, region: str, usage_name: str) -> float:
        return float(self.data["defaultQuotas"].get(region, {}).get(usage_name, 0))

    def localized_usage_name(self, usage_name: str) -> str:
        return str(self.data["usageNames"].get(usage_name, usage_name))

    def token_price(self, *, model: str, version: str, sku: str) -> tuple[Decimal, Decimal, Decimal]:
        """USD per 1M tokens: input, cached input, output."""
        for row in self.prices["tokens"]:
            if (row["model"], row["version"], row["sku"]) == (model, version, sku):
                return (
                    Decimal(row["inputPer1M"]),
                    Decimal(row["cachedInputPer1M"]),
                    Decimal(row["outputPer1M"]),
                )
        return Decimal(0), Decimal(0), Decimal(0)

    def ptu_hour_price(self, *, sku: str, model: str) -> Decimal:
        rows = [row for row in self.prices["provisioned"] if row["sku"] == sku]
        for row in rows:
            if row.get("model") == model:
                return Decimal(row["perPtuHour"])
        for row in rows:
            if row.get("model") is None:
                return Decimal(row["perPtuHour"])
        return Decimal(0)
