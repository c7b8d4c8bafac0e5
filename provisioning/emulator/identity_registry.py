"""What the emulated Entra ID tenant knows: its signing keys, the client applications that may ask
for tokens (with their secrets and service principals), the APIs tokens can be for, and the people
who may sign in with a password (the resource-owner password grant, for tests).

Kept in the emulator's state under `identity`; `reset` empties the registry back to the demo
entries but keeps the signing keys, as a real tenant's keys do not change when its Azure
resources go.
"""

import uuid
from typing import Any

from provisioning.emulator.signing import PUBLISHED_KEYS, new_signing_key
from provisioning.emulator.state import Store

# Switchyard's own API: the app id URI applications ask for (`api://switchyard/.default`) and its
# application (client) id, the audience of the v2.0 tokens issued for it. The portal's settings
# name the same id (GATEWAY_TOKEN_CLIENT_ID's default in emulator mode).
SWITCHYARD_APP_ID_URI = "api://switchyard"
SWITCHYARD_APP_ID = "5f3c9a2e-8b1d-4e6f-a7c0-2d9b8e4f1a63"

# A workload identity for demos: a daemon that calls the gateway with the client credentials grant.
DEMO_CLIENT_ID = "3b2f6c1d-9e4a-4f7b-8c5d-6a1e2f3b4c5d"
DEMO_CLIENT_SECRET = "demo-workload-secret"  # noqa: S105  (the emulator's demo app, not a real secret)
DEMO_CLIENT_OBJECT_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"

# A public client (no secret) people get tokens through: Microsoft's own Azure CLI app id, as
# `az account get-access-token --scope api://switchyard/.default` would use.
PUBLIC_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

# Switchyard's own sign-in: a confidential web application people sign in to with the authorization
# code flow (the portal's ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET under `make run`). Its redirect
# URIs are on loopback, where Entra matches any port, as a developer's machine needs.
PORTAL_CLIENT_ID = "8e1d4c7a-2f5b-4a9e-b3c6-0d7f1e2a9b84"
PORTAL_CLIENT_SECRET = "demo-portal-secret"  # noqa: S105  (the emulator's demo app, not a real secret)
PORTAL_CALLBACK_PATH = "/accounts/oidc/entra/login/callback/"

# Microsoft Graph, as every tenant knows it: scopes without a resource (`User.Read`) are Graph's.
# The application permissions are those the tenant's administrator consented to for its
# confidential clients: an app-only token carries them as `roles` (the directory sync's reads).
GRAPH_APP_ID_URI = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_APPLICATION_PERMISSIONS = ["GroupMember.Read.All", "User.Read.All"]


# The demo directory: groups the portal's demo maps to departments and platform roles (the portal's
# seed_demo and `make run` name the same ids), and people who sign in with Microsoft. None of them
# is a password demo account of the portal: an account signs in one way.
GROUP_CENTRAL_IT_MEMBERS = "0c1d2e3f-4a5b-4c6d-8e7f-101112131415"
GROUP_MARKETING_MEMBERS = "1d2e3f4a-5b6c-4d7e-8f90-212223242526"
GROUP_MARKETING_LEADS = "2e3f4a5b-6c7d-4e8f-9012-323334353637"
GROUP_FINANCE_MEMBERS = "3f4a5b6c-7d8e-4f90-a123-434445464748"
GROUP_HR_MEMBERS = "4a5b6c7d-8e9f-4012-b234-545556575859"
GROUP_PLATFORM_ADMINS = "5b6c7d8e-9f01-4123-8345-656667686970"
GROUP_FINANCE_APPROVERS = "6c7d8e9f-0123-4234-9456-767778798081"
GROUP_SECURITY_APPROVERS = "7d8e9f01-2345-4345-a567-878889909192"

DEMO_PEOPLE_PASSWORD = "microsoft-demo"  # noqa: S105  (the emulator's demo people, not a real secret)


def default_groups() -> dict[str, dict[str, Any]]:
    """Security groups by object id (lower case). `members` are object ids of people or of other
    groups (nested): a person belongs to a group transitively through the groups in it."""
    return {
        GROUP_CENTRAL_IT_MEMBERS: {
            "displayName": "SY Central IT",
            "members": ["c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"],
        },
        GROUP_MARKETING_MEMBERS: {
            "displayName": "SY Marketing",
            "members": ["a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"],
        },
        GROUP_MARKETING_LEADS: {"displayName": "SY Marketing leads", "members": []},
        GROUP_FINANCE_MEMBERS: {
            "displayName": "SY Finance",
            "members": ["b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"],
        },
        GROUP_HR_MEMBERS: {"displayName": "SY HR", "members": ["a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"]},
        GROUP_PLATFORM_ADMINS: {
            "displayName": "SY Platform admins",
            "members": ["c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"],
        },
        GROUP_FINANCE_APPROVERS: {"displayName": "SY Finance approvers", "members": []},
        GROUP_SECURITY_APPROVERS: {"displayName": "SY Security approvers", "members": []},
    }


def default_users() -> dict[str, dict[str, Any]]:
    """People by user principal name (lower case). Nina is in two mapped groups (Marketing and
    HR); Leo is in Finance alone, the demo's leaver; Omar runs Central IT and the platform."""
    return {
        "nina@example.com": {
            "objectId": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
            "name": "Nina Novak",
            "givenName": "Nina",
            "surname": "Novak",
            "password": DEMO_PEOPLE_PASSWORD,
            "accountEnabled": True,
        },
        "leo@example.com": {
            "objectId": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
            "name": "Leo Lambert",
            "givenName": "Leo",
            "surname": "Lambert",
            "password": DEMO_PEOPLE_PASSWORD,
            "accountEnabled": True,
        },
        "omar@example.com": {
            "objectId": "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
            "name": "Omar Okafor",
            "givenName": "Omar",
            "surname": "Okafor",
            "password": DEMO_PEOPLE_PASSWORD,
            "accountEnabled": True,
        },
    }


def default_apis() -> dict[str, dict[str, Any]]:
    """APIs by app id URI. `accessTokenVersion` is the manifest's accessTokenAcceptedVersion:
    Microsoft's own APIs take v1.0 tokens."""
    return {
        SWITCHYARD_APP_ID_URI: {
            "appId": SWITCHYARD_APP_ID,
            "displayName": "Switchyard gateway",
            "accessTokenVersion": 2,
            "scopes": ["user_impersonation"],
        },
        "https://cognitiveservices.azure.com": {
            "appId": "7d312290-28c8-473c-a0ed-8e53749b6d6d",
            "displayName": "Azure Cognitive Services",
            "accessTokenVersion": 1,
            "scopes": ["user_impersonation"],
        },
        GRAPH_APP_ID_URI: {
            "appId": GRAPH_APP_ID,
            "displayName": "Microsoft Graph",
            "accessTokenVersion": 1,
            "scopes": ["User.Read", "GroupMember.Read.All", "Group.Read.All", "User.Read.All"],
            "appRoles": GRAPH_APPLICATION_PERMISSIONS,
        },
        "https://management.azure.com": {
            "appId": "797f4846-ba00-4fd7-ba43-dac1f8f63013",
            "displayName": "Windows Azure Service Management API",
            "accessTokenVersion": 1,
            "scopes": ["user_impersonation"],
        },
    }


def default_clients() -> dict[str, dict[str, Any]]:
    """Client applications by client id (lower case); a client without a secret is public. A
    client with `redirectUris` may use the authorization code flow (provisioning/emulator/oidc.py)."""
    return {
        PORTAL_CLIENT_ID: {
            "displayName": "Switchyard",
            "secret": PORTAL_CLIENT_SECRET,
            "objectId": "d4e5f6a7-b8c9-4dae-8f01-2b3c4d5e6f70",
            "redirectUris": [
                f"http://localhost{PORTAL_CALLBACK_PATH}",
                f"http://127.0.0.1{PORTAL_CALLBACK_PATH}",
            ],
        },
        DEMO_CLIENT_ID: {
            "displayName": "Marketing reporting job",
            "secret": DEMO_CLIENT_SECRET,
            "objectId": DEMO_CLIENT_OBJECT_ID,
        },
        PUBLIC_CLIENT_ID: {
            "displayName": "Microsoft Azure CLI",
            "secret": None,
            "objectId": "e7a4c3b2-1d0f-4e9a-8b7c-6d5e4f3a2b1c",
        },
    }


def registry(store: Store) -> dict[str, Any]:
    """The tenant's registry, filled with the demo entries on first use."""
    identity = store.world.identity
    identity.setdefault("signing_keys", [])
    identity.setdefault("clients", default_clients())
    identity.setdefault("apis", default_apis())
    identity.setdefault("users", default_users())
    identity.setdefault("groups", default_groups())
    identity.setdefault("directory_changes", [])
    # A state file written before the emulator signed people in lacks what sign-in needs.
    identity["clients"].setdefault(PORTAL_CLIENT_ID, default_clients()[PORTAL_CLIENT_ID])
    identity["apis"].setdefault(GRAPH_APP_ID_URI, default_apis()[GRAPH_APP_ID_URI])
    # ... and one written before the directory sync, Graph's application permissions.
    identity["apis"][GRAPH_APP_ID_URI].setdefault("appRoles", GRAPH_APPLICATION_PERMISSIONS)
    return identity


def signing_keys(store: Store) -> list[dict[str, Any]]:
    """The published keys, the one that signs first; made on first use. Call under `store.lock`."""
    keys: list[dict[str, Any]] = registry(store)["signing_keys"]
    if not keys:
        keys.append(new_signing_key())
        store.save()
    return keys


def rotate_signing_key(store: Store) -> dict[str, Any]:
    """A new key signs from now on; the one it replaces stays published. Call under `store.lock`."""
    keys = signing_keys(store)
    keys.insert(0, new_signing_key())
    del keys[PUBLISHED_KEYS:]
    store.save()
    return keys[0]


def find_api(store: Store, resource: str) -> dict[str, Any] | None:
    """An API by its app id URI or its application id (both name the resource in a scope)."""
    apis: dict[str, dict[str, Any]] = registry(store)["apis"]
    wanted = resource.rstrip("/")
    for app_id_uri, api in apis.items():
        if app_id_uri.rstrip("/").lower() == wanted.lower() or api["appId"] == wanted.lower():
            return {"appIdUri": app_id_uri, **api}
    return None


def find_client(store: Store, client_id: str) -> dict[str, Any] | None:
    client: dict[str, Any] | None = registry(store)["clients"].get(client_id.lower())
    return client


def find_user(store: Store, username: str) -> dict[str, Any] | None:
    user: dict[str, Any] | None = registry(store)["users"].get(username.lower())
    return user


def find_user_by_object_id(store: Store, object_id: str) -> tuple[str, dict[str, Any]] | None:
    """A person by object id: their user principal name and entry."""
    for username, user in registry(store)["users"].items():
        if str(user["objectId"]).lower() == object_id.lower():
            return username, user
    return None


def transitive_group_ids(store: Store, object_id: str) -> set[str]:
    """Every group a person (or a group) belongs to, directly or through nested groups."""
    groups: dict[str, dict[str, Any]] = registry(store)["groups"]
    found: set[str] = set()
    wanted = {object_id.lower()}
    while wanted:
        parents = {
            group_id
            for group_id, group in groups.items()
            if group_id not in found and wanted & {str(member).lower() for member in group["members"]}
        }
        found |= parents
        wanted = parents
    return found


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


# The directory's change log, which Graph's delta links read from: every membership and account
# change gets the next sequence number; a delta link remembers the last number it saw. --------


def directory_change_record(store: Store, change: dict[str, Any]) -> int:
    """Append one change (`kind` member_added | member_removed | user_changed, with `group`,
    `member` or `user` object ids); its sequence number. Call under `store.lock`."""
    changes: list[dict[str, Any]] = registry(store)["directory_changes"]
    sequence = changes[-1]["sequence"] + 1 if changes else 1
    changes.append({"sequence": sequence, **change})
    return sequence


def directory_changes_since(store: Store, sequence: int) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = registry(store)["directory_changes"]
    return [change for change in changes if change["sequence"] > sequence]


def directory_sequence(store: Store) -> int:
    """The sequence number of the last change (0 before any)."""
    changes: list[dict[str, Any]] = registry(store)["directory_changes"]
    return int(changes[-1]["sequence"]) if changes else 0


def find_directory_object(store: Store, name: str) -> tuple[str, str] | None:
    """A person (by object id or user principal name) or a group (by id): ("user" | "group", object id)."""
    identity = registry(store)
    if name.lower() in identity["groups"]:
        return "group", name.lower()
    if "@" in name:
        user = find_user(store, name)
        return ("user", str(user["objectId"]).lower()) if user is not None else None
    found = find_user_by_object_id(store, name)
    return ("user", str(found[1]["objectId"]).lower()) if found is not None else None
