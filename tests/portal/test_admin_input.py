"""The Django admin refuses hostile ids, filters and JSON with a message, never a 500: ids that
are not numbers or do not fit a 64-bit column (SQLite raises OverflowError beyond), in
autocomplete fields, many-to-many fields and filters, an empty `_to_field`, and JSON that only
Python would parse."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from org.models import Membership
from tests.factories import make_landing_zone

pytestmark = pytest.mark.django_db

NOT_IDS = ["abc", "99999999999999999999", "-1", "1e999999", "NaN", "9" * 20_000]


@pytest.fixture
def admin_client(platform_admin) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(platform_admin)
    return client


@pytest.mark.parametrize("value", NOT_IDS)
def test_an_add_page_given_an_id_that_is_none_shows_the_form_without_it(admin_client, value):
    response = admin_client.get(reverse("admin:provisioning_landingzone_add"), {"owner_department": value})

    assert response.status_code == 200
    assert 'name="owner_department"' in response.content.decode()


@pytest.mark.parametrize("value", NOT_IDS)
def test_an_autocomplete_field_posted_an_id_that_is_none_says_so_next_to_it(
    admin_client, marketing_member, value
):
    response = admin_client.post(
        reverse("admin:org_membership_add"),
        {"user": marketing_member.pk, "department": value, "role": "member", "source": "manual"},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert Membership.objects.count() == 1  # the member's own, nothing added


@pytest.mark.parametrize("value", NOT_IDS)
def test_a_many_to_many_field_posted_an_id_that_is_none_says_so(admin_client, value):
    response = admin_client.post(
        reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": [value]}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "is not a valid value" in page or "Select a valid choice" in page


def test_a_many_to_many_field_still_takes_real_ids(admin_client):
    permission = Permission.objects.get(codename="view_department")
    response = admin_client.post(
        reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": [permission.pk]}
    )
    assert response.status_code == 302


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_an_empty_to_field_is_no_field(admin_client, marketing, view):
    response = admin_client.get(
        reverse(f"admin:org_department_{view}", args=[marketing.pk]), {"_to_field": ""}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("year", ["99999999999999999999", "9999", "0", "-1"])
def test_a_date_hierarchy_year_past_the_calendar_is_an_invalid_filter(admin_client, year):
    url = reverse("admin:provisioning_price_changelist")
    response = admin_client.get(url, {"valid_from__year": year, "valid_from__month": "12"})

    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize("lookup", ["department__id__exact", "department__id__in", "department__id__gt"])
def test_a_filter_on_an_id_past_64_bits_is_an_invalid_filter(admin_client, marketing, lookup):
    response = admin_client.get(reverse("admin:org_membership_changelist"), {lookup: "99999999999999999999"})

    assert response.status_code in (200, 302)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e999999", "9" * 20_000])
def test_json_that_only_python_reads_is_invalid_json(admin_client, value):
    zone = make_landing_zone(name="Central")
    response = admin_client.post(
        reverse("admin:provisioning_landingzone_change", args=[zone.pk]),
        {
            "name": zone.name,
            "slug": zone.slug,
            "subscription_id": zone.subscription_id,
            "resource_group": zone.resource_group,
            "allowed_regions": value,
            "owner_department": "",
        },
    )

    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()
    zone.refresh_from_db()
    assert zone.allowed_regions == ["swedencentral", "eastus2"]


@pytest.mark.parametrize(
    ("count", "value"),
    [("INITIAL_FORMS", "-1"), ("TOTAL_FORMS", "-1"), ("TOTAL_FORMS", "99999999999999999999")],
)
def test_an_inline_form_count_out_of_range_is_a_tampered_form_not_copies_of_its_rows(
    admin_client, marketing, marketing_lead, count, value
):
    url = reverse("admin:org_department_change", args=[marketing.pk])
    membership = Membership.objects.get(user=marketing_lead)
    data = {
        "name": marketing.name,
        "slug": marketing.slug,
        "cost_center": marketing.cost_center,
        "monthly_budget": marketing.monthly_budget,
        "chat_retention_days": marketing.chat_retention_days,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": membership.pk,
        "memberships-0-department": marketing.pk,
        "memberships-0-user": marketing_lead.pk,
        "memberships-0-role": "lead",
        "memberships-0-source": "manual",
    }
    data[f"memberships-{count}"] = value

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "ManagementForm data is missing or has been tampered with" in response.content.decode()
    assert Membership.objects.filter(department=marketing).count() == 1


@pytest.mark.parametrize(
    ("url", "key"),
    [("admin:org_membership_changelist", "role__exact"), ("admin:provisioning_price_changelist", "sku")],
)
def test_a_filter_value_with_nul_is_an_invalid_filter(admin_client, url, key):
    # PostgreSQL refuses NUL in a query: this was a 500 there.
    response = admin_client.get(reverse(url), {key: "lead\x00"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_an_autocomplete_search_with_nul_finds_nothing(admin_client, marketing):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "org", "model_name": "membership", "field_name": "department", "term": "Mark\x00"},
    )

    assert response.status_code == 200
    assert response.json()["results"] == []
