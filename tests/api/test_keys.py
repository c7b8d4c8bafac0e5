"""A department's API keys through the API: the ladder for every operation (anonymous, another
department, a member, finance, a lead, an admin), a key shown once (a replay of its POST does not
show it again, nor keeps it), the same services and audit events as the key pages, keys for
restricted data waiting for their approval, field errors, 409s, and the list's filters, sort and
pages."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import IdempotentRequest
from approvals import services as requests
from approvals.models import DeploymentRequest
from audit.models import AuditEvent
from gateway.keys import api_key_create, api_key_reject, api_key_revoke, api_key_rotate
from gateway.models import ApiKey
from gateway.secrets import key_hash
from provisioning.models import DataClassification, ModelDeployment
from tests.api.conftest import assert_problem, bearer, token_for
from tests.api.test_openapi import _validate
from tests.factories import make_department, make_deployment

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/departments/marketing/keys"
PURPOSE = "Reads signed contracts to answer the sales team's questions about terms."


@pytest.fixture
def company_assistant(marketing, finance) -> ModelDeployment:
    central_it = make_department(name="Central IT", slug="central-it")
    return make_deployment(
        department=central_it,
        display_name="Company assistant",
        name="company-assistant",
        shared_with=[marketing, finance],
    )


@pytest.fixture
def copywriter(marketing) -> ModelDeployment:
    return make_deployment(department=marketing, display_name="Campaign writer")


@pytest.fixture
def contracts(marketing) -> ModelDeployment:
    deployment = make_deployment(department=marketing, display_name="Contract reader")
    deployment.data_classification = DataClassification.RESTRICTED
    deployment.save(update_fields=["data_classification"])
    return deployment


@pytest.fixture
def ledger(finance) -> ModelDeployment:
    return make_deployment(department=finance, display_name="Ledger analyst")


@pytest.fixture
def key(marketing, marketing_lead, company_assistant) -> ApiKey:
    made, _raw = api_key_create(
        department=marketing,
        name="Website chat widget",
        deployments=[company_assistant],
        actor=marketing_lead,
    )
    return made


@pytest.fixture
def lead(marketing_lead):
    return bearer(token_for(marketing_lead))


def new_key(company_assistant, **values):
    return {"name": "Newsletter bot", "deployments": [company_assistant.gateway_name], **values}


def post(client, url, body=None, **headers):
    return client.post(
        url, json.dumps(body if body is not None else {}), content_type="application/json", **headers
    )


def events(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb).select_related("actor").order_by("pk"))


def operations(key: ApiKey, company_assistant: ModelDeployment):
    """Every key operation on Marketing's key: (method, url, body, what a reader gets)."""
    one = f"{KEYS}/{key.pk}"
    return [
        ("get", KEYS, None, 200),
        ("get", one, None, 200),
        ("post", KEYS, new_key(company_assistant), 201),
        ("post", f"{one}/rotate", {"grace_hours": 1}, 201),
        ("delete", one, None, 200),
    ]


def call(client, method, url, body):
    if method == "post":
        return post(client, url, body)
    return getattr(client, method)(url)


# The ladder ----------------------------------------------------------------------------------------


def test_anonymous_gets_a_401(anonymous, key, company_assistant):
    for method, url, body, _status in operations(key, company_assistant):
        assert_problem(call(anonymous, method, url, body), 401)
    assert ApiKey.objects.get().status() == "active"


def test_another_departments_lead_finds_nothing(api_as, key, finance_lead, company_assistant):
    client = api_as(finance_lead)
    for method, url, body, _status in operations(key, company_assistant):
        assert_problem(call(client, method, url, body), 404)
    # Nor under their own department's address: the key is Marketing's.
    for method, url, body, _status in operations(key, company_assistant)[1:]:
        if url != KEYS:
            assert_problem(call(client, method, url.replace("/marketing/", "/finance/"), body), 404)
    assert ApiKey.objects.get().status() == "active"


def test_a_member_may_not_see_nor_manage_keys(api_as, key, marketing_member, company_assistant):
    client = api_as(marketing_member)
    for method, url, body, _status in operations(key, company_assistant):
        assert_problem(call(client, method, url, body), 403)
    assert ApiKey.objects.count() == 1


def test_finance_reads_the_keys_but_changes_nothing(api_as, key, finance_approver, company_assistant):
    client = api_as(finance_approver)
    for method, url, body, status in operations(key, company_assistant):
        response = call(client, method, url, body)
        if method == "get":
            assert response.status_code == status, response.content
        else:
            body = assert_problem(response, 403)
            assert "leads and platform admins" in body["detail"]
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.get().status() == "active"


@pytest.mark.parametrize("who", ["marketing_lead", "platform_admin"])
def test_a_lead_or_an_admin_does_each_thing(request, api_as, key, company_assistant, who):
    client = api_as(request.getfixturevalue(who))
    for method, url, body, status in operations(key, company_assistant):
        response = call(client, method, url, body)
        assert response.status_code == status, (method, url, response.content)
    assert ApiKey.objects.filter(name="Newsletter bot").exists()
    assert ApiKey.objects.get(pk=key.pk).status() == "revoked"


def test_an_unknown_key_or_a_number_beyond_any_id_is_refused(lead, key):
    assert_problem(lead.get(f"{KEYS}/{key.pk + 100}"), 404)
    assert_problem(lead.delete(f"{KEYS}/{key.pk + 100}"), 404)
    assert_problem(lead.get(f"{KEYS}/{2**63}"), 422)
    assert_problem(lead.get(f"{KEYS}/0"), 422)


# Creating --------------------------------------------------------------------------------------


def test_a_lead_creates_a_key_shown_once_through_the_service(
    lead, marketing, marketing_lead, company_assistant, copywriter
):
    response = post(
        lead,
        KEYS,
        new_key(
            company_assistant,
            deployments=[copywriter.gateway_name, company_assistant.gateway_name],
            requests_per_minute=60,
            tokens_per_minute=40_000,
            expires_in_days=30,
        ),
    )

    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["key"]
    key = ApiKey.objects.get()
    assert key.secret_hash == key_hash(raw)
    assert body["id"] == key.pk
    assert body["prefix"] == key.prefix == raw[:11]
    assert response["Location"] == f"{KEYS}/{key.pk}"
    assert body["status"] == "active"
    assert body["deployments"] == sorted([copywriter.gateway_name, company_assistant.gateway_name])
    assert (body["requests_per_minute"], body["tokens_per_minute"]) == (60, 40_000)
    assert body["created_by"] == "lead@example.com"
    assert abs(key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert body["expires_at"].endswith("Z")
    assert ApiKey.objects.usable().filter(pk=key.pk).exists()
    [event] = events("api_key.created")
    assert (event.actor, event.object_id, event.department) == (marketing_lead, str(key.pk), marketing)
    assert event.after["deployments"] == body["deployments"]
    assert event.request_id == response["X-Request-ID"]
    assert raw not in json.dumps([event.before, event.after, event.note])

    # Never again: not in the key, not in the list.
    again = lead.get(f"{KEYS}/{key.pk}")
    assert "key" not in again.json()
    assert raw not in again.content.decode()
    assert raw not in lead.get(KEYS).content.decode()


def test_a_key_with_no_limits_lasts_ninety_days(lead, company_assistant):
    body = post(lead, KEYS, new_key(company_assistant)).json()

    key = ApiKey.objects.get(pk=body["id"])
    assert abs(key.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)
    assert (body["requests_per_minute"], body["tokens_per_minute"]) == (None, None)


def test_what_the_service_refuses_comes_back_by_field(lead, key, company_assistant, ledger):
    response = post(
        lead,
        KEYS,
        new_key(company_assistant, name="website CHAT widget", deployments=[ledger.gateway_name, "nowhere"]),
    )

    body = assert_problem(response, 400)
    assert body["errors"] == {
        "name": ["Marketing already has a key named “website CHAT widget”: choose another name."],
        "deployments": [
            f"{name} is not a deployment Marketing may use: only its own deployments and the shared "
            "services granted to it, active or being provisioned."
            for name in (ledger.gateway_name, "nowhere")
        ],
    }
    wrong: list[tuple[dict[str, object], str, str]] = [
        ({"deployments": []}, "deployments", "Choose at least one deployment the key may call."),
        ({"name": "  "}, "name", "Name the key after the application that uses it."),
        ({"name": "two\nlines"}, "name", "Use one line of text"),
    ]
    for values, field, message in wrong:
        errors = assert_problem(post(lead, KEYS, new_key(company_assistant, **values)), 400)["errors"]
        assert message in errors[field][0]
    assert ApiKey.objects.count() == 1
    assert not events("api_key.created")[1:]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"tokens_per_minute": 10**12}, "tokens_per_minute"),
        ({"name": "x" * 81}, "name"),
        ({"purpose": "x" * 4001}, "purpose"),
        ({"deployments": "company-assistant"}, "deployments"),
        ({"deployments": ["x" * 64]}, "deployments.0"),
        ({"deployments": ["company-assistant"] * 101}, "deployments"),
        ({"grace_hours": 1}, "grace_hours"),
    ],
)
def test_out_of_range_or_unknown_input_is_a_422(lead, company_assistant, values, field):
    body = assert_problem(post(lead, KEYS, new_key(company_assistant, **values)), 422)

    assert any(name.endswith(field) for name in body["errors"]), body["errors"]
    assert not ApiKey.objects.exists()


def test_malformed_bodies_are_a_4xx(lead, company_assistant):
    assert_problem(lead.post(KEYS, "{not json", content_type="application/json"), 400)
    assert_problem(post(lead, KEYS, []), 422)
    assert_problem(post(lead, KEYS, {"name": "x"}), 422)
    assert not ApiKey.objects.exists()


def test_a_key_for_restricted_data_waits_for_its_approval(
    lead, marketing, platform_admin, finance_approver, contracts, django_capture_on_commit_callbacks
):
    refused = assert_problem(post(lead, KEYS, new_key(contracts, deployments=[contracts.gateway_name])), 400)
    assert "say what the application does with the data" in refused["errors"]["purpose"][0]

    with django_capture_on_commit_callbacks(execute=True):
        response = post(lead, KEYS, new_key(contracts, deployments=[contracts.gateway_name], purpose=PURPOSE))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["key"].startswith(body["prefix"])  # shown now, works later
    request = DeploymentRequest.objects.get(api_key_id=body["id"])
    assert body["approval_request"] == request.pk
    assert request.purpose == PURPOSE
    key = ApiKey.objects.get(pk=body["id"])
    assert not ApiKey.objects.usable().filter(pk=key.pk).exists()
    verbs = [event.verb for event in AuditEvent.objects.filter(department=marketing).order_by("pk")]
    assert verbs[:2] == ["api_key.created", "request.created"]
    # A waiting key is not rotated.
    assert_problem(post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 0}), 409)

    with django_capture_on_commit_callbacks(execute=True):
        requests.request_approve(request=request, actor=platform_admin)
        requests.request_approve(request=request, actor=finance_approver)

    assert lead.get(f"{KEYS}/{key.pk}").json()["status"] == "active"
    assert ApiKey.objects.usable().filter(pk=key.pk).exists()


def test_revoking_a_waiting_key_withdraws_its_approval(lead, contracts):
    body = post(lead, KEYS, new_key(contracts, deployments=[contracts.gateway_name], purpose=PURPOSE)).json()

    response = lead.delete(f"{KEYS}/{body['id']}")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "revoked"
    assert DeploymentRequest.objects.get(api_key_id=body["id"]).state == DeploymentRequest.State.CANCELLED


# Once, and only once -----------------------------------------------------------------------------


def test_a_replayed_create_makes_no_second_key_and_shows_no_secret(lead, company_assistant):
    first = post(lead, KEYS, new_key(company_assistant), HTTP_IDEMPOTENCY_KEY="newsletter-1")
    again = post(lead, KEYS, new_key(company_assistant), HTTP_IDEMPOTENCY_KEY="newsletter-1")

    assert (first.status_code, again.status_code) == (201, 201)
    raw = first.json()["key"]
    assert raw
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "key": None}
    assert again["Location"] == first["Location"]
    assert ApiKey.objects.count() == 1
    assert len(events("api_key.created")) == 1
    kept = IdempotentRequest.objects.get(key="newsletter-1")
    assert raw not in bytes(kept.body).decode()
    assert raw[11:] not in bytes(kept.body).decode()
    # Another key for another body: the same Idempotency-Key is a conflict.
    other = post(lead, KEYS, new_key(company_assistant, name="Other"), HTTP_IDEMPOTENCY_KEY="newsletter-1")
    assert_problem(other, 409)


def test_a_replayed_rotation_rotates_once_and_shows_no_secret(lead, key):
    first = post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 1}, HTTP_IDEMPOTENCY_KEY="rotate-1")
    again = post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 1}, HTTP_IDEMPOTENCY_KEY="rotate-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == {**first.json(), "key": None}
    assert ApiKey.objects.count() == 2
    assert first.json()["key"] not in bytes(IdempotentRequest.objects.get(key="rotate-1").body).decode()


def test_a_refused_create_with_a_key_is_refused_again(lead, key, company_assistant):
    body = new_key(company_assistant, name=key.name)
    first = post(lead, KEYS, body, HTTP_IDEMPOTENCY_KEY="dup")
    again = post(lead, KEYS, body, HTTP_IDEMPOTENCY_KEY="dup")

    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()


# Rotating and revoking -------------------------------------------------------------------------


def test_rotating_gives_a_new_key_once_and_the_old_works_through_its_grace(lead, marketing_lead, key):
    response = post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 24})

    assert response.status_code == 201, response.content
    body = response.json()
    successor = ApiKey.objects.get(pk=body["id"])
    assert successor.secret_hash == key_hash(body["key"])
    assert response["Location"] == f"{KEYS}/{successor.pk}"
    assert (body["name"], body["replaces"], body["status"]) == (key.name, key.pk, "active")
    assert body["deployments"] == ["company-assistant"]
    old = body["replaced"]
    assert (old["id"], old["status"], old["replaced_by"]) == (key.pk, "rotated", successor.pk)
    key.refresh_from_db()
    assert abs(key.grace_until - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert ApiKey.objects.usable().filter(pk=key.pk).exists()
    [rotated] = events("api_key.rotated")
    assert (rotated.actor, rotated.object_id) == (marketing_lead, str(key.pk))
    assert rotated.after["successor"] == successor.prefix
    assert events("api_key.created")[-1].object_id == str(successor.pk)


def test_rotating_without_grace_stops_the_old_key_and_takes_no_body_at_all(lead, key):
    response = post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 0})

    assert response.status_code == 201, response.content
    assert response.json()["replaced"]["status"] == "replaced"
    assert not ApiKey.objects.usable().filter(pk=key.pk).exists()
    # The default grace period (24 hours) when the body says nothing.
    successor = ApiKey.objects.get(pk=response.json()["id"])
    defaulted = post(lead, f"{KEYS}/{successor.pk}/rotate")
    assert defaulted.status_code == 201, defaulted.content
    successor.refresh_from_db()
    assert successor.grace_until - timezone.now() > timedelta(hours=23)


@pytest.mark.parametrize(
    "body", [{"grace_hours": 169}, {"grace_hours": -1}, {"grace": 1}, {"grace_hours": "x"}]
)
def test_a_grace_period_out_of_range_is_a_422(lead, key, body):
    assert_problem(post(lead, f"{KEYS}/{key.pk}/rotate", body), 422)
    assert ApiKey.objects.count() == 1


def test_a_revoked_or_rotated_key_is_not_rotated_again(lead, key, marketing_lead):
    api_key_rotate(key=key, grace_hours=1, actor=marketing_lead)
    body = assert_problem(post(lead, f"{KEYS}/{key.pk}/rotate"), 409)
    assert "was rotated already" in body["detail"]

    successor = ApiKey.objects.get(replaces=key)
    api_key_revoke(key=successor, actor=marketing_lead)
    body = assert_problem(post(lead, f"{KEYS}/{successor.pk}/rotate"), 409)
    assert "is revoked" in body["detail"]
    assert ApiKey.objects.count() == 2


def test_revoking_stops_the_key_and_is_recorded_once(lead, marketing_lead, key):
    response = lead.delete(f"{KEYS}/{key.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "revoked"
    assert body["revoked_at"].endswith("Z")
    assert not ApiKey.objects.usable().filter(pk=key.pk).exists()
    assert [e.actor for e in events("api_key.revoked")] == [marketing_lead]

    again = lead.delete(f"{KEYS}/{key.pk}")
    assert again.status_code == 200
    assert again.json() == body
    assert len(events("api_key.revoked")) == 1


# Listing ---------------------------------------------------------------------------------------


def test_the_list_filters_by_status_as_the_page_says_it(
    lead, marketing, marketing_lead, company_assistant, contracts, copywriter
):
    def make(name, deployments=(company_assistant,), **values):
        made, _ = api_key_create(
            department=marketing, name=name, deployments=list(deployments), actor=marketing_lead, **values
        )
        return made

    make("Active")
    pending = make("Pending", [contracts], purpose=PURPOSE)
    rotated = make("Rotated")
    api_key_rotate(key=rotated, grace_hours=5, actor=marketing_lead)  # its successor is active
    replaced = make("Replaced")
    api_key_rotate(key=replaced, grace_hours=0, actor=marketing_lead)
    api_key_revoke(key=make("Revoked"), actor=marketing_lead)
    api_key_reject(key=make("Rejected", [contracts], purpose=PURPOSE), actor=None, reason="No")
    expired = make("Expired", [copywriter])
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))

    statuses = {}
    for status in ["active", "pending", "rotated", "replaced", "revoked", "rejected", "expired"]:
        response = lead.get(KEYS, {"status": status})
        assert response.status_code == 200, response.content
        items = response.json()["items"]
        assert {item["status"] for item in items} == {status}
        statuses[status] = sorted(item["name"] for item in items)
    assert statuses == {
        "active": ["Active", "Replaced", "Rotated"],  # the successors
        "pending": ["Pending"],
        "rotated": ["Rotated"],
        "replaced": ["Replaced"],
        "revoked": ["Revoked"],
        "rejected": ["Rejected"],
        "expired": ["Expired"],
    }
    assert lead.get(KEYS, {"status": "pending"}).json()["items"][0]["id"] == pending.pk
    every = lead.get(KEYS, {"limit": 200}).json()["items"]
    assert len(every) == ApiKey.objects.count() == 9
    assert [item["id"] for item in every] == list(
        ApiKey.objects.order_by("-created_at", "-pk").values_list("pk", flat=True)
    )
    for key in ApiKey.objects.all():  # the query agrees with the status a key has
        assert ApiKey.objects.with_status(key.status()).filter(pk=key.pk).exists()
    by_deployment = lead.get(KEYS, {"deployment": copywriter.gateway_name}).json()["items"]
    assert [item["name"] for item in by_deployment] == ["Expired"]
    assert_problem(lead.get(KEYS, {"status": "lost"}), 422)
    assert_problem(lead.get(KEYS, {"deployment": "no\x00pe"}), 422)


def test_the_list_is_sorted_and_paged_with_cursors_of_its_own(
    lead, marketing, marketing_lead, company_assistant
):
    for name in ["Charlie", "Alpha", "Bravo", "Delta", "Echo"]:
        api_key_create(department=marketing, name=name, deployments=[company_assistant], actor=marketing_lead)

    seen, cursor = [], None
    while True:
        query = {"sort": "name", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = lead.get(KEYS, query).json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    newest = [item["name"] for item in lead.get(KEYS, {"sort": "-created_at"}).json()["items"]]
    assert newest == ["Echo", "Delta", "Bravo", "Alpha", "Charlie"]
    expiring = lead.get(KEYS, {"sort": "expires_at", "limit": 1}).json()
    assert expiring["items"][0]["name"] == "Charlie"
    # A cursor of one filter or order is not one of another.
    assert_problem(lead.get(KEYS, {"sort": "-name", "cursor": expiring["next_cursor"]}), 400)
    assert_problem(
        lead.get(KEYS, {"sort": "expires_at", "status": "active", "cursor": expiring["next_cursor"]}), 400
    )
    assert_problem(lead.get(KEYS, {"sort": "prefix"}), 422)


def test_the_answers_match_the_document(anonymous, lead, key, contracts, company_assistant):
    document = anonymous.get("/api/v1/openapi.json").json()
    one = "/api/v1/departments/{slug}/keys/{key_id}"
    calls = [
        (lambda: lead.get(KEYS), KEYS.replace("marketing", "{slug}"), "get"),
        (lambda: lead.get(f"{KEYS}/{key.pk}"), one, "get"),
        (lambda: lead.get(f"{KEYS}/{key.pk + 9}"), one, "get"),
        (
            lambda: post(lead, KEYS, new_key(company_assistant, name="Doc")),
            "/api/v1/departments/{slug}/keys",
            "post",
        ),
        (
            lambda: post(lead, KEYS, new_key(company_assistant, expires_in_days=0)),
            "/api/v1/departments/{slug}/keys",
            "post",
        ),
        (
            lambda: post(lead, f"{KEYS}/{key.pk}/rotate", {"grace_hours": 2}),
            "/api/v1/departments/{slug}/keys/{key_id}/rotate",
            "post",
        ),
        (
            lambda: post(lead, f"{KEYS}/{key.pk}/rotate"),
            "/api/v1/departments/{slug}/keys/{key_id}/rotate",
            "post",
        ),
        (lambda: lead.delete(f"{KEYS}/{key.pk}"), one, "delete"),
        (lambda: anonymous.delete(f"{KEYS}/{key.pk}"), one, "delete"),
    ]
    statuses = set()
    for make_call, path, method in calls:
        response = make_call()
        _validate(document, path, method, response)
        statuses.add(response.status_code)
    assert statuses == {200, 201, 401, 404, 409, 422}
