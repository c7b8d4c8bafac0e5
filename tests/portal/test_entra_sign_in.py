"""Entra ID sign-in, through allauth's real OpenID Connect flow against a stand-in identity provider.

Each sign-in sets the person's departments, lead roles and platform groups from their groups.
"""

from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from org.models import Membership, User
from tests.factories import make_department
from tests.portal.conftest import FINANCE_APPROVERS, PLATFORM_ADMINS, SECURITY_APPROVERS

MARKETING_MEMBERS = "6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f"
MARKETING_LEADS = "a3f2b1c0-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
FINANCE_MEMBERS = "0b9f8e7d-6c5b-4a39-8271-605f4e3d2c1b"
UNRELATED = ["9b8a7c6d-5e4f-4321-8abc-def012345678", "12345678-90ab-4cde-8f01-234567890abc"]
OID = "3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f"


@pytest.fixture
def departments(db):
    return {
        "marketing": make_department(
            name="Marketing", entra_member_group_id=MARKETING_MEMBERS, entra_lead_group_id=MARKETING_LEADS
        ),
        "finance": make_department(name="Finance", entra_member_group_id=FINANCE_MEMBERS),
        "workshop": make_department(name="Workshop"),  # no Entra groups: managed by hand
    }


def sign_in_with_entra() -> Client:
    client = Client()
    response = client.post("/accounts/oidc/entra/login/")
    assert response.status_code == 302, response.content
    state = parse_qs(urlparse(response["Location"]).query)["state"][0]
    response = client.get("/accounts/oidc/entra/login/callback/", {"code": "auth-code", "state": state})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/"
    return client


def roles_of(user: User) -> dict[str, str]:
    return {
        m.department.name: m.role for m in Membership.objects.filter(user=user).select_related("department")
    }


def test_first_sign_in_creates_the_person_with_their_departments(entra, departments):
    entra.sign_in_as(
        oid=OID,
        email="Nora.Berg@example.com",
        name="Nora Berg",
        groups=[MARKETING_MEMBERS, FINANCE_MEMBERS, *UNRELATED],
    )

    client = sign_in_with_entra()

    nora = User.objects.get(email="nora.berg@example.com")
    assert nora.get_full_name() == "Nora Berg"
    assert roles_of(nora) == {"Marketing": "member", "Finance": "member"}
    assert not nora.is_platform_admin
    assert not nora.is_staff
    home = client.get("/").content.decode()
    assert "Marketing" in home
    assert "Finance" in home


def test_later_sign_ins_add_change_and_remove_memberships(entra, departments):
    entra.sign_in_as(
        oid=OID, email="nora@example.com", name="Nora Berg", groups=[MARKETING_MEMBERS, FINANCE_MEMBERS]
    )
    sign_in_with_entra()
    nora = User.objects.get(email="nora@example.com")
    Membership.objects.create(user=nora, department=departments["workshop"], role=Membership.Role.LEAD)

    # Promoted to Marketing lead, left Finance, joined the platform admins.
    entra.sign_in_as(
        oid=OID, email="nora@example.com", name="Nora Berg", groups=[MARKETING_LEADS, PLATFORM_ADMINS]
    )
    sign_in_with_entra()

    nora = User.objects.get(email="nora@example.com")
    assert roles_of(nora) == {"Marketing": "lead", "Workshop": "lead"}
    assert nora.is_platform_admin
    assert nora.is_staff

    # Out of every group: Entra-governed memberships and roles go; the hand-set one stays.
    entra.sign_in_as(oid=OID, email="nora@example.com", name="Nora Berg", groups=[])
    sign_in_with_entra()

    nora = User.objects.get(email="nora@example.com")
    assert roles_of(nora) == {"Workshop": "lead"}
    assert not nora.is_platform_admin
    assert not nora.is_staff


def test_finance_approvers_come_from_their_group(entra, departments):
    entra.sign_in_as(oid=OID, email="fin@example.com", name="Fin Approver", groups=[FINANCE_APPROVERS])

    client = sign_in_with_entra()

    assert User.objects.get(email="fin@example.com").is_finance_approver
    assert client.get("/departments/").status_code == 200


def test_security_approvers_come_from_their_group_and_leave_with_it(entra, departments):
    entra.sign_in_as(oid=OID, email="sec@example.com", name="Sec Approver", groups=[SECURITY_APPROVERS])
    client = sign_in_with_entra()

    assert User.objects.get(email="sec@example.com").is_security_approver
    assert client.get("/audit/").status_code == 200
    assert client.get("/costs/").status_code == 403

    entra.sign_in_as(oid=OID, email="sec@example.com", name="Sec Approver", groups=[])
    client = sign_in_with_entra()

    assert not User.objects.get(email="sec@example.com").is_security_approver
    assert client.get("/audit/").status_code == 403


def test_a_groups_overage_is_read_from_microsoft_graph(entra, departments):
    entra.graph_pages = [[*UNRELATED, MARKETING_LEADS], [FINANCE_MEMBERS]]
    entra.sign_in_as(oid=OID, email="many@example.com", name="Many Groups", overage=True)

    sign_in_with_entra()

    assert entra.graph_calls == 2  # followed @odata.nextLink
    assert roles_of(User.objects.get(email="many@example.com")) == {"Marketing": "lead", "Finance": "member"}


def test_sign_in_works_when_graph_is_down_keeping_departments_but_not_platform_roles(
    entra, departments, caplog
):
    entra.graph_pages = [[MARKETING_MEMBERS, PLATFORM_ADMINS, FINANCE_APPROVERS]]
    entra.sign_in_as(oid=OID, email="many@example.com", name="Many Groups", overage=True)
    sign_in_with_entra()
    assert User.objects.get(email="many@example.com").is_platform_admin

    entra.graph_status = 503
    client = sign_in_with_entra()

    many = User.objects.get(email="many@example.com")
    assert roles_of(many) == {"Marketing": "member"}
    # Nothing confirms the powerful roles: they go until a sign-in with a readable Graph.
    assert not many.is_platform_admin
    assert not many.is_finance_approver
    assert not many.is_staff
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 302
    assert client.get("/costs/").status_code == 403
    assert "keeping their last known departments" in caplog.text
    assert "removing their platform roles" in caplog.text

    entra.graph_status = 200
    sign_in_with_entra()

    assert User.objects.get(email="many@example.com").is_platform_admin


def test_the_sign_in_page_offers_entra_id(client, entra, db):
    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Microsoft Entra ID" in page
