"""Cost Management's query API (`Query_Usage`, api-version 2025-03-01), answered from the usage
the data plane metered and the provisioned deployments' hours, priced from Switchyard's shipped
price table — so the portal's reconciliation runs the same code path as against Azure."""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisioning.emulator.auth import require_arm_caller
from provisioning.emulator.catalog import PROVISIONED_SKUS, Catalog
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import Store

MILLION = Decimal(1_000_000)
GROUPABLE = {"ResourceId", "ResourceGroup", "ResourceGroupName", "ResourceLocation", "MeterSubcategory"}


def _period(body: dict[str, Any], today: date) -> tuple[date, date]:
    timeframe = body.get("timeframe", "MonthToDate")
    if timeframe in {"MonthToDate", "BillingMonthToDate"}:
        return today.replace(day=1), today
    if timeframe in {"TheLastMonth", "TheLastBillingMonth"}:
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if timeframe == "WeekToDate":
        return today - timedelta(days=today.weekday()), today
    if timeframe == "Custom":
        period = body.get("timePeriod") or {}
        try:
            start = datetime.fromisoformat(str(period["from"]).replace("Z", "+00:00")).date()
            end = datetime.fromisoformat(str(period["to"]).replace("Z", "+00:00")).date()
        except (KeyError, ValueError):
            raise AzureError(
                400,
                "BadRequest",
                "Invalid query definition: timePeriod needs 'from' and 'to' dates for a Custom timeframe.",
            ) from None
        if end < start:
            raise AzureError(400, "BadRequest", "Invalid query definition: timePeriod 'to' is before 'from'.")
        return start, end
    raise AzureError(
        400, "BadRequest", f"Invalid query definition: timeframe '{timeframe}' is not supported."
    )


def _dimension(account_id: str, location: str, sku: str, model: str, name: str) -> str:
    parts = account_id.split("/")
    if name == "ResourceId":
        return account_id.lower()
    if name in {"ResourceGroup", "ResourceGroupName"}:
        return parts[4].lower()
    if name == "ResourceLocation":
        return location
    return f"{model} {sku}"  # MeterSubcategory


def cost_lines(
    store: Store, catalog: Catalog, scope: str, start: date, end: date
) -> list[tuple[date, str, str, str, str, Decimal]]:
    """(day, account id, location, sku, model, cost) for everything billed under `scope`."""
    scope = scope.lower().rstrip("/")
    lines = []
    for row in store.world.usage.values():
        day = date.fromisoformat(row["date"])
        if not start <= day <= end or not row["accountId"].lower().startswith(scope):
            continue
        price_in, price_cached, price_out = catalog.token_price(
            model=row["model"], version=row["version"], sku=row["sku"]
        )
        uncached = row["inputTokens"] - row["cachedInputTokens"]
        cost = (
            uncached * price_in + row["cachedInputTokens"] * price_cached + row["outputTokens"] * price_out
        ) / MILLION
        lines.append((day, row["accountId"], row["location"], row["sku"], row["model"], cost))
    # Provisioned deployments accrue every hour they exist, used or not.
    now = datetime.now(UTC)
    for account_key, deployments in store.world.deployments.items():
        account = store.world.accounts.get(account_key)
        if account is None or not account["id"].lower().startswith(scope):
            continue
        for deployment in deployments.values():
            sku = deployment["sku"]["name"]
            if sku not in PROVISIONED_SKUS:
                continue
            created = datetime.fromisoformat(deployment["systemData"]["createdAt"].replace("Z", "+00:00"))
            hourly = (
                catalog.ptu_hour_price(sku=sku, model=deployment["properties"]["model"]["name"])
                * deployment["sku"]["capacity"]
            )
            day = max(start, created.date())
            while day <= min(end, now.date()):
                day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                active = min(now, day_start + timedelta(days=1)) - max(created, day_start)
                hours = Decimal(max(active.total_seconds(), 0)) / Decimal(3600)
                lines.append(
                    (
                        day,
                        account["id"],
                        account["location"],
                        sku,
                        deployment["properties"]["model"]["name"],
                        hourly * hours,
                    )
                )
                day += timedelta(days=1)
    return lines


@dataclass(frozen=True)
class QueryDefinition:
    """What a query asks for, once Cost Management has accepted it."""

    granularity: str | None  # "Daily", "Monthly", or None/"None" for one total per group
    groupings: list[str]
    cost_column: str
    start: date
    end: date

    def key(self, day: date, account_id: str, location: str, sku: str, model: str) -> tuple[Any, ...]:
        """The row a cost line adds to: its period, then its value of every grouping."""
        key: tuple[Any, ...] = ()
        if self.granularity == "Daily":
            key += (int(day.strftime("%Y%m%d")),)
        elif self.granularity == "Monthly":
            key += (day.replace(day=1).isoformat() + "T00:00:00",)
        return key + tuple(_dimension(account_id, location, sku, model, name) for name in self.groupings)

    def columns(self) -> list[dict[str, str]]:
        columns = [{"name": self.cost_column, "type": "Number"}]
        if self.granularity == "Daily":
            columns.append({"name": "UsageDate", "type": "Number"})
        elif self.granularity == "Monthly":
            columns.append({"name": "BillingMonth", "type": "Datetime"})
        columns += [{"name": name, "type": "String"} for name in self.groupings]
        columns.append({"name": "Currency", "type": "String"})
        return columns


def parse_query(body: dict[str, Any]) -> QueryDefinition:
    dataset = body.get("dataset") or {}
    granularity = dataset.get("granularity", "None")
    if granularity not in {"Daily", "Monthly", "None", None}:
        raise AzureError(
            400, "BadRequest", f"Invalid query definition: granularity '{granularity}' is not supported."
        )
    groupings = [group.get("name") for group in dataset.get("grouping") or []]
    unknown = [name for name in groupings if name not in GROUPABLE]
    if unknown:
        raise AzureError(
            400,
            "BadRequest",
            f"Invalid query definition: cannot group by {unknown}; use one of {sorted(GROUPABLE)}.",
        )
    aggregation = dataset.get("aggregation") or {"totalCost": {"name": "PreTaxCost", "function": "Sum"}}
    cost_column = next(iter(aggregation.values())).get("name", "PreTaxCost")
    start, end = _period(body, datetime.now(UTC).date())
    return QueryDefinition(granularity, groupings, cost_column, start, end)


async def query(request: Request) -> Response:
    require_arm_caller(request)
    store: Store = request.app.state.store
    catalog: Catalog = request.app.state.catalog
    fault = store.take_fault("costManagement.query", {"429", "500", "503"})
    if fault is not None:
        raise AzureError(
            int(fault.kind),
            "TooManyRequests" if fault.kind == "429" else "ServerError",
            "Cost Management is busy; retry later.",
            headers={"Retry-After": str(fault.retry_after_seconds)},
        )
    try:
        body = await request.json()
    except ValueError:
        raise AzureError(400, "BadRequest", "Invalid query definition: the body is not JSON.") from None
    definition = parse_query(body)
    scope = "/" + request.path_params["scope"].strip("/")
    totals: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for day, account_id, location, sku, model, cost in cost_lines(
        store, catalog, scope, definition.start, definition.end
    ):
        totals[definition.key(day, account_id, location, sku, model)] += cost
    rows = [
        [float(round(cost, 10)), *key, "USD"]
        for key, cost in sorted(totals.items(), key=lambda item: item[0])
    ]
    query_id = str(uuid.uuid4())
    return JSONResponse(
        {
            "id": f"{scope.lstrip('/')}/providers/Microsoft.CostManagement/query/{query_id}",
            "name": query_id,
            "type": "Microsoft.CostManagement/query",
            "properties": {"nextLink": None, "columns": definition.columns(), "rows": rows},
        }
    )


routes = [Route("/{scope:path}/providers/Microsoft.CostManagement/query", query, methods=["POST"])]
