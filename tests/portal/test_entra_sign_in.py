"""Sign-in with Microsoft Entra ID: allauth's real OpenID Connect flow (PKCE, state, nonce) against
the emulator's tenant, its sign-in page driven over HTTP.

Each sign-in sets the person's departments, lead roles and platform groups from their groups in
the emulator's directory (Nina: Marketing and HR; Leo: Finance; Omar: Central IT, platform admins).
"""

import importlib.util
from urllib.parse import urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialAccount

from audit.models import AuditEvent
from org.models import Membership, User
from provisioning.emulator.identity_registry import (
    GROUP_CENTRAL_IT_MEMBERS,
    GROUP_FINANCE_MEMBERS,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_LEADS,
    GROUP_MARKETING_MEMBERS,
)
from tests.entra import (
    authorize_request,
    directory_membership_set,
    emulator_sign_in,
    portal_client,
    sign_in_with_microsoft,
)
from tests.factories import make_department
from tests.portal.conftest import FINANCE_APPROVERS, PLATFORM_ADMINS, SECURITY_APPROVERS
from tests.servers import free_port

NINA_OID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def departments(db):
    return {
        "central-it": make_department(name="Central IT", entra_member_group_id=GROUP_CENTRAL_IT_MEMBERS),
        "marketing": make_department(
            name="Marketing",
            entra_member_group_id=GROUP_MARKETING_MEMBERS,
            entra_lead_group_id=GROUP_MARKETING_LEADS,
        ),
        "finance": make_department(name="Finance", entra_member_group_id=GROUP_FINANCE_MEMBERS),
        "hr": make_department(name="HR", entra_member_group_id=GROUP_HR_MEMBERS),
        "workshop": make_department(name="Workshop"),  # no Entra groups: managed by hand
    }


def roles_of(user: User) -> dict[str, str]:
    return {
        m.department.name: m.role for m in Membership.objects.filter(user=user).select_related("department")
    }


def test_first_sign_in_creates_the_person_with_their_departments(entra, departments):
    client = sign_in_with_microsoft("nina@example.com")

    nina = User.objects.get(email="nina@example.com")
    assert nina.get_full_name() == "Nina Novak"
    assert roles_of(nina) == {"Marketing": "member", "HR": "member"}
    assert SocialAccount.objects.get(user=nina, provider="entra").uid == NINA_OID
    assert not nina.is_platform_admin
    home = client.get("/").content.decode()
    assert "Marketing" in home
    assert "HR" in home
    assert AuditEvent.objects.filter(verb="auth.signed_in", actor=nina, object_id=str(nina.pk)).exists()


def test_the_request_carries_pkce_state_and_a_nonce(entra, departments):
    url, params = authorize_request(portal_client())

    assert url == f"{entra.url}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/authorize"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"]
    assert len(params["nonce"]) >= 32
    assert params["redirect_uri"] == "http://127.0.0.1/accounts/oidc/entra/login/callback/"


def test_later_sign_ins_add_change_and_remove_memberships(entra, departments):
    sign_in_with_microsoft("nina@example.com")
    nina = User.objects.get(email="nina@example.com")
    Membership.objects.create(user=nina, department=departments["workshop"], role=Membership.Role.LEAD)

    # Promoted to Marketing lead, left HR, joined the platform admins.
    directory_membership_set(entra, username="nina@example.com", group_id=GROUP_MARKETING_LEADS, member=True)
    directory_membership_set(entra, username="nina@example.com", group_id=GROUP_HR_MEMBERS, member=False)
    directory_membership_set(entra, username="nina@example.com", group_id=PLATFORM_ADMINS, member=True)
    sign_in_with_microsoft("nina@example.com")

    nina = User.objects.get(email="nina@example.com")
    assert roles_of(nina) == {"Marketing": "lead", "Workshop": "lead"}
    assert nina.is_platform_admin
    assert nina.is_staff

    # Out of every group: Entra-governed memberships and roles go; the hand-set one stays.
    for group_id in (GROUP_MARKETING_LEADS, GROUP_MARKETING_MEMBERS, PLATFORM_ADMINS):
        directory_membership_set(entra, username="nina@example.com", group_id=group_id, member=False)
    sign_in_with_microsoft("nina@example.com")

    nina = User.objects.get(email="nina@example.com")
    assert roles_of(nina) == {"Workshop": "lead"}
    assert not nina.is_platform_admin
    assert not nina.is_staff


def test_finance_approvers_come_from_their_group(entra, departments):
    directory_membership_set(entra, username="leo@example.com", group_id=FINANCE_APPROVERS, member=True)

    client = sign_in_with_microsoft("leo@example.com")

    assert User.objects.get(email="leo@example.com").is_finance_approver
    assert client.get("/departments/").status_code == 200


def test_security_approvers_come_from_their_group_and_leave_with_it(entra, departments):
    directory_membership_set(entra, username="leo@example.com", group_id=SECURITY_APPROVERS, member=True)
    client = sign_in_with_microsoft("leo@example.com")

    assert User.objects.get(email="leo@example.com").is_security_approver
    assert client.get("/audit/").status_code == 200
    assert client.get("/costs/").status_code == 403

    directory_membership_set(entra, username="leo@example.com", group_id=SECURITY_APPROVERS, member=False)
    client = sign_in_with_microsoft("leo@example.com")

    assert not User.objects.get(email="leo@example.com").is_security_approver
    assert client.get("/audit/").status_code == 403


@pytest.mark.skipif(
    importlib.util.find_spec("provisioning.emulator.graph") is None,
    reason="the emulator does not serve Microsoft Graph's /v1.0/me/transitiveMemberOf yet",
)
def test_a_groups_overage_is_read_from_microsoft_graph(entra, departments):
    entra.configure(groups_claim_limit=1)  # Nina's two groups no longer fit in the token

    sign_in_with_microsoft("nina@example.com")

    assert roles_of(User.objects.get(email="nina@example.com")) == {"Marketing": "member", "HR": "member"}


def test_sign_in_works_when_graph_is_down_keeping_departments_but_not_platform_roles(
    entra, departments, settings, caplog
):
    sign_in_with_microsoft("omar@example.com")
    assert User.objects.get(email="omar@example.com").is_platform_admin

    # Too many groups for the token, and nothing answers where Graph should.
    entra.configure(groups_claim_limit=0)
    settings.ENTRA_GRAPH_URL = f"http://127.0.0.1:{free_port()}"
    client = sign_in_with_microsoft("omar@example.com")

    omar = User.objects.get(email="omar@example.com")
    assert roles_of(omar) == {"Central IT": "member"}
    # Nothing confirms the powerful roles: they go until a sign-in with a readable Graph.
    assert not omar.is_platform_admin
    assert not omar.is_staff
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 302
    assert client.get("/costs/").status_code == 403
    assert "keeping their last known departments" in caplog.text
    assert "removing their platform roles" in caplog.text

    entra.configure(groups_claim_limit=200)
    sign_in_with_microsoft("omar@example.com")

    assert User.objects.get(email="omar@example.com").is_platform_admin


def test_an_id_token_for_another_sign_in_is_refused(entra, departments):
    client = portal_client()
    url, params = authorize_request(client)
    # The emulator is asked with someone else's nonce: its ID token answers another request.
    answer = emulator_sign_in(
        url, {**params, "nonce": "a-nonce-from-another-sign-in"}, username="nina@example.com"
    )

    response = client.get("/accounts/oidc/entra/login/callback/", answer)

    assert response.status_code == 401
    assert "Sign-in with Microsoft did not work" in response.content.decode()
    assert client.get("/").status_code == 302  # not signed in
    assert not User.objects.filter(email="nina@example.com").exists()
    assert AuditEvent.objects.filter(verb="auth.sign_in_failed").exists()


def test_a_callback_with_another_state_is_refused(entra, departments):
    client = portal_client()
    url, params = authorize_request(client)
    answer = emulator_sign_in(url, params, username="nina@example.com")

    response = client.get("/accounts/oidc/entra/login/callback/", {**answer, "state": "forged"})

    assert response.status_code == 401
    assert client.get("/").status_code == 302
    assert not User.objects.filter(email="nina@example.com").exists()


def test_a_code_cannot_sign_in_twice(entra, departments):
    client = portal_client()
    url, params = authorize_request(client)
    answer = emulator_sign_in(url, params, username="nina@example.com")
    assert client.get("/accounts/oidc/entra/login/callback/", answer).status_code == 302
    client.post("/accounts/logout/")

    replayed = client.get("/accounts/oidc/entra/login/callback/", answer)

    assert replayed.status_code == 401
    assert client.get("/").status_code == 302


def test_cancelling_on_microsofts_page_leaves_the_person_signed_out_with_a_message(entra, departments):
    client = portal_client()
    url, params = authorize_request(client)
    answer = requests.post(url, data={**params, "cancel": "1"}, allow_redirects=False, timeout=10)
    callback = urlsplit(answer.headers["location"])

    response = client.get(f"{callback.path}?{callback.query}", follow=True)

    assert response.status_code == 200
    assert "You cancelled on Microsoft's page" in response.content.decode().replace("&#x27;", "'")
    assert client.get("/").status_code == 302


def test_the_sign_in_page_offers_entra_id(client, entra, db):
    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Microsoft Entra ID" in page
