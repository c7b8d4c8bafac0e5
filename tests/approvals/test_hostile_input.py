"""Input that once crashed the request pages: every field and parameter of the approvals pages
with hostile values gets a clear 4xx or a message next to the field, never a 500, never markup
sent back unescaped, never an answer of megabytes."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from approvals.models import DeploymentRequest
from provisioning.models import ModelDeployment, Price
from tests.approvals.test_pages import NEW
from tests.factories import make_deployment, make_request

MARKUP = "<b>x</b>"
NUMBERS = ["", "abc", "-1", "0", "99999999999999999999", "1e999999", "9e999999", "NaN", "inf", "\x00", MARKUP]
TEXTS = ["", "\x00", MARKUP, "x" * 20_000]
# Each field of the form with the values worth throwing at it.
FORM_VALUES = [
    *((field, value) for field in ("capacity", "tpm_cap", "target", "expires_on") for value in NUMBERS),
    *((field, value) for field in ("input_tokens_per_month", "output_tokens_per_month") for value in NUMBERS),
    *(
        (field, value)
        for field in ("department", "region", "model_name", "model_version", "sku", "data_classification")
        for value in TEXTS
    ),
    *((field, value) for field in ("display_name", "purpose", "system_prompt", "kind") for value in TEXTS),
]
TOO_LONG = 500_000


def answers_sanely(response) -> str:
    page: str = response.content.decode()
    assert response.status_code < 500
    assert len(page) < TOO_LONG
    assert MARKUP not in page
    return page


@pytest.fixture
def lead(client_for, marketing_lead, zone, offers, policy):
    return client_for(marketing_lead)


def test_the_new_request_form_posted_blank_asks_for_each_field(lead):
    response = lead.post("/requests/new/", {"kind": "new_deployment"})

    assert response.status_code == 400
    page = answers_sanely(response)
    for field in ("display_name", "purpose", "region", "model_name", "capacity"):
        assert f'id="id_{field}_errors"' in page, field
    assert "This field is required." in page
    assert not DeploymentRequest.objects.exists()


@pytest.mark.parametrize("kind", ["new_deployment", "shared_access", "capacity_change", "decommission"])
def test_every_kind_of_form_posted_with_blank_or_non_numeric_ids_answers_400(lead, kind):
    for data in ({"kind": kind}, {"kind": kind, "department": "x", "target": "abc", "capacity": "many"}):
        assert lead.post("/requests/new/", data).status_code == 400
    assert not DeploymentRequest.objects.exists()


@pytest.mark.parametrize(("field", "value"), FORM_VALUES)
def test_a_hostile_value_in_any_field_is_refused_next_to_it_or_ignored(lead, field, value):
    for url in ("/requests/new/", "/requests/new/preview/"):
        answers_sanely(lead.post(url, {**NEW, field: value}))


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e5", "99999999999999999999", "\x00", MARKUP, "٣"])
def test_the_live_preview_with_a_request_number_that_is_not_one_is_a_404(lead, value):
    response = lead.post("/requests/new/preview/", {**NEW, "request": value})

    assert response.status_code == 404
    answers_sanely(response)


def test_a_tpm_cap_beyond_any_column_gets_a_message(lead, marketing, zone):
    shared = make_deployment(department=marketing, scope=ModelDeployment.Scope.SHARED, landing_zone=zone)
    response = lead.post(
        "/requests/new/",
        {
            "kind": "shared_access",
            "department": "marketing",
            "target": shared.pk,
            "purpose": "Everyday questions",
            "data_classification": "internal",
            "tpm_cap": "99999999999999999999",
            "action": "submit",
        },
    )

    assert response.status_code == 400
    assert "Ensure this value is less than or equal to 1000000." in response.context["form"].errors["tpm_cap"]
    assert not DeploymentRequest.objects.exists()


@pytest.mark.parametrize("tokens", ["9e999999", "1e999999", "1e12", "1000000.001"])
def test_token_volumes_beyond_the_limit_get_a_short_message_not_megabytes(lead, tokens):
    response = lead.post("/requests/new/", {**NEW, "input_tokens_per_month": tokens})

    assert response.status_code == 400
    answers_sanely(response)
    errors = response.context["form"].errors["input_tokens_per_month"]
    assert any("less than or equal to 1000000" in error or "digits" in error for error in errors), errors
    preview = lead.post("/requests/new/preview/", {**NEW, "input_tokens_per_month": tokens})
    assert len(preview.content) < 50_000


def test_a_capacity_beyond_the_limit_is_refused_even_where_the_catalog_sets_no_maximum(lead, offers):
    offers[0].capacity_maximum = None
    offers[0].save()

    response = lead.post("/requests/new/", {**NEW, "capacity": "2147483648"})

    assert response.status_code == 400
    assert "less than or equal to 1000000" in response.context["form"].errors["capacity"][0]


def test_an_estimate_too_large_to_record_is_refused_by_the_form(lead, offers):
    Price.objects.filter(model_name="gpt-4o-mini").update(input_per_million=Decimal("999999"))

    response = lead.post("/requests/new/", {**NEW, "input_tokens_per_month": "500000"})

    assert response.status_code == 400
    assert "more than Switchyard can record" in response.context["form"].errors["input_tokens_per_month"][0]


def test_the_model_refuses_amounts_beyond_its_columns(marketing, marketing_lead, zone, offers, policy):
    request = make_request(department=marketing, requester=marketing_lead, capacity=10, submit=False)
    for field, value in [
        ("capacity", 1_000_001),
        ("tpm_cap", 1_000_001),
        ("input_tokens_per_month", Decimal("1000000.001")),
        ("estimated_monthly_cost", Decimal("100000000")),
    ]:
        setattr(request, field, value)
        with pytest.raises(ValidationError) as refusal:
            request.full_clean()
        assert field in refusal.value.message_dict
        request.refresh_from_db()


@pytest.mark.parametrize("parameter", ["page", "sort", "state", "kind", "department"])
@pytest.mark.parametrize("url", ["/requests/", "/approvals/"])
def test_list_filters_sort_and_page_take_any_value(
    client_for, platform_admin, marketing, marketing_lead, zone, offers, policy, parameter, url
):
    make_request(department=marketing, requester=marketing_lead, capacity=50)
    client = client_for(platform_admin)
    for value in [*NUMBERS, "x" * 20_000]:
        response = client.get(url, {parameter: value})
        assert response.status_code == 200
        answers_sanely(response)


@pytest.mark.parametrize(
    ("comment", "message"),
    [("bad \x00 byte", "Null characters are not allowed."), ("x" * 20_000, "at most 4000 characters")],
)
def test_a_comment_that_cannot_be_saved_is_refused_and_kept_in_the_box(
    client_for, platform_admin, marketing, marketing_lead, zone, offers, policy, comment, message
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)

    response = client_for(platform_admin).post(
        f"/requests/{request.pk}/decide/", {"decision": "send_back", "comment": comment}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert DeploymentRequest.objects.get(pk=request.pk).state == DeploymentRequest.State.SUBMITTED


@pytest.mark.parametrize("decision", ["", "approve\x00", MARKUP, "x" * 20_000])
def test_an_unknown_decision_is_refused_with_a_message(
    client_for, platform_admin, marketing, marketing_lead, zone, offers, policy, decision
):
    request = make_request(department=marketing, requester=marketing_lead, capacity=50)

    response = client_for(platform_admin).post(
        f"/requests/{request.pk}/decide/", {"decision": decision, "comment": MARKUP}, follow=True
    )

    page = answers_sanely(response)
    assert "Choose approve, reject or send back." in page
    assert DeploymentRequest.objects.get(pk=request.pk).state == DeploymentRequest.State.SUBMITTED
