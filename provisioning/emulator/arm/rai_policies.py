"""Content filter (RAI) policies of an account: create or replace, read, delete (refused while a
deployment uses the policy)."""

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisioning.emulator.arm.entry import enter, json_body
from provisioning.emulator.arm.resources import PROVIDER, live_account
from provisioning.emulator.errors import AzureError, not_found


async def rai_policy_put(request: Request) -> Response:
    store = await enter(request, "raiPolicies.put")
    params = request.path_params
    body = await json_body(request)
    async with store.lock:
        account = live_account(store, params["subscription"], params["resource_group"], params["name"])
        policies = store.world.rai_policies.setdefault(account["id"].lower(), {})
        existed = params["policy"] in policies
        properties = body.get("properties") or {}
        policy = {
            "id": f"{account['id']}/raiPolicies/{params['policy']}",
            "name": params["policy"],
            "type": f"{PROVIDER}/accounts/raiPolicies",
            "etag": f'"{uuid.uuid4()}"',
            "properties": {
                "mode": properties.get("mode", "Blocking"),
                "basePolicyName": properties.get("basePolicyName", "Microsoft.DefaultV2"),
                "contentFilters": properties.get("contentFilters", []),
                "customBlocklists": properties.get("customBlocklists", []),
                "type": "UserManaged",
            },
        }
        policies[params["policy"]] = policy
        store.save()
    return JSONResponse(policy, status_code=200 if existed else 201)


async def rai_policy_get(request: Request) -> Response:
    store = await enter(request, "raiPolicies.put")
    params = request.path_params
    account = live_account(store, params["subscription"], params["resource_group"], params["name"])
    policy = store.world.rai_policies.get(account["id"].lower(), {}).get(params["policy"])
    if policy is None:
        raise not_found(f"{PROVIDER}/accounts/raiPolicies", params["policy"])
    return JSONResponse(policy)


async def rai_policy_delete(request: Request) -> Response:
    store = await enter(request, "raiPolicies.put")
    params = request.path_params
    async with store.lock:
        account = live_account(store, params["subscription"], params["resource_group"], params["name"])
        in_use = [
            deployment["name"]
            for deployment in store.world.deployments.get(account["id"].lower(), {}).values()
            if deployment["properties"].get("raiPolicyName") == params["policy"]
        ]
        if in_use:
            raise AzureError(
                409,
                "Conflict",
                f"The RAI policy '{params['policy']}' is used by deployments {', '.join(in_use)}.",
            )
        removed = store.world.rai_policies.get(account["id"].lower(), {}).pop(params["policy"], None)
        store.save()
    return Response(status_code=200 if removed else 204)
