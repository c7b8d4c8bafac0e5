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
        "https://management.azure.com": {
            "appId": "797f4846-ba00-4fd7-ba43-dac1f8f63013",
            "displayName": "Windows Azure Service Management API",
            "accessTokenVersion": 1,
            "scopes": ["user_impersonation"],
        },
    }


def default_clients() -> dict[str, dict[str, Any]]:
    """Client applications by client id (lower case); a client without a secret is public."""
    return {
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
    identity.setdefault("users", {})
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


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
