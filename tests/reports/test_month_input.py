"""A month no cost page can show (malformed, before the first month, in the future) is a 400
with the reason next to the month field, or as the text of a CSV download; never a 500."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

FULL_WIDTH_YEAR = "\uff11\uff12\uff13\uff14"  # digits, to Python's int(), but not to a month field
BAD_MONTHS = [
    "0001-01",
    "9999-12",
    "2026-13",
    "0000-00",
    "-1",
    "soon",
    "2026-1",
    f"{FULL_WIDTH_YEAR}-01",
    "2026-12\n",
]


@pytest.fixture
def cost_urls(marketing, copy_assistant):
    return {
        "overview": reverse("reports:overview"),
        "department": reverse("reports:department", args=[marketing.slug]),
        "deployment": reverse("reports:deployment", args=[copy_assistant.pk]),
        "chargeback": reverse("reports:chargeback", args=[marketing.cost_center]),
        "reconciliation": reverse("reports:reconciliation"),
    }


@pytest.fixture
def export_urls(marketing, copy_assistant):
    return {
        "overview": reverse("reports:overview_export", args=["departments"]),
        "department": reverse("reports:department_export", args=[marketing.slug, "deployments"]),
        "deployment": reverse("reports:deployment_export", args=[copy_assistant.pk, "daily"]),
        "chargeback": reverse("reports:chargeback_export", args=[marketing.cost_center]),
    }


@pytest.mark.parametrize("month", BAD_MONTHS)
def test_a_cost_page_says_next_to_the_month_field_which_months_it_shows(
    client_for, platform_admin, cost_urls, month
):
    admin = client_for(platform_admin)
    this_month = timezone.localdate().replace(day=1)
    for name, url in cost_urls.items():
        response = admin.get(url, {"month": month})

        assert response.status_code == 400, name
        page = response.content.decode()
        assert 'aria-describedby="month-error"' in page, name
        assert 'id="month-error"' in page, name
        assert ("Choose a month from January 2000 to" in page) or ("Enter a month as year and month" in page)
        # The page itself is this month's, so the reader can go on from there.
        assert response.context["month"] == this_month, name


@pytest.mark.parametrize("month", BAD_MONTHS)
def test_a_csv_download_for_a_month_it_cannot_show_is_a_400_that_says_why(
    client_for, platform_admin, export_urls, month
):
    admin = client_for(platform_admin)
    for name, url in export_urls.items():
        response = admin.get(url, {"month": month})

        assert response.status_code == 400, name
        assert response["Content-Type"].startswith("text/plain")
        assert "month" in response.content.decode(), name


def test_a_future_month_is_refused_with_the_months_there_are(client_for, platform_admin):
    this_month = timezone.localdate().replace(day=1)
    next_month = (this_month.replace(day=28) + timedelta(days=4)).replace(day=1)

    response = client_for(platform_admin).get(reverse("reports:overview"), {"month": f"{next_month:%Y-%m}"})

    assert response.status_code == 400
    assert f"Choose a month from January 2000 to {this_month:%B %Y}." in response.content.decode()


def test_the_first_and_the_current_month_are_shown(client_for, platform_admin, marketing):
    admin = client_for(platform_admin)
    this_month = timezone.localdate().replace(day=1)
    for month in ["2000-01", f"{this_month:%Y-%m}", ""]:
        response = admin.get(reverse("reports:department", args=[marketing.slug]), {"month": month})
        assert response.status_code == 200, month
        assert 'id="month-error"' not in response.content.decode()
    first = admin.get(reverse("reports:overview"), {"month": "2000-01"})
    assert first.context["previous_month"] is None  # no link to a month it would refuse


def test_the_statement_index_passes_the_month_on_for_the_statement_to_judge(
    client_for, finance_approver, marketing
):
    reader = client_for(finance_approver)
    response = reader.get(reverse("reports:chargeback_index"), {"month": "0001-01"}, follow=True)

    assert response.status_code == 400
    assert "Choose a month from January 2000" in response.content.decode()


def test_asking_azure_for_a_month_it_cannot_show_asks_nothing_and_says_why(client_for, platform_admin):
    response = client_for(platform_admin).post(reverse("reports:reconciliation_run"), {"month": "0001-01"})

    assert response.status_code == 400
    assert "Choose a month from January 2000" in response.content.decode()
