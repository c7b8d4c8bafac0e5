"""A deployment's rate limits as Azure derives them from its capacity, the refusal when a call
exceeds them, and the headers that report them on every answer."""

from typing import Any

from starlette.requests import Request

from provisioning.emulator.catalog import Catalog
from provisioning.emulator.dataplane.errors import DataPlaneError, rate_limited
from provisioning.emulator.ratelimit import DeploymentLimiter, Limits, RateLimiter, Refusal
from provisioning.emulator.state import Store

# Provisioned deployments have no published request limit; this keeps tokens the binding limit.
PROVISIONED_TOKENS_PER_REQUEST = 50


def deployment_limits(catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]) -> Limits:
    """Requests and tokens per minute from the deployment's capacity and the catalog's rates."""
    model = deployment["properties"]["model"]
    sku = deployment["sku"]
    capacity = float(sku.get("capacity") or 0)
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=sku["name"]
    )
    if offer is None:
        return Limits(requests_per_minute=6 * capacity, tokens_per_minute=1000 * capacity)
    if offer.is_provisioned:
        tokens = capacity * float(offer.model.get("ptuThroughput", {}).get("inputTPMperPTU", 1000))
        return Limits(requests_per_minute=tokens / PROVISIONED_TOKENS_PER_REQUEST, tokens_per_minute=tokens)
    return Limits(
        requests_per_minute=capacity * offer.requests_per_minute_per_unit(),
        tokens_per_minute=capacity * offer.tokens_per_minute_per_unit(),
    )


def limiter_for(
    request: Request, store: Store, catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]
) -> DeploymentLimiter:
    limiters: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiters is None or limiters.world is not store.world:
        limiters = request.app.state.rate_limiter = RateLimiter(store.world)
    model = deployment["properties"]["model"]
    signature = (
        model["name"],
        model.get("version"),
        deployment["sku"]["name"],
        deployment["sku"].get("capacity"),
    )
    return limiters.for_deployment(
        (account["id"].lower(), deployment["name"]),
        signature,
        lambda: deployment_limits(catalog, account, deployment),
    )


def pricing_tier(account: dict[str, Any]) -> str:
    return f"{account.get('kind', 'OpenAI')} {account.get('sku', {}).get('name', 'S0')}"


def rate_limited_by(
    refusal: Refusal, api_version: str, account: dict[str, Any], headers: dict[str, str]
) -> DataPlaneError:
    return rate_limited(
        kind=refusal.kind,
        retry_after=refusal.retry_after_seconds,
        api_version=api_version,
        tier=pricing_tier(account),
        headers=headers,
    )


def response_headers(
    request_id: str,
    catalog: Catalog,
    account: dict[str, Any],
    deployment: dict[str, Any],
    limiter: DeploymentLimiter,
) -> dict[str, str]:
    remaining_requests, remaining_tokens = limiter.remaining()
    region = catalog.regions.get(account["location"], {}).get("displayName", account["location"])
    return {
        "apim-request-id": request_id,
        "x-request-id": request_id,
        "x-ms-region": str(region),
        "x-ms-deployment-name": deployment["name"],
        "x-ratelimit-limit-requests": str(int(limiter.limits.requests_per_minute)),
        "x-ratelimit-limit-tokens": str(int(limiter.limits.tokens_per_minute)),
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
    }
