"""Who may open a document: its department's people, platform admins, and the people who may use
an assistant actively grounded on its data set, and nobody else."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from grounding.access import data_set_for_lead, data_set_for_reader, document_for_lead, document_for_reader
from grounding.models import Document, Grounding
from org.models import Membership
from provisioning.models import ModelDeployment
from tests.factories import make_department, make_deployment, make_user
from tests.grounding.pages_fixtures import (  # noqa: F401  (fixtures)
    brand_guide_fixture,
    documents_storage_fixture,
    marketing_zone_fixture,
    upload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(brand_guide, marketing_lead) -> Document:
    return upload(brand_guide, "voice.md", b"# Voice\n\nPlain words.\n", actor=marketing_lead)


@pytest.fixture
def sales(db):
    return make_department(name="Sales")


@pytest.fixture
def sales_member(sales):
    return make_user(email="sam.sales@example.com", department=sales)


def test_the_departments_people_and_platform_admins_read_it(
    document, marketing_lead, marketing_member, platform_admin
):
    for user in (marketing_lead, marketing_member, platform_admin):
        assert document_for_reader(user, document.pk) == document


def test_a_user_of_an_assistant_grounded_on_it_reads_it_from_another_department(
    document, brand_guide, sales, sales_member, client_for
):
    assistant = make_deployment(department=sales, display_name="Sales helper")
    Grounding.objects.create(deployment=assistant, data_set=brand_guide, state=Grounding.State.ACTIVE)

    assert document_for_reader(sales_member, document.pk) == document
    client = client_for(sales_member)
    assert client.get(reverse("grounding:document_view", args=[document.pk]) + "?page=1").status_code == 200
    assert client.get(reverse("grounding:document_download", args=[document.pk])).status_code == 200
    # The document, not the data set: its page and the others stay another department's.
    assert client.get(reverse("grounding:data_set_detail", args=[brand_guide.pk])).status_code == 404
    with pytest.raises(Http404):
        data_set_for_reader(sales_member, brand_guide.pk)


def test_a_shared_assistant_granted_to_the_department_counts(
    document, brand_guide, finance, sales, sales_member
):
    shared = make_deployment(department=finance, shared_with=[sales], display_name="Company assistant")
    Grounding.objects.create(deployment=shared, data_set=brand_guide, state=Grounding.State.ACTIVE)
    assert document_for_reader(sales_member, document.pk) == document


@pytest.mark.parametrize(
    ("grounding_state", "deployment_state"),
    [
        (Grounding.State.REQUESTED, ModelDeployment.State.ACTIVE),
        (Grounding.State.REJECTED, ModelDeployment.State.ACTIVE),
        (Grounding.State.REMOVED, ModelDeployment.State.ACTIVE),
        (Grounding.State.ACTIVE, ModelDeployment.State.DECOMMISSIONED),
    ],
)
def test_without_an_active_grounding_on_a_usable_assistant_it_does_not_exist(
    document, brand_guide, sales, sales_member, client_for, grounding_state, deployment_state
):
    assistant = make_deployment(department=sales, state=deployment_state)
    Grounding.objects.create(deployment=assistant, data_set=brand_guide, state=grounding_state)

    with pytest.raises(Http404):
        document_for_reader(sales_member, document.pk)
    client = client_for(sales_member)
    assert client.get(reverse("grounding:document_view", args=[document.pk])).status_code == 404
    assert client.get(reverse("grounding:document_download", args=[document.pk])).status_code == 404


def test_an_assistant_of_another_department_grounded_on_it_opens_nothing_for_outsiders(
    document, brand_guide, sales, finance_lead
):
    # Sales's assistant is grounded on it; Finance cannot use Sales's assistant.
    Grounding.objects.create(
        deployment=make_deployment(department=sales), data_set=brand_guide, state=Grounding.State.ACTIVE
    )
    with pytest.raises(Http404):
        document_for_reader(finance_lead, document.pk)


def test_leaving_the_department_ends_access_at_once(document, marketing, marketing_member):
    Membership.objects.filter(user=marketing_member, department=marketing).delete()
    marketing_member.refresh_from_db()
    with pytest.raises(Http404):
        document_for_reader(marketing_member, document.pk)


def test_a_missing_document_does_not_exist(db, platform_admin):
    with pytest.raises(Http404):
        document_for_reader(platform_admin, 999_999)


def test_changes_need_a_lead(
    document, brand_guide, marketing_lead, marketing_member, finance_lead, platform_admin
):
    assert data_set_for_lead(marketing_lead, brand_guide.pk) == brand_guide
    assert data_set_for_lead(platform_admin, brand_guide.pk) == brand_guide
    assert document_for_lead(marketing_lead, document.pk) == document
    with pytest.raises(PermissionDenied):
        data_set_for_lead(marketing_member, brand_guide.pk)
    with pytest.raises(PermissionDenied):
        document_for_lead(marketing_member, document.pk)
    with pytest.raises(Http404):
        data_set_for_lead(finance_lead, brand_guide.pk)
    with pytest.raises(Http404):
        document_for_lead(finance_lead, document.pk)
