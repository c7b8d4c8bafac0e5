"""Entra ID access tokens from the emulator's token endpoint, over HTTP, as applications get them:
a workload identity's (client credentials) and a person's (password grant)."""

import uuid
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from gateway.models import ServicePrincipal
from org.models import Department, User
from provisioning.emulator.identity_registry import PUBLIC_CLIENT_ID, SWITCHYARD_APP_ID_URI

SCOPE = f"{SWITCHYARD_APP_ID_URI}/.default"


def tenant() -> str:
    return str(settings.GATEWAY_TOKEN_TENANT_ID)


def token_response(emulator, form: dict[str, str], *, tenant_id: str | None = None) -> requests.Response:
    return requests.post(f"{emulator.url}/{tenant_id or tenant()}/oauth2/v2.0/token", data=form, timeout=10)


def register_workload(emulator, *, name: str = "Billing job") -> tuple[str, str, str]:
    """A new client application on the emulator: (client id, secret, service principal object id)."""
    client_id, secret, object_id = str(uuid.uuid4()), f"secret-{uuid.uuid4().hex}", str(uuid.uuid4())
    response = requests.put(
        f"{emulator.control_url}/identity/clients/{client_id}",
        json={"displayName": name, "secret": secret, "objectId": object_id},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return client_id, secret, object_id


def workload_token(
    emulator, client_id: str, secret: str, *, scope: str = SCOPE, tenant_id: str | None = None
) -> str:
    response = token_response(
        emulator,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope},
        tenant_id=tenant_id,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@dataclass
class Workload:
    """A client application on the emulator whose service principal Switchyard registered."""

    emulator: Any
    principal: ServicePrincipal
    client_id: str
    secret: str

    def token(self, *, scope: str = SCOPE, tenant_id: str | None = None) -> str:
        return workload_token(self.emulator, self.client_id, self.secret, scope=scope, tenant_id=tenant_id)


def register_principal(emulator, *, department: Department, name: str = "Billing job", **fields) -> Workload:
    """A workload identity on the emulator, registered for `department` as an admin would."""
    client_id, secret, object_id = register_workload(emulator, name=name)
    deployments = fields.pop("deployments", [])
    principal = ServicePrincipal.objects.create(
        department=department, name=name, object_id=object_id, application_id=client_id, **fields
    )
    principal.deployments.set(deployments)
    return Workload(emulator, principal, client_id, secret)


def person_token(emulator, user: User, *, object_id: str | None = None, scope: str = SCOPE) -> str:
    """A token for `user`, known to the emulator by their email and to Switchyard by their
    Entra ID object id (as their first sign-in with Microsoft leaves it)."""
    from allauth.socialaccount.models import SocialAccount

    account, _ = SocialAccount.objects.get_or_create(
        user=user, provider="entra", defaults={"uid": object_id or str(uuid.uuid4())}
    )
    object_id = account.uid
    password = f"pw-{uuid.uuid4().hex}"
    response = requests.put(
        f"{emulator.control_url}/identity/users/{user.email}",
        json={"password": password, "objectId": object_id, "name": user.display_name},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token = token_response(
        emulator,
        {
            "grant_type": "password",
            "client_id": PUBLIC_CLIENT_ID,
            "username": user.email,
            "password": password,
            "scope": scope,
        },
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])
