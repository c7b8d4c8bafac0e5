"""The directory sync's fixtures: the portal's Entra settings pointing at the test emulator
(its demo directory: Nina in Marketing and HR, Leo in Finance, Omar in Central IT and the
platform admins), departments mapped to the demo groups, and the demo people as they are once
they signed in with Microsoft."""

import pytest
import requests
from allauth.socialaccount.models import SocialAccount

from org.models import Department, Membership, PlatformGroup, User
from org.services import memberships_sync_from_entra
from provisioning.emulator.identity_registry import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    GROUP_CENTRAL_IT_MEMBERS,
    GROUP_FINANCE_MEMBERS,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_LEADS,
    GROUP_MARKETING_MEMBERS,
    GROUP_PLATFORM_ADMINS,
    default_users,
)
from tests.factories import make_department

TENANT_ID = "4d6e8f0a-1b2c-4d3e-9f4a-5b6c7d8e9f01"


class Directory:
    """The emulated tenant's directory, changed as its administrators change it."""

    def __init__(self, url: str) -> None:
        self.control_url = f"{url}/_emulator/identity"

    def remove_member(self, group_id: str, member: str) -> None:
        response = requests.delete(f"{self.control_url}/groups/{group_id}/members/{member}", timeout=10)
        assert response.status_code == 200, response.text

    def add_member(self, group_id: str, member: str) -> None:
        response = requests.put(f"{self.control_url}/groups/{group_id}/members/{member}", timeout=10)
        assert response.status_code == 200, response.text

    def set_account_enabled(self, username: str, enabled: bool) -> None:
        response = requests.patch(
            f"{self.control_url}/users/{username}", json={"accountEnabled": enabled}, timeout=10
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def directory(emulator, settings) -> Directory:
    settings.ENTRA_TENANT_ID = TENANT_ID
    settings.ENTRA_CLIENT_ID = DEMO_CLIENT_ID
    settings.ENTRA_CLIENT_SECRET = DEMO_CLIENT_SECRET
    settings.ENTRA_AUTHORITY = emulator.url
    settings.ENTRA_GRAPH_URL = emulator.url
    settings.ENTRA_ADMIN_GROUP_ID = GROUP_PLATFORM_ADMINS
    settings.ENTRA_FINANCE_GROUP_ID = ""
    settings.ENTRA_SECURITY_GROUP_ID = ""
    return Directory(emulator.url)


@pytest.fixture
def mapped_departments(db) -> dict[str, Department]:
    return {
        "marketing": make_department(
            name="Marketing",
            entra_member_group_id=GROUP_MARKETING_MEMBERS,
            entra_lead_group_id=GROUP_MARKETING_LEADS,
        ),
        "finance": make_department(name="Finance", entra_member_group_id=GROUP_FINANCE_MEMBERS),
        "hr": make_department(name="HR", entra_member_group_id=GROUP_HR_MEMBERS),
        "central-it": make_department(name="Central IT", entra_member_group_id=GROUP_CENTRAL_IT_MEMBERS),
    }


def signed_in_with_microsoft(username: str, group_ids: set[str]) -> User:
    """A demo person as their first sign-in with Microsoft left them."""
    person = default_users()[username]
    user = User.objects.create_user(
        username, None, first_name=person["givenName"], last_name=person["surname"]
    )
    SocialAccount.objects.create(user=user, provider="entra", uid=person["objectId"])
    memberships_sync_from_entra(user=user, group_ids=group_ids)
    return user


@pytest.fixture
def nina(directory, mapped_departments) -> User:
    return signed_in_with_microsoft("nina@example.com", {GROUP_MARKETING_MEMBERS, GROUP_HR_MEMBERS})


@pytest.fixture
def leo(directory, mapped_departments) -> User:
    return signed_in_with_microsoft("leo@example.com", {GROUP_FINANCE_MEMBERS})


@pytest.fixture
def omar(directory, mapped_departments) -> User:
    return signed_in_with_microsoft("omar@example.com", {GROUP_CENTRAL_IT_MEMBERS, GROUP_PLATFORM_ADMINS})


def departments_of(user: User) -> dict[str, str]:
    """The person's departments and roles, as the database has them now."""
    return dict(
        Membership.objects.filter(user=user)
        .values_list("department__name", "role")
        .order_by("department__name")
    )


def is_platform_admin(user: User) -> bool:
    return User.objects.get(pk=user.pk).groups.filter(name=PlatformGroup.ADMINS).exists()
