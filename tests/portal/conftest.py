"""Sign-in fixtures: Microsoft Entra ID is the emulator's tenant (tests/entra.py)."""

import copy

import pytest
from csp.constants import SELF

from provisioning.emulator.identity_registry import (
    GROUP_FINANCE_APPROVERS,
    GROUP_PLATFORM_ADMINS,
    GROUP_SECURITY_APPROVERS,
)
from tests.entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID

PLATFORM_ADMINS = GROUP_PLATFORM_ADMINS
FINANCE_APPROVERS = GROUP_FINANCE_APPROVERS
SECURITY_APPROVERS = GROUP_SECURITY_APPROVERS


@pytest.fixture
def entra(emulator, settings):
    """Entra sign-in on, as production configures it, against the emulator's tenant."""
    providers = copy.deepcopy(settings.SOCIALACCOUNT_PROVIDERS)
    providers["openid_connect"]["APPS"] = [
        {
            "provider_id": "entra",
            "name": "Microsoft Entra ID",
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "settings": {
                "server_url": f"{emulator.url}/{TENANT_ID}/v2.0",
                "fetch_userinfo": False,
                "uid_field": "oid",
                "scope": ["openid", "profile", "email", "User.Read", "GroupMember.Read.All"],
            },
        }
    ]
    settings.SOCIALACCOUNT_PROVIDERS = providers
    settings.ENTRA_TENANT_ID = TENANT_ID
    settings.ENTRA_CLIENT_ID = CLIENT_ID
    settings.ENTRA_CLIENT_SECRET = CLIENT_SECRET
    settings.ENTRA_AUTHORITY = emulator.url
    settings.ENTRA_GRAPH_URL = emulator.url
    settings.ENTRA_ADMIN_GROUP_ID = PLATFORM_ADMINS
    settings.ENTRA_FINANCE_GROUP_ID = FINANCE_APPROVERS
    settings.ENTRA_SECURITY_GROUP_ID = SECURITY_APPROVERS
    # As settings.py allows it: the browser follows the sign-in form's redirect to the authority.
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = [SELF, emulator.url]
    settings.CONTENT_SECURITY_POLICY = policy
    return emulator
