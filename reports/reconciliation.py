"""Reconciliation: what Azure Cost Management billed for each account, next to what Switchyard
metered for it."""

import logging
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from azure.core.exceptions import AzureError
from azure.mgmt.costmanagement.models import (
    QueryAggregation,
    QueryDataset,
    QueryDefinition,
    QueryGrouping,
    QueryTimePeriod,
)
from django.utils import timezone

from money.allocation import cost_allocation
from money.amounts import ZERO
from money.periods import Period
from provisioning.azure import cost_management_client
from provisioning.models import LandingZone, OpenAIAccount
from reports.models import ReconciliationLine

logger = logging.getLogger(__name__)


def reconciliation_run(*, month: date, now: datetime | None = None) -> list[ReconciliationLine]:
    """Ask Azure Cost Management what each account cost in the month and keep it next to the
    metered cost. An Azure failure for one landing zone is recorded on its accounts; the others
    are still reconciled."""
    now = now or timezone.now()
    period = Period.month(month, now=now)
    allocation = cost_allocation(period=period)
    metered: dict[int, Decimal] = defaultdict(Decimal)
    for entry in allocation.deployments.values():
        if entry.deployment.account_id is not None:
            metered[entry.deployment.account_id] += entry.total
    accounts = list(
        OpenAIAccount.objects.filter(arm_id__gt="")
        .select_related("landing_zone")
        .order_by("landing_zone", "name")
    )
    by_zone: dict[int, list[OpenAIAccount]] = defaultdict(list)
    for account in accounts:
        if account.pk in metered or account.state == OpenAIAccount.State.ACTIVE:
            by_zone[account.landing_zone_id].append(account)
    lines = []
    with cost_management_client(retries=2) as client:
        for zone_accounts in by_zone.values():
            zone = zone_accounts[0].landing_zone
            try:
                billed, error = _billed_by_resource(client=client, zone=zone, period=period), ""
            except AzureError as failure:
                logger.warning("Cost Management query for %s failed: %s", zone, failure)
                billed, error = None, (getattr(failure, "message", "") or str(failure)).splitlines()[0]
            for account in zone_accounts:
                line, _ = ReconciliationLine.objects.update_or_create(
                    month=month,
                    account=account,
                    defaults={
                        "metered": metered.get(account.pk, ZERO),
                        "billed": None if billed is None else billed.get(account.arm_id.lower(), ZERO),
                        "error": error,
                        "checked_at": now,
                    },
                )
                lines.append(line)
    return lines


def _billed_by_resource(*, client: Any, zone: LandingZone, period: Period) -> dict[str, Decimal]:
    scope = f"/subscriptions/{zone.subscription_id}/resourceGroups/{zone.resource_group}"
    last = timezone.localdate(period.until - timedelta(microseconds=1))
    zone_info = timezone.get_current_timezone()
    query = QueryDefinition(
        type="ActualCost",
        timeframe="Custom",
        time_period=QueryTimePeriod(
            from_property=datetime.combine(period.first_day, time.min, tzinfo=zone_info),
            to=datetime.combine(last, time(23, 59, 59), tzinfo=zone_info),
        ),
        dataset=QueryDataset(
            granularity="None",
            aggregation={"totalCost": QueryAggregation(name="Cost", function="Sum")},
            grouping=[QueryGrouping(type="Dimension", name="ResourceId")],
        ),
    )
    result = client.query.usage(scope, query)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    if result is None:
        return billed
    names = [column.name for column in result.columns or []]
    cost_at = next(i for i, name in enumerate(names) if name in {"Cost", "PreTaxCost", "CostUSD"})
    resource_at = names.index("ResourceId")
    for row in result.rows or []:
        # Cost Management answers JSON numbers; str() keeps the digits Azure sent.
        billed[str(row[resource_at]).lower()] += Decimal(str(row[cost_at]))
    return billed


def reconciliation_lines(*, month: date) -> list[ReconciliationLine]:
    return list(
        ReconciliationLine.objects.filter(month=month).select_related("account", "account__landing_zone")
    )
