"""Signing in with Microsoft in tests: the portal's real allauth flow against the emulator's
Entra ID tenant (provisioning/emulator/oidc.py and identity.py), the emulator's sign-in page
driven over HTTP as a browser would: no stand-in for Entra ID.

The demo directory (provisioning/emulator/identity_registry.py) is the tenant's: Nina is in
Marketing and HR, Leo in Finance, Omar in Central IT and the platform admins.
"""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from django.test import Client

from provisioning.emulator.identity_registry import (
    DEMO_PEOPLE_PASSWORD,
    PORTAL_CLIENT_ID,
    PORTAL_CLIENT_SECRET,
    find_user,
    registry,
)

TENANT_ID = "00000000-0000-0000-0000-000000000000"
CLIENT_ID = PORTAL_CLIENT_ID
CLIENT_SECRET = PORTAL_CLIENT_SECRET
# The portal's host as the emulator's registration allows it (loopback, any port).
PORTAL_HOST = "127.0.0.1"


def portal_client() -> Client:
    return Client(SERVER_NAME=PORTAL_HOST)


def single_values(query: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}


def authorize_request(client: Client) -> tuple[str, dict[str, str]]:
    """Press "Sign in with Microsoft": the emulator's authorize URL and its parameters."""
    response = client.post("/accounts/oidc/entra/login/")
    assert response.status_code == 302, response.content.decode()[:2000]
    location = urlsplit(response["Location"])
    return f"{location.scheme}://{location.netloc}{location.path}", single_values(location.query)


def emulator_sign_in(
    url: str, params: dict[str, str], *, username: str, password: str = DEMO_PEOPLE_PASSWORD
) -> dict[str, str]:
    """Pick a person on the emulator's sign-in page and type the password: the answer the
    browser carries back to the portal's callback."""
    page = requests.get(url, params=params, timeout=10)
    assert page.status_code == 200, page.text
    assert username in page.text
    answer = requests.post(
        url, data={**params, "username": username, "password": password}, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302, answer.text
    return single_values(urlsplit(answer.headers["location"]).query)


def entra_callback(client: Client, username: str) -> Any:
    """The whole authorization code flow up to the portal's callback, whose response is returned."""
    url, params = authorize_request(client)
    response = client.get(
        "/accounts/oidc/entra/login/callback/", emulator_sign_in(url, params, username=username)
    )
    return response


def sign_in_with_microsoft(username: str, client: Client | None = None) -> Client:
    """The whole authorization code flow; the client is signed in at its end."""
    client = client or portal_client()
    response = entra_callback(client, username)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/"
    return client


def directory_membership_set(emulator, *, username: str, group_id: str, member: bool) -> None:
    """Put a person in a group of the emulator's directory, or take them out. The emulator runs
    in the test's process; the change is made between requests."""
    store = emulator.store
    person = find_user(store, username)
    assert person is not None, username
    members = registry(store)["groups"][group_id]["members"]
    if member and person["objectId"] not in members:
        members.append(person["objectId"])
    elif not member and person["objectId"] in members:
        members.remove(person["objectId"])
