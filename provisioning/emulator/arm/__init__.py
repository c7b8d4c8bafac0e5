"""ARM control plane for Microsoft.CognitiveServices (api-version 2025-09-01), the search services
of Microsoft.Search (2025-05-01) and the role assignments of Microsoft.Authorization, as the
official management SDKs call them.

One module per resource holds its handlers; the rules a PUT must pass are in the resource's
`*_validation` module. What every request does first is in `entry`, long-running operations in
`operations`. This module is the URL table; the order of the routes is the order they match in.
"""

from starlette.routing import Route

from provisioning.emulator.arm.accounts import (
    account_delete,
    account_get,
    account_list_keys,
    account_put,
    accounts_list,
)
from provisioning.emulator.arm.deleted_accounts import (
    deleted_account_get,
    deleted_account_purge,
    deleted_accounts_list,
)
from provisioning.emulator.arm.deployments import (
    deployment_delete,
    deployment_get,
    deployment_put,
    deployments_list,
)
from provisioning.emulator.arm.locations import model_capacities_list, models_list, usages_list
from provisioning.emulator.arm.operation_statuses import operation_status
from provisioning.emulator.arm.rai_policies import rai_policy_delete, rai_policy_get, rai_policy_put
from provisioning.emulator.arm.role_assignments import (
    role_assignment_delete,
    role_assignment_get,
    role_assignment_put,
    role_assignments_list,
)
from provisioning.emulator.arm.search_services import (
    search_service_admin_keys,
    search_service_delete,
    search_service_get,
    search_service_put,
    search_service_query_keys,
    search_services_list,
)

__all__ = ["routes"]

SUB = "/subscriptions/{subscription}"
ACCOUNT = SUB + "/resourceGroups/{resource_group}/providers/Microsoft.CognitiveServices/accounts/{name}"
LOCATION = SUB + "/providers/Microsoft.CognitiveServices/locations/{location}"
SEARCH_SERVICE = SUB + "/resourceGroups/{resource_group}/providers/Microsoft.Search/searchServices/{name}"
ROLE_ASSIGNMENTS = "/{scope:path}/providers/Microsoft.Authorization/roleAssignments"

routes = [
    Route(ACCOUNT, account_put, methods=["PUT"]),
    Route(ACCOUNT, account_get, methods=["GET"]),
    Route(ACCOUNT, account_delete, methods=["DELETE"]),
    Route(ACCOUNT + "/listKeys", account_list_keys, methods=["POST"]),
    Route(
        SUB + "/resourceGroups/{resource_group}/providers/Microsoft.CognitiveServices/accounts",
        accounts_list,
        methods=["GET"],
    ),
    Route(SUB + "/providers/Microsoft.CognitiveServices/accounts", accounts_list, methods=["GET"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_put, methods=["PUT"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_get, methods=["GET"]),
    Route(ACCOUNT + "/deployments/{deployment}", deployment_delete, methods=["DELETE"]),
    Route(ACCOUNT + "/deployments", deployments_list, methods=["GET"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_put, methods=["PUT"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_get, methods=["GET"]),
    Route(ACCOUNT + "/raiPolicies/{policy}", rai_policy_delete, methods=["DELETE"]),
    Route(LOCATION + "/models", models_list, methods=["GET"]),
    Route(LOCATION + "/usages", usages_list, methods=["GET"]),
    Route(LOCATION + "/modelCapacities", model_capacities_list, methods=["GET"]),
    Route(
        SUB + "/providers/Microsoft.CognitiveServices/modelCapacities", model_capacities_list, methods=["GET"]
    ),
    Route(LOCATION + "/operationStatuses/{operation}", operation_status, methods=["GET"]),
    Route(
        LOCATION + "/resourceGroups/{resource_group}/deletedAccounts/{name}",
        deleted_account_get,
        methods=["GET"],
    ),
    Route(
        LOCATION + "/resourceGroups/{resource_group}/deletedAccounts/{name}",
        deleted_account_purge,
        methods=["DELETE"],
    ),
    Route(
        SUB + "/providers/Microsoft.CognitiveServices/deletedAccounts", deleted_accounts_list, methods=["GET"]
    ),
    Route(SEARCH_SERVICE, search_service_put, methods=["PUT"]),
    Route(SEARCH_SERVICE, search_service_get, methods=["GET"]),
    Route(SEARCH_SERVICE, search_service_delete, methods=["DELETE"]),
    Route(SEARCH_SERVICE + "/listAdminKeys", search_service_admin_keys, methods=["POST"]),
    Route(SEARCH_SERVICE + "/listQueryKeys", search_service_query_keys, methods=["POST"]),
    Route(
        SUB + "/resourceGroups/{resource_group}/providers/Microsoft.Search/searchServices",
        search_services_list,
        methods=["GET"],
    ),
    Route(SUB + "/providers/Microsoft.Search/searchServices", search_services_list, methods=["GET"]),
    Route(ROLE_ASSIGNMENTS + "/{assignment}", role_assignment_put, methods=["PUT"]),
    Route(ROLE_ASSIGNMENTS + "/{assignment}", role_assignment_get, methods=["GET"]),
    Route(ROLE_ASSIGNMENTS + "/{assignment}", role_assignment_delete, methods=["DELETE"]),
    Route(ROLE_ASSIGNMENTS, role_assignments_list, methods=["GET"]),
]
