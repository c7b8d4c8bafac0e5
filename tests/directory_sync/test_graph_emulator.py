"""The emulator's Microsoft Graph answers in Graph's shapes and refuses what Graph refuses."""

import pytest
import requests

from provisioning.emulator.identity_registry import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PEOPLE_PASSWORD,
    GROUP_FINANCE_MEMBERS,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_MEMBERS,
    PUBLIC_CLIENT_ID,
)
from tests.directory_sync.conftest import TENANT_ID

NINA = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
LEO = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"


def token(emulator, **form: str) -> str:
    response = requests.post(f"{emulator.url}/{TENANT_ID}/oauth2/v2.0/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def app_token(emulator) -> str:
    return token(
        emulator,
        grant_type="client_credentials",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        scope="https://graph.microsoft.com/.default",
    )


@pytest.fixture
def nina_token(emulator) -> str:
    return token(
        emulator,
        grant_type="password",
        client_id=PUBLIC_CLIENT_ID,
        username="nina@example.com",
        password=DEMO_PEOPLE_PASSWORD,
        scope="https://graph.microsoft.com/User.Read",
    )


def graph_get(emulator, path: str, bearer: str | None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.get(f"{emulator.url}{path}", params=params, headers=headers, timeout=10)


def test_an_app_only_token_for_graph_carries_the_consented_application_permissions(app_token):
    import jwt

    claims = jwt.decode(app_token, options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["ver"] == "1.0"
    assert claims["idtyp"] == "app"
    assert set(claims["roles"]) == {"GroupMember.Read.All", "User.Read.All"}


def test_graph_refuses_requests_without_a_token_or_with_one_for_another_api(emulator):
    response = graph_get(
        emulator, f"/v1.0/groups/{GROUP_FINANCE_MEMBERS}/transitiveMembers/microsoft.graph.user", None
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "request-id" in response.json()["error"]["innerError"]

    gateway_token = token(
        emulator,
        grant_type="client_credentials",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        scope="api://switchyard/.default",
    )
    response = graph_get(
        emulator,
        f"/v1.0/groups/{GROUP_FINANCE_MEMBERS}/transitiveMembers/microsoft.graph.user",
        gateway_token,
    )
    assert response.status_code == 401
    assert "Invalid audience" in response.json()["error"]["message"]


def test_a_delegated_token_without_group_permissions_cannot_list_a_groups_members(emulator, nina_token):
    response = graph_get(
        emulator, f"/v1.0/groups/{GROUP_FINANCE_MEMBERS}/transitiveMembers/microsoft.graph.user", nina_token
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_transitive_members_are_paged_and_carry_account_enabled_only_when_selected(emulator, app_token):
    requests.put(
        f"{emulator.control_url}/identity/groups/{GROUP_HR_MEMBERS}/members/{GROUP_FINANCE_MEMBERS}",
        timeout=10,
    )
    path = f"/v1.0/groups/{GROUP_HR_MEMBERS}/transitiveMembers/microsoft.graph.user"

    first = graph_get(emulator, path, app_token, **{"$select": "id,accountEnabled", "$top": "1"}).json()
    assert first["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#users(id,accountEnabled)"
    assert first["value"] == [{"id": NINA, "accountEnabled": True}]
    second = requests.get(
        first["@odata.nextLink"], headers={"Authorization": f"Bearer {app_token}"}, timeout=10
    )
    assert second.json()["value"] == [{"id": LEO, "accountEnabled": True}]  # through the nested Finance group
    assert "@odata.nextLink" not in second.json()

    default = graph_get(emulator, path, app_token).json()["value"][0]
    assert default["userPrincipalName"] == "nina@example.com"
    assert "accountEnabled" not in default


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (
            f"/v1.0/groups/{GROUP_HR_MEMBERS}/transitiveMembers/microsoft.graph.user",
            {"$select": "salary"},
            400,
            "Request_BadRequest",
        ),
        (
            f"/v1.0/groups/{GROUP_HR_MEMBERS}/transitiveMembers/microsoft.graph.user",
            {"$top": "0"},
            400,
            "Request_BadRequest",
        ),
        (
            f"/v1.0/groups/{GROUP_HR_MEMBERS}/transitiveMembers/microsoft.graph.user",
            {"$skiptoken": "%%%"},
            400,
            "Request_BadRequest",
        ),
        (
            "/v1.0/groups/9f9f9f9f-0000-4000-8000-000000000000/transitiveMembers/microsoft.graph.user",
            {},
            404,
            "Request_ResourceNotFound",
        ),
        ("/v1.0/groups/delta", {"$filter": "displayName eq 'x'"}, 400, "Request_UnsupportedQuery"),
        ("/v1.0/groups/delta", {"$filter": "id in ('not-a-guid')"}, 400, "Request_BadRequest"),
        ("/v1.0/groups/delta", {"$deltatoken": "bm90IGpzb24"}, 400, "Request_BadRequest"),
        ("/v1.0/users/nobody@example.com", {}, 404, "Request_ResourceNotFound"),
        ("/v1.0/me/transitiveMemberOf/microsoft.graph.group", {}, 400, "BadRequest"),
    ],
)
def test_graph_answers_bad_requests_with_its_error_shape(emulator, app_token, path, params, status, code):
    response = graph_get(emulator, path, app_token, **params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_groups_delta_lists_members_then_only_changes_since_its_link(emulator, app_token):
    first = graph_get(
        emulator,
        "/v1.0/groups/delta",
        app_token,
        **{
            "$filter": f"id eq '{GROUP_MARKETING_MEMBERS}' or id eq '{GROUP_HR_MEMBERS}'",
            "$select": "members",
        },
    ).json()
    assert {group["id"]: group["members@delta"] for group in first["value"]} == {
        GROUP_MARKETING_MEMBERS: [{"@odata.type": "#microsoft.graph.user", "id": NINA}],
        GROUP_HR_MEMBERS: [{"@odata.type": "#microsoft.graph.user", "id": NINA}],
    }
    link = first["@odata.deltaLink"]
    control = f"{emulator.control_url}/identity/groups"
    requests.delete(f"{control}/{GROUP_HR_MEMBERS}/members/nina@example.com", timeout=10)
    requests.put(f"{control}/{GROUP_FINANCE_MEMBERS}/members/nina@example.com", timeout=10)  # not asked about

    changes = requests.get(link, headers={"Authorization": f"Bearer {app_token}"}, timeout=10).json()

    assert changes["value"] == [
        {
            "id": GROUP_HR_MEMBERS,
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": NINA, "@removed": {"reason": "deleted"}}
            ],
        }
    ]
    nothing_new = requests.get(
        changes["@odata.deltaLink"], headers={"Authorization": f"Bearer {app_token}"}, timeout=10
    )
    assert nothing_new.json()["value"] == []


def test_groups_delta_pages_with_the_max_page_size_preference(emulator, app_token):
    headers = {"Authorization": f"Bearer {app_token}", "Prefer": "odata.maxpagesize=1"}
    url = f"{emulator.url}/v1.0/groups/delta?$filter=id in ('{GROUP_MARKETING_MEMBERS}','{GROUP_HR_MEMBERS}')"
    first = requests.get(url, headers=headers, timeout=10).json()
    assert len(first["value"]) == 1
    assert "@odata.deltaLink" not in first
    second = requests.get(first["@odata.nextLink"], headers=headers, timeout=10).json()
    assert len(second["value"]) == 1
    assert "$deltatoken=" in second["@odata.deltaLink"]


def test_a_user_reads_with_account_enabled_after_it_was_disabled(emulator, app_token):
    response = requests.patch(
        f"{emulator.control_url}/identity/users/leo@example.com", json={"accountEnabled": False}, timeout=10
    )
    assert response.status_code == 200

    by_id = graph_get(emulator, f"/v1.0/users/{LEO}", app_token, **{"$select": "id,accountEnabled"}).json()
    assert by_id["accountEnabled"] is False
    assert by_id["@odata.context"].endswith("#users(id,accountEnabled)/$entity")


def test_me_transitive_member_of_lists_the_signed_in_persons_groups(emulator, nina_token):
    response = graph_get(
        emulator, "/v1.0/me/transitiveMemberOf/microsoft.graph.group", nina_token, **{"$select": "id"}
    )
    assert response.status_code == 200
    assert sorted(group["id"] for group in response.json()["value"]) == sorted(
        [GROUP_MARKETING_MEMBERS, GROUP_HR_MEMBERS]
    )


def test_a_graph_fault_answers_as_graph_does_when_it_is_throttling(emulator, app_token):
    emulator.inject(operation="graph", kind="429", count=1, retry_after_seconds=7)
    path = f"/v1.0/groups/{GROUP_HR_MEMBERS}/transitiveMembers/microsoft.graph.user"

    throttled = graph_get(emulator, path, app_token)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert graph_get(emulator, path, app_token).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", f"/identity/groups/{GROUP_HR_MEMBERS}/members/nobody@example.com", None, 404),
        ("PUT", "/identity/groups/9f9f9f9f-0000-4000-8000-000000000000/members/leo@example.com", None, 404),
        ("PUT", f"/identity/groups/{GROUP_HR_MEMBERS}/members/{GROUP_HR_MEMBERS}", None, 404),
        ("PATCH", "/identity/users/leo@example.com", {"accountEnabled": "no"}, 400),
        ("PATCH", "/identity/users/leo@example.com", {"enabled": False}, 400),
        ("PATCH", "/identity/users/nobody@example.com", {"accountEnabled": False}, 404),
    ],
)
def test_the_directory_controls_refuse_what_they_cannot_do_with_a_reason(
    emulator, method, path, body, status
):
    response = requests.request(method, f"{emulator.control_url}{path}", json=body, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_a_sign_in_with_a_groups_overage_reads_the_persons_groups_from_the_emulators_graph(
    emulator, nina_token, settings
):
    from org.entra import group_ids_from_claims

    settings.ENTRA_GRAPH_URL = emulator.url
    overage = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "..."}}}

    assert group_ids_from_claims(overage, access_token=nina_token) == {
        GROUP_MARKETING_MEMBERS,
        GROUP_HR_MEMBERS,
    }


def test_a_sign_in_with_a_groups_overage_says_graph_is_unavailable_when_it_fails(
    emulator, nina_token, settings
):
    from org.entra import GraphUnavailable, group_ids_from_claims

    settings.ENTRA_GRAPH_URL = emulator.url
    emulator.inject(operation="graph", kind="503", retry_after_seconds=0)

    with pytest.raises(GraphUnavailable, match="503"):
        group_ids_from_claims({"_claim_names": {"groups": "src1"}}, access_token=nina_token)
