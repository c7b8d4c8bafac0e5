"""What a region offers a subscription: the models it serves, the usages against quota and the
capacity each model has left."""

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter
from provisioning.emulator.arm.quota import ACCOUNT_COUNTS, account_count, quota_limit, quota_used
from provisioning.emulator.arm.resources import PROVIDER, catalog_of
from provisioning.emulator.catalog import Catalog, Offer
from provisioning.emulator.errors import AzureError
from provisioning.emulator.state import Store


def _location(request: Request) -> str:
    location = str(request.path_params["location"]).replace(" ", "").lower()
    if location not in catalog_of(request).regions:
        raise AzureError(
            404,
            "LocationNotFound",
            f"The location '{request.path_params['location']}' is not supported for {PROVIDER}.",
        )
    return location


def _model_release(model: dict[str, Any]) -> str:
    # Model versions are release dates (2024-07-18); text-embedding-3-small's is "1".
    version = str(model["version"])
    return f"{version}T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", version) else "2024-01-25T00:00:00Z"


def _model_entry(offer_model: dict[str, Any], skus: list[dict[str, Any]]) -> dict[str, Any]:
    model = {
        "format": offer_model["format"],
        "name": offer_model["name"],
        "version": offer_model["version"],
        "lifecycleStatus": offer_model["lifecycleStatus"],
        "isDefaultVersion": offer_model.get("isDefaultVersion", False),
        "maxCapacity": offer_model.get("maxCapacity"),
        "capabilities": offer_model.get("capabilities", {}),
        "modelCatalogAssetId": f"azureml://registries/azure-openai/models/{offer_model['name']}/versions/{offer_model['version']}",
        "systemData": {
            "createdBy": "Microsoft",
            "createdByType": "Application",
            "createdAt": _model_release(offer_model),
            "lastModifiedBy": "Microsoft",
            "lastModifiedByType": "Application",
            "lastModifiedAt": _model_release(offer_model),
        },
        "skus": [
            {
                "name": sku["name"],
                "usageName": sku["usageName"],
                "capacity": sku.get("capacity", {}),
                "rateLimits": sku.get("rateLimits"),
                "deprecationDate": offer_model.get("deprecation", {}).get("inference"),
            }
            for sku in skus
        ],
    }
    if "deprecation" in offer_model:
        model["deprecation"] = offer_model["deprecation"]
    return {"kind": "OpenAI", "skuName": "S0", "model": model}


async def models_list(request: Request) -> Response:
    await enter(request, "models.list")
    location = _location(request)
    entries = []
    for offer_model in catalog_of(request).data["models"]:
        skus = [sku for sku in offer_model["skus"] if location in sku["regions"]]
        if skus:
            entries.append(_model_entry(offer_model, skus))
    return JSONResponse({"value": entries})


async def usages_list(request: Request) -> Response:
    store = await enter(request, "usages.list")
    location = _location(request)
    subscription = request.path_params["subscription"]
    catalog = catalog_of(request)
    value = []
    for usage_name in catalog.usage_names_in(location):
        value.append(
            {
                "name": {"value": usage_name, "localizedValue": catalog.localized_usage_name(usage_name)},
                "currentValue": quota_used(store, catalog, subscription, location, usage_name),
                "limit": quota_limit(store, catalog, subscription, location, usage_name),
                "unit": "Count",
            }
        )
    for usage_name, kinds in ACCOUNT_COUNTS.items():
        value.append(
            {
                "name": {"value": usage_name, "localizedValue": catalog.localized_usage_name(usage_name)},
                "currentValue": account_count(store, subscription, location, kinds),
                "limit": catalog.data["accountQuotas"][usage_name],
                "unit": "Count",
            }
        )
    return JSONResponse({"value": value})


async def model_capacities_list(request: Request) -> Response:
    """Where a model can be deployed and how much capacity each region has left for it."""
    store = await enter(request, "modelCapacities.list")
    catalog = catalog_of(request)
    subscription = request.path_params["subscription"]
    query = request.query_params
    name, version, model_format = (
        query.get("modelName"),
        query.get("modelVersion"),
        query.get("modelFormat", "OpenAI"),
    )
    if not name or not version:
        raise AzureError(400, "InvalidParameter", "modelFormat, modelName and modelVersion are required.")
    only_location = request.path_params.get("location")
    value = []
    for location in catalog.regions:
        if only_location and location != only_location.lower():
            continue
        for offer in catalog.offers_in(location):
            if offer.model["name"] != name or offer.model["version"] != version:
                continue
            value.append(_sku_capacity(store, catalog, subscription, location, offer, model_format))
    return JSONResponse({"value": value})


def _sku_capacity(
    store: Store, catalog: Catalog, subscription: str, location: str, offer: Offer, model_format: str
) -> dict[str, Any]:
    name, version = offer.model["name"], offer.model["version"]
    limit = quota_limit(store, catalog, subscription, location, offer.usage_name)
    used = quota_used(store, catalog, subscription, location, offer.usage_name)
    return {
        "id": f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/models/{model_format}.{name}.{version}/skuCapacities/{offer.sku['name']}",
        "name": offer.sku["name"],
        "type": f"{PROVIDER}/locations/models/skuCapacities",
        "location": location,
        "properties": {
            "model": {"format": model_format, "name": name, "version": version},
            "skuName": offer.sku["name"],
            "availableCapacity": max(limit - used, 0),
            "availableFinetuneCapacity": 0,
        },
    }
