"""Idempotency-Key as every POST takes it (api/idempotency.py), beyond what one operation's tests
show: a key is its caller's own, a first request still under way is a 409 to its twin, a key
that is not a key is a 400, an answer about who asked or how often is not kept, and keys are
forgotten after API_IDEMPOTENCY_HOURS."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from api.idempotency import idempotency_forget
from api.models import IdempotentRequest
from gateway.models import ApiKey
from org.models import Membership
from tests.api.conftest import assert_problem, bearer, token_for
from tests.factories import make_deployment, make_user

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/departments/marketing/keys"


@pytest.fixture
def copywriter(marketing):
    return make_deployment(department=marketing, display_name="Campaign writer")


def create_key(client, copywriter, key: str | None, name: str = "Newsletter bot"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    body = {"name": name, "deployments": [copywriter.gateway_name]}
    return client.post(KEYS, json.dumps(body), content_type="application/json", **headers)


def test_without_a_key_each_post_is_a_request_of_its_own(marketing_lead, copywriter):
    lead = bearer(token_for(marketing_lead))

    assert create_key(lead, copywriter, None).status_code == 201
    assert (
        "already has a key named"
        in assert_problem(create_key(lead, copywriter, None), 400)["errors"]["name"][0]
    )
    assert ApiKey.objects.count() == 1


def test_a_key_is_its_callers_own(marketing, marketing_lead, copywriter):
    other_lead = make_user(email="lou@example.com", department=marketing, role=Membership.Role.LEAD)

    first = create_key(bearer(token_for(marketing_lead)), copywriter, "nightly-1", name="Lena's bot")
    second = create_key(bearer(token_for(other_lead)), copywriter, "nightly-1", name="Lou's bot")

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second
    assert set(ApiKey.objects.values_list("name", flat=True)) == {"Lena's bot", "Lou's bot"}


def test_the_same_person_with_the_session_replays_their_own_answer(client, marketing_lead, copywriter):
    client.force_login(marketing_lead)  # Django's test client passes the CSRF check

    first = create_key(client, copywriter, "from-the-browser")
    again = create_key(client, copywriter, "from-the-browser")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert ApiKey.objects.count() == 1


def test_a_twin_of_a_request_still_under_way_is_a_409_to_retry(marketing_lead, copywriter):
    lead = bearer(token_for(marketing_lead))
    first = create_key(lead, copywriter, "slow-1")
    # As if the first were still being answered in another process: its answer not kept yet.
    IdempotentRequest.objects.filter(key="slow-1").update(status=None)

    twin = create_key(lead, copywriter, "slow-1")

    body = assert_problem(twin, 409)
    assert "still being answered" in body["detail"]
    assert twin["Retry-After"] == "1"
    assert first.status_code == 201
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_a_key_that_is_not_one_is_a_400(marketing_lead, copywriter, key):
    body = assert_problem(create_key(bearer(token_for(marketing_lead)), copywriter, key), 400)

    assert body["errors"] == {"Idempotency-Key": ["1 to 255 characters."]}
    assert ApiKey.objects.count() == 0


def test_an_answer_about_how_often_is_not_kept_so_the_retry_is_a_first_try(
    marketing_lead, copywriter, settings
):
    lead = bearer(token_for(marketing_lead))
    settings.API_REQUESTS_PER_MINUTE = 1
    assert lead.get("/api/v1/me").status_code == 200
    assert_problem(create_key(lead, copywriter, "after-the-limit"), 429)
    assert not IdempotentRequest.objects.filter(key="after-the-limit").exists()

    settings.API_REQUESTS_PER_MINUTE = 100
    retry = create_key(lead, copywriter, "after-the-limit")

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry


def test_keys_are_forgotten_after_the_hours_they_are_kept(marketing_lead, copywriter, settings):
    lead = bearer(token_for(marketing_lead))
    create_key(lead, copywriter, "yesterday", name="Old bot")
    IdempotentRequest.objects.update(
        created_at=timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS, minutes=1)
    )

    # Sent again after the horizon, the key starts afresh: a new request, not a replay.
    again = create_key(lead, copywriter, "yesterday", name="New bot")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again

    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert idempotency_forget() == 1
    assert not IdempotentRequest.objects.exists()
