"""CSV downloads open in spreadsheets: a text cell that starts like a formula (=, +, -, @, tab,
carriage return) is written with a leading single quote, so it shows as the text it is; amounts
stay numbers, a negative one included."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_department, make_user
from tests.reports.conftest import at, meter

pytestmark = pytest.mark.django_db

FORMULA_NAMES = ['=HYPERLINK("https://example.com")', "+1+1", "-2+3", "@SUM(1)", "\tTabbed", "\rReturned"]


def rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode(), newline="")))


@pytest.fixture
def spending_less(prices, copy_assistant, marketing):
    """Marketing spent more last month than this month: its change is a negative percentage."""
    today = timezone.localdate()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=3)
    meter(copy_assistant, marketing, when=at(last_month, 9), input_tokens=900_000)
    meter(copy_assistant, marketing, when=at(today.replace(day=1), 9), input_tokens=100_000)


def test_text_that_starts_like_a_formula_is_quoted_and_numbers_stay_numbers(
    client_for, platform_admin, marketing, spending_less
):
    for name in FORMULA_NAMES:
        make_department(name=name, slug=f"d{FORMULA_NAMES.index(name)}", cost_center="-100")

    response = client_for(platform_admin).get(reverse("reports:overview_export", args=["departments"]))

    header, *lines = rows(response)
    by_name = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    for name in FORMULA_NAMES:
        assert f"'{name}" in by_name, name
        assert by_name[f"'{name}"]["Cost center"] == "'-100"
    marketing_line = by_name["Marketing"]
    assert marketing_line["vs last month"].startswith("-")  # a number, not quoted
    assert float(marketing_line["vs last month"]) < 0
    assert float(marketing_line["Spend (USD)"]) > 0


def test_a_person_whose_name_is_a_formula_is_quoted_in_the_people_table(
    client_for, platform_admin, marketing, copy_assistant, prices
):
    person = make_user(email="=cmd@example.com", department=marketing)
    meter(copy_assistant, marketing, when=timezone.now(), input_tokens=1000, user=person)

    response = client_for(platform_admin).get(
        reverse("reports:department_export", args=[marketing.slug, "users"])
    )

    cells = [cell for line in rows(response)[1:] for cell in line]
    assert "'=cmd@example.com" in cells
    assert "=cmd@example.com" not in cells
