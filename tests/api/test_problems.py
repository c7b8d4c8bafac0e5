"""Bad input and wrong addresses answer with RFC 9457 problem documents, never HTML and never a
500; lists page with signed cursors; every answer carries the rate-limit headers."""

import pytest
from django.test import Client

from tests.api.conftest import assert_problem, bearer, token_for
from tests.factories import make_department, make_user


@pytest.fixture
def lead_client(marketing_lead):
    return bearer(token_for(marketing_lead))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("cursor=" + "x" * 1001, "cursor"),
    ],
)
def test_out_of_range_and_wrong_types_are_422_with_field_errors(lead_client, query, field):
    body = assert_problem(lead_client.get(f"/api/v1/departments?{query}"), 422)

    assert list(body["errors"]) == [field]
    assert body["errors"][field][0]


@pytest.mark.parametrize("cursor", ["nonsense", "eyJsaXN0IjoiZGVwYXJ0bWVudHMifQ:forged:sig", "\x00"])
def test_a_forged_cursor_is_a_400(lead_client, cursor):
    body = assert_problem(lead_client.get("/api/v1/departments", {"cursor": cursor}), 400)
    assert "cursor" in body["errors"]


def test_a_cursor_of_one_list_does_not_work_on_another(platform_admin, db):
    sales = make_department(name="Sales")
    for number in range(3):
        make_user(email=f"p{number}@example.com", department=sales)
    client = bearer(token_for(platform_admin))
    cursor = client.get("/api/v1/departments/sales/memberships?limit=1").json()["next_cursor"]

    assert_problem(client.get("/api/v1/departments", {"cursor": cursor}), 400)


def test_pages_walk_the_whole_list_once_in_a_stable_order(platform_admin, db):
    slugs = sorted(make_department(name=f"Unit {n:02d}").slug for n in range(7))
    client = bearer(token_for(platform_admin))

    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/departments", params).json()
        seen += [d["slug"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert "unit" not in cursor  # opaque: the position is not readable as plain text

    assert seen == slugs


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing", "/api/v1/departments/", "/api/v2/me", "/api/", "/api/v1/departments/a/b/c"],
)
def test_unknown_addresses_are_404_problems(lead_client, path):
    response = lead_client.get(path)
    assert_problem(response, 404)


def test_an_unknown_address_is_a_problem_for_anonymous_posts_too(db):
    assert_problem(Client(enforce_csrf_checks=True).post("/api/v1/nothing", {}), 404)


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api/v1/me"), ("put", "/api/v1/departments/marketing")]
)
def test_a_method_an_address_does_not_take_is_a_405_problem(lead_client, method, path):
    response = getattr(lead_client, method)(path)

    body = assert_problem(response, 405)
    assert "GET" in response["Allow"]
    assert method.upper() in body["detail"]


def test_a_non_numeric_id_is_a_problem(lead_client):
    response = lead_client.delete("/api/v1/me/tokens/abc")
    assert response.status_code in (404, 422)
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "header",
    [
        "Basic bGVhZDpwdw==",
        "Bearer",
        "Bearer ",
        "Token sy-pat-x",
        "Bearer not.a.jwt",
        "Bearer a.b",
        "Bearer \x01",
    ],
)
def test_malformed_credentials_are_401_problems(db, emulator, entra_keys, header):
    response = Client(headers={"Authorization": header}).get("/api/v1/me")
    assert_problem(response, 401)


def test_an_applications_own_entra_token_is_refused(emulator, entra_keys, marketing):
    from tests.gateway.entra_tokens import register_principal

    workload = register_principal(emulator, department=marketing, name="Reporter")

    body = assert_problem(bearer(workload.token()).get("/api/v1/me"), 403)

    assert "acts as a person" in body["detail"]


def test_an_entra_token_of_someone_who_never_signed_in_is_refused(emulator, entra_keys, marketing_lead):
    from allauth.socialaccount.models import SocialAccount

    from tests.gateway.entra_tokens import person_token

    token = person_token(emulator, marketing_lead)
    SocialAccount.objects.filter(user=marketing_lead).delete()

    body = assert_problem(bearer(token).get("/api/v1/me"), 403)
    assert "has not signed in" in body["detail"]


def test_a_deactivated_person_is_refused_with_an_entra_token(emulator, entra_keys, marketing_lead):
    from tests.gateway.entra_tokens import person_token

    token = person_token(emulator, marketing_lead)
    marketing_lead.is_active = False
    marketing_lead.save(update_fields=["is_active"])

    assert_problem(bearer(token).get("/api/v1/me"), 403)


def test_a_deactivated_persons_session_no_longer_opens_the_api(marketing_lead):
    client = Client()
    client.force_login(marketing_lead)
    marketing_lead.is_active = False
    marketing_lead.save(update_fields=["is_active"])

    assert_problem(client.get("/api/v1/me"), 401)


# Rate limits --------------------------------------------------------------------------------------


def test_every_answer_says_where_the_caller_stands(lead_client, settings):
    settings.API_REQUESTS_PER_MINUTE = 50

    response = lead_client.get("/api/v1/me")

    assert response["RateLimit-Policy"] == '"per-token";q=50;w=60'
    assert "no-store" in response["Cache-Control"]
    assert response["RateLimit"].startswith('"per-token";r=49;t=')


def test_over_the_limit_is_a_429_with_retry_after(marketing_lead, settings, monkeypatch):
    settings.API_REQUESTS_PER_MINUTE = 3
    # One fixed moment, so the test never straddles two windows.
    monkeypatch.setattr("api.auth.time.time", lambda: 1_800_000_010.0)
    first, second = bearer(token_for(marketing_lead, name="A")), bearer(token_for(marketing_lead, name="B"))

    answers = [first.get("/api/v1/me") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    body = assert_problem(answers[-1], 429)
    assert "3 a minute" in body["detail"]
    assert answers[-1]["Retry-After"] == "50"
    assert answers[-1]["RateLimit"] == '"per-token";r=0;t=50'
    # Per token: another token of the same person has its own count.
    assert second.get("/api/v1/me").status_code == 200


def test_a_body_over_the_limit_is_a_413_problem(lead_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = lead_client.post("/api/v1/me", {"name": "x" * 5000})

    body = assert_problem(response, 413)
    assert "too much" in body["detail"]


@pytest.mark.parametrize("slug", ["%00", "a%0Ab", "x" * 61, "%C3%A9t%C3%A9", "<script>"])
def test_a_slug_that_names_no_department_is_a_4xx_problem(platform_admin, slug):
    client = bearer(token_for(platform_admin))
    for path in (f"/api/v1/departments/{slug}", f"/api/v1/departments/{slug}/memberships"):
        response = client.get(path)
        assert response.status_code in (404, 422), response.content
        assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("token_id", ["0", "-1", "99999999999999999999", "1.5", "%00"])
def test_a_token_id_out_of_range_is_a_4xx_problem(lead_client, token_id):
    response = lead_client.delete(f"/api/v1/me/tokens/{token_id}")
    assert response.status_code in (404, 422), response.content
    assert response["Content-Type"] == "application/problem+json"


def test_a_form_posted_with_the_session_and_its_csrf_token_is_refused_not_a_500(marketing_lead, db):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(marketing_lead)
    browser.get("/profile/tokens/")  # the page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value

    response = browser.post(
        "/api/v1/departments/marketing/keys", {"csrfmiddlewaretoken": token, "name": "Form bot"}
    )

    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"] == "application/problem+json"


def test_an_empty_cursor_is_a_422_not_the_first_page(lead_client):
    body = assert_problem(lead_client.get("/api/v1/departments", {"cursor": ""}), 422)
    assert list(body["errors"]) == ["cursor"]
