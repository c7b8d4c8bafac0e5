"""Sign-in fixtures: Microsoft Entra ID stood in for on loopback (tests/entra.py)."""

import pytest

from tests.entra import CLIENT_ID, TENANT_ID, EntraStandIn

PLATFORM_ADMINS = "ffd1c2b3-a4e5-4f60-8172-93a4b5c6d7e8"
FINANCE_APPROVERS = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
SECURITY_APPROVERS = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"


@pytest.fixture
def entra(settings):
    with EntraStandIn() as standin:
        settings.SOCIALACCOUNT_PROVIDERS = {
            "openid_connect": {
                "APPS": [
                    {
                        "provider_id": "entra",
                        "name": "Microsoft Entra ID",
                        "client_id": CLIENT_ID,
                        "secret": "client-secret",
                        "settings": {
                            "server_url": standin.issuer,
                            "fetch_userinfo": False,
                            "uid_field": "oid",
                        },
                    }
                ]
            }
        }
        # Configured as production configures it: Entra sign-in is on.
        settings.ENTRA_TENANT_ID = TENANT_ID
        settings.ENTRA_CLIENT_ID = CLIENT_ID
        settings.ENTRA_GRAPH_URL = standin.url
        settings.ENTRA_ADMIN_GROUP_ID = PLATFORM_ADMINS
        settings.ENTRA_FINANCE_GROUP_ID = FINANCE_APPROVERS
        settings.ENTRA_SECURITY_GROUP_ID = SECURITY_APPROVERS
        yield standin
