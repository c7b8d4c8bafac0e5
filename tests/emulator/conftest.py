"""Fixtures for the emulator's own tests. The shared ones (`emulator`, `cognitive`, builders of
accounts and deployments) live in tests/emulator/fixtures.py, registered for the whole suite."""

import uuid
from dataclasses import dataclass

import pytest

from tests.emulator.fixtures import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    TEST_SETTINGS,
    keyless_account,
    model_deployment,
)

__all__ = [
    "RESOURCE_GROUP",
    "SUBSCRIPTION",
    "TEST_SETTINGS",
    "ChatDeployment",
    "deploy_chat",
    "grant_openai_user",
]

OPENAI_USER_ROLE = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"  # Cognitive Services OpenAI User


@dataclass(frozen=True)
class ChatDeployment:
    """A deployment ready for chat, as the portal would have provisioned it."""

    endpoint: str  # the account's properties.endpoint, e.g. http://127.0.0.1:port/accounts/oai-chat-sub/
    deployment: str
    account_id: str
    account_name: str


def grant_openai_user(scope: str, principal_id: str) -> None:
    from provisioning.azure import authorization_client

    role = (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER_ROLE}"
    )
    authorization_client(SUBSCRIPTION).role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "properties": {
                "roleDefinitionId": role,
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
            }
        },
    )


def deploy_chat(
    cognitive,
    *,
    account: str = "oai-chat",
    deployment: str = "chat",
    model: str = "gpt-4o-mini",
    version: str = "2024-07-18",
    capacity: int = 20,
    keyless: bool = True,
    grant: bool = True,
) -> ChatDeployment:
    """Account, deployment and the portal's data role, through the official management SDKs."""
    from django.conf import settings

    body = keyless_account(account)
    body.properties.disable_local_auth = keyless
    created = cognitive.accounts.begin_create(RESOURCE_GROUP, account, body).result()
    cognitive.deployments.begin_create_or_update(
        RESOURCE_GROUP, account, deployment, model_deployment(model, version, capacity=capacity)
    ).result()
    if grant:
        grant_openai_user(created.id, settings.AZURE_PORTAL_PRINCIPAL_ID)
    return ChatDeployment(created.properties.endpoint, deployment, created.id, account)


@pytest.fixture
def chat_deployment(cognitive) -> ChatDeployment:
    """A keyless gpt-4o-mini GlobalStandard deployment (20K TPM) the portal's identity may call."""
    return deploy_chat(cognitive)
