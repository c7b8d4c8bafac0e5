"""What people type into the admin: numbers no larger than their database column holds (the
same limit on SQLite as on PostgreSQL), names on one line (they go into email subjects and
headers), cost centers fit for an address, regions that are region names. Each refusal is a
message next to the field, and nothing is saved."""

import pytest
from django.test import Client
from django.urls import reverse

from org.models import Department
from tests.factories import make_deployment, make_landing_zone
from tests.hostile import PageParser

pytestmark = pytest.mark.django_db

ONE_LINE = "Use one line of text"


@pytest.fixture
def admin_client(platform_admin) -> Client:
    client = Client()
    client.force_login(platform_admin)
    return client


def post_change(client: Client, url: str, **changes: str):
    """The change form as the page shows it, with some fields changed, posted back."""
    page = PageParser(url)
    page.feed(client.get(url).content.decode())
    [form] = [form for form in page.forms if form.method == "post" and form.action == url]
    data: dict[str, list[str]] = {}
    for name, value in form.fields:
        data.setdefault(name, []).append(value)
    data.update({name: [value] for name, value in changes.items()})
    return client.post(url, data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Marketing\nBcc: everyone@example.com", ONE_LINE),
        ("name", "Marketing\x00", "Null characters are not allowed"),
        ("cost_center", "CC/2100", "Use letters, digits, spaces, dots, hyphens and underscores."),
        ("cost_center", "CC\t2100", "Use letters, digits, spaces, dots, hyphens and underscores."),
        ("chat_retention_days", "40000", "less than or equal to 32767"),
        ("chat_retention_days", "99999999999999999999", "less than or equal to 32767"),
        ("monthly_budget", "1e15", "no more than 12 digits in total"),
        ("monthly_budget", "NaN", "Enter a number"),
    ],
)
def test_a_department_refuses_what_its_columns_and_emails_cannot_take(
    admin_client, marketing, field, value, message
):
    response = post_change(
        admin_client, reverse("admin:org_department_change", args=[marketing.pk]), **{field: value}
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert Department.objects.get(pk=marketing.pk).name == "Marketing"


def test_a_department_with_sensible_values_is_saved(admin_client, marketing):
    url = reverse("admin:org_department_change", args=[marketing.pk])
    response = post_change(
        admin_client, url, name="Marketing & Brand", cost_center="CC-2100.01", chat_retention_days="365"
    )

    assert response.status_code == 302
    marketing.refresh_from_db()
    assert (marketing.name, marketing.cost_center, marketing.chat_retention_days) == (
        "Marketing & Brand",
        "CC-2100.01",
        365,
    )


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_persons_name_is_one_line(admin_client, marketing_lead, field):
    url = reverse("admin:org_user_change", args=[marketing_lead.pk])
    response = post_change(admin_client, url, **{field: "Lena\r\nBcc: everyone@example.com"})

    assert response.status_code == 200
    assert ONE_LINE in response.content.decode()


@pytest.mark.parametrize("value", ["3000000000", "2147483648", "99999999999999999999"])
def test_a_grants_tpm_cap_fits_its_column(admin_client, marketing, finance, value):
    shared = make_deployment(department=marketing, shared_with=[finance])
    grant = shared.grants.get(department=finance)
    url = reverse("admin:provisioning_accessgrant_change", args=[grant.pk])

    response = post_change(admin_client, url, tpm_cap=value)

    assert response.status_code == 200
    assert "less than or equal to 2147483647" in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("allowed_regions", '["Sweden Central"]', "Enter a list of Azure region names"),
        ("allowed_regions", "-1", "Enter a list of Azure region names"),
        ("allowed_regions", '{"region": "swedencentral"}', "Enter a list of Azure region names"),
        ("name", "Central\tIT", ONE_LINE),
    ],
)
def test_a_landing_zone_takes_region_names_and_a_one_line_name(admin_client, field, value, message):
    zone = make_landing_zone(name="Central")
    url = reverse("admin:provisioning_landingzone_change", args=[zone.pk])

    response = post_change(admin_client, url, **{field: value})

    assert response.status_code == 200
    assert message in response.content.decode()


def test_a_deployments_display_name_is_one_line(admin_client, marketing):
    deployment = make_deployment(department=marketing, display_name="Copy assistant")
    url = reverse("admin:provisioning_modeldeployment_change", args=[deployment.pk])

    response = post_change(admin_client, url, display_name="Copy\nassistant")

    assert response.status_code == 200
    assert ONE_LINE in response.content.decode()


def test_a_price_has_at_most_six_digits_before_the_point(admin_client):
    from provisioning.models import Price

    price = Price.objects.order_by("pk").first()
    url = reverse("admin:provisioning_price_change", args=[price.pk])

    response = post_change(admin_client, url, output_per_million="10000000")

    assert response.status_code == 200
    assert "no more than 6 digits before the decimal point" in response.content.decode()
