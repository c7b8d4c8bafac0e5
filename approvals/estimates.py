"""What a request would cost a month, as the form shows it and the policy weighs it."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from provisioning.catalog import price_in_force
from provisioning.models import Price

# Azure bills provisioned throughput per hour; a month is priced as 730 hours, as Azure's
# pricing calculator does.
HOURS_PER_MONTH = Decimal(730)


@dataclass(frozen=True)
class Estimate:
    monthly_cost: Decimal
    basis: str
    price: Price | None = None

    @property
    def known(self) -> bool:
        return self.price is not None


def monthly_cost_estimate(
    *,
    model_name: str,
    model_version: str,
    sku: str,
    capacity: int | None,
    input_millions: Decimal,
    output_millions: Decimal,
    on: date,
) -> Estimate:
    """PTU x hourly rate x 730 for provisioned SKUs; expected tokens x price for the others."""
    if not (model_name and sku):
        return Estimate(Decimal(0), "Choose the model (or the deployment) to see an estimate.")
    price = price_in_force(model_name=model_name, model_version=model_version, sku=sku, on=on)
    if price is None:
        return Estimate(Decimal(0), f"No price is on record for {model_name} {model_version} ({sku}).")
    if sku.endswith("ProvisionedManaged"):
        units = capacity or 0
        return Estimate(
            units * price.ptu_per_hour * HOURS_PER_MONTH,
            f"{units} PTU x ${price.ptu_per_hour:.2f} per PTU-hour x 730 hours, used or not",
            price,
        )
    cost = input_millions * price.input_per_million + output_millions * price.output_per_million
    if not (input_millions or output_millions):
        return Estimate(
            cost,
            f"Enter the tokens you expect a month: ${price.input_per_million:.2f} per million input and "
            f"${price.output_per_million:.2f} per million output tokens.",
            price,
        )
    return Estimate(
        cost,
        f"{input_millions.normalize():f}M input tokens x ${price.input_per_million:.2f}/M + "
        f"{output_millions.normalize():f}M output tokens x ${price.output_per_million:.2f}/M",
        price,
    )
