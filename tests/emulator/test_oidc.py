"""The emulator as Entra ID's sign-in: the authorize page, the authorization code grant with PKCE,
and the ID token (groups or their overage) signed with the same keys as every other token."""

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from provisioning.emulator.identity_registry import (
    DEMO_PEOPLE_PASSWORD,
    GRAPH_APP_ID_URI,
    GROUP_HR_MEMBERS,
    GROUP_MARKETING_MEMBERS,
    PORTAL_CALLBACK_PATH,
    PORTAL_CLIENT_ID,
    PORTAL_CLIENT_SECRET,
)
from tests.emulator.test_identity import TENANT, aad_error, client_credentials, key_set, post_token

NINA_OID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
REDIRECT_URI = f"http://127.0.0.1:8000{PORTAL_CALLBACK_PATH}"
SCOPE = "openid profile email User.Read GroupMember.Read.All"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_params(challenge: str, **changes: str) -> dict[str, str]:
    return {
        "client_id": PORTAL_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": SCOPE,
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **changes,
    }


def authorize_url(url: str) -> str:
    return f"{url}/{TENANT}/oauth2/v2.0/authorize"


def sign_in(url: str, params: dict[str, str], *, username="nina@example.com", password=DEMO_PEOPLE_PASSWORD):
    return requests.post(
        authorize_url(url),
        data={**params, "username": username, "password": password},
        allow_redirects=False,
        timeout=10,
    )


def code_from(response: requests.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    answer = parse_qs(location.query)
    assert answer["state"] == ["state-123"]
    return answer["code"][0]


def redeem(url: str, issued_code: str, verifier: str, **changes: str) -> requests.Response:
    return post_token(
        url,
        {
            "grant_type": "authorization_code",
            "client_id": PORTAL_CLIENT_ID,
            "client_secret": PORTAL_CLIENT_SECRET,
            "code": issued_code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            **changes,
        },
    )


def verified(url: str, token: str, audience: str) -> dict[str, Any]:
    keys = {key["kid"]: jwt.PyJWK(key) for key in key_set(url)["keys"]}
    return jwt.decode(
        token, keys[jwt.get_unverified_header(token)["kid"]], algorithms=["RS256"], audience=audience
    )


@pytest.fixture
def pkce():
    return pkce_pair()


def test_discovery_names_the_authorize_endpoint_and_pkce(emulator):
    configuration = requests.get(
        f"{emulator.url}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=10
    ).json()

    assert configuration["authorization_endpoint"] == authorize_url(emulator.url)
    assert "S256" in configuration["code_challenge_methods_supported"]


def test_the_sign_in_page_lists_the_tenants_people(emulator, pkce):
    response = requests.get(authorize_url(emulator.url), params=authorize_params(pkce[1]), timeout=10)

    assert response.status_code == 200
    page = response.text
    assert "to continue to <strong>Switchyard</strong>" in page
    for person in ("Nina Novak", "nina@example.com", "Leo Lambert", "Omar Okafor"):
        assert person in page
    assert 'name="password"' in page


def test_a_person_signs_in_and_the_portal_gets_a_signed_id_token_with_their_groups(emulator, pkce):
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))

    response = redeem(emulator.url, code, verifier)

    assert response.status_code == 200, response.text
    body = response.json()
    id_token = verified(emulator.url, body["id_token"], audience=PORTAL_CLIENT_ID)
    assert id_token["iss"] == f"{emulator.url}/{TENANT}/v2.0"
    assert (id_token["tid"], id_token["oid"], id_token["ver"]) == (TENANT, NINA_OID, "2.0")
    assert id_token["nonce"] == "nonce-456"
    assert id_token["sub"] != NINA_OID  # pairwise: per application
    assert (id_token["name"], id_token["preferred_username"], id_token["email"]) == (
        "Nina Novak",
        "nina@example.com",
        "nina@example.com",
    )
    assert (id_token["given_name"], id_token["family_name"]) == ("Nina", "Novak")
    assert set(id_token["groups"]) == {GROUP_MARKETING_MEMBERS, GROUP_HR_MEMBERS}
    assert id_token["nbf"] <= id_token["iat"] < id_token["exp"]
    # The access token is Microsoft Graph's, for reading groups on an overage.
    access = verified(emulator.url, body["access_token"], audience=GRAPH_APP_ID_URI)
    assert access["oid"] == NINA_OID
    assert set(access["scp"].split()) >= {"User.Read", "GroupMember.Read.All"}


def test_id_tokens_are_signed_with_the_key_that_signs_every_other_token(emulator, pkce):
    verifier, challenge = pkce
    body = redeem(
        emulator.url, code_from(sign_in(emulator.url, authorize_params(challenge))), verifier
    ).json()
    workload = post_token(emulator.url, client_credentials()).json()

    assert (
        jwt.get_unverified_header(body["id_token"])["kid"]
        == (jwt.get_unverified_header(workload["access_token"])["kid"])
    )


def test_a_loopback_redirect_uri_matches_on_any_port(emulator, pkce):
    params = authorize_params(pkce[1], redirect_uri=f"http://localhost:51234{PORTAL_CALLBACK_PATH}")

    response = sign_in(emulator.url, params)

    assert response.headers["location"].startswith(f"http://localhost:51234{PORTAL_CALLBACK_PATH}?code=")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        f"https://attacker.example.com{PORTAL_CALLBACK_PATH}",
        "http://127.0.0.1:8000/somewhere-else/",
        '"><script>alert(1)</script>',
    ],
)
def test_an_unregistered_redirect_uri_is_shown_on_the_page_never_followed(emulator, pkce, redirect_uri):
    params = authorize_params(pkce[1], redirect_uri=redirect_uri)

    shown = requests.get(authorize_url(emulator.url), params=params, timeout=10, allow_redirects=False)
    posted = sign_in(emulator.url, params)

    for response in (shown, posted):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "AADSTS50011" in response.text
        assert "<script>alert(1)</script>" not in response.text


def test_an_unknown_client_is_shown_on_the_page(emulator, pkce):
    params = authorize_params(pkce[1], client_id="11111111-2222-4333-8444-555555555555")

    response = requests.get(authorize_url(emulator.url), params=params, timeout=10, allow_redirects=False)

    assert response.status_code == 400
    assert "AADSTS700016" in response.text


def test_a_wrong_password_stays_on_the_page_with_entras_message(emulator, pkce):
    response = sign_in(emulator.url, authorize_params(pkce[1]), password="not-it")

    assert response.status_code == 200
    assert "Your account or password is incorrect." in response.text
    assert re.search(r'value="nina@example.com" checked', response.text)


def test_other_errors_go_back_to_the_client_with_the_state(emulator, pkce):
    response = requests.get(
        authorize_url(emulator.url),
        params=authorize_params(pkce[1], response_type="token"),
        timeout=10,
        allow_redirects=False,
    )

    assert response.status_code == 302
    answer = parse_qs(urlsplit(response.headers["location"]).query)
    assert answer["error"] == ["unsupported_response_type"]
    assert answer["error_description"][0].startswith("AADSTS700054: ")
    assert answer["state"] == ["state-123"]


def test_cancelling_tells_the_client_access_was_denied(emulator, pkce):
    response = requests.post(
        authorize_url(emulator.url),
        data={**authorize_params(pkce[1]), "cancel": "1"},
        allow_redirects=False,
        timeout=10,
    )

    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["access_denied"]


def test_form_post_answers_with_a_page_that_posts_the_code_back(emulator, pkce):
    response = sign_in(emulator.url, authorize_params(pkce[1], response_mode="form_post"))

    assert response.status_code == 200
    assert f'action="{REDIRECT_URI}"' in response.text
    assert 'name="code"' in response.text
    assert 'name="state" value="state-123"' in response.text


def test_a_code_works_once(emulator, pkce):
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))
    assert redeem(emulator.url, code, verifier).status_code == 200

    assert aad_error(redeem(emulator.url, code, verifier)) == (400, "invalid_grant", 54005)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"code_verifier": "a-different-verifier-of-enough-length-0123456789abcdef"},
            (400, "invalid_grant", 50148),
        ),
        ({"code_verifier": ""}, (400, "invalid_grant", 50148)),
        ({"redirect_uri": f"http://localhost:8000{PORTAL_CALLBACK_PATH}"}, (400, "invalid_grant", 500112)),
        ({"client_secret": "wrong"}, (401, "invalid_client", 7000215)),
        ({"client_secret": ""}, (401, "invalid_client", 7000218)),
        ({"code": "made-up"}, (400, "invalid_grant", 9002313)),
    ],
)
def test_a_redemption_that_does_not_match_the_request_is_refused(emulator, pkce, changes, expected):
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))

    assert aad_error(redeem(emulator.url, code, verifier, **changes)) == expected


def test_a_code_left_too_long_has_expired(emulator, pkce):
    emulator.configure(authorization_code_seconds=0)
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))

    assert aad_error(redeem(emulator.url, code, verifier)) == (400, "invalid_grant", 70008)


def test_more_groups_than_fit_give_the_overage_claim(emulator, pkce):
    emulator.configure(groups_claim_limit=1)
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))

    id_token = verified(
        emulator.url, redeem(emulator.url, code, verifier).json()["id_token"], PORTAL_CLIENT_ID
    )

    assert "groups" not in id_token
    assert id_token["_claim_names"] == {"groups": "src1"}
    assert id_token["_claim_sources"]["src1"]["endpoint"].endswith(f"/users/{NINA_OID}/getMemberObjects")


def test_a_silent_request_is_told_to_sign_in(emulator, pkce):
    response = requests.get(
        authorize_url(emulator.url),
        params=authorize_params(pkce[1], prompt="none"),
        timeout=10,
        allow_redirects=False,
    )

    answer = parse_qs(urlsplit(response.headers["location"]).query)
    assert answer["error"] == ["login_required"]


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/contoso/oauth2/v2.0/authorize", {}, "AADSTS90002"),
        (f"/{TENANT}/oauth2/v2.0/authorize", {}, "AADSTS900144"),
        (f"/{TENANT}/oauth2/v2.0/authorize", {"client_id": "' OR 1=1 --"}, "AADSTS700016"),
        (f"/{TENANT}/oauth2/v2.0/authorize", {"client_id": PORTAL_CLIENT_ID}, "AADSTS900144"),
        (
            f"/{TENANT}/oauth2/v2.0/authorize",
            {"client_id": PORTAL_CLIENT_ID, "redirect_uri": "javascript:alert(1)"},
            "AADSTS50011",
        ),
    ],
)
def test_hostile_authorize_requests_get_a_page_with_entras_error(emulator, path, params, expected):
    for response in (
        requests.get(f"{emulator.url}{path}", params=params, timeout=10, allow_redirects=False),
        requests.post(f"{emulator.url}{path}", data=params, timeout=10, allow_redirects=False),
    ):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert expected in response.text


def test_a_body_that_is_not_text_gets_a_page_not_a_crash(emulator):
    response = requests.post(
        authorize_url(emulator.url),
        data=b"\xff\xfe\x00client_id=\x80",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )

    assert response.status_code == 400
    assert "AADSTS900144" in response.text


def test_hostile_values_are_written_into_the_pages_escaped(emulator, pkce):
    hostile = '"><img src=x onerror=alert(1)>'
    params = authorize_params(pkce[1], state=hostile, response_mode="form_post", login_hint=hostile)

    page = requests.get(authorize_url(emulator.url), params=params, timeout=10).text
    posted = sign_in(emulator.url, params).text

    for html in (page, posted):
        assert hostile not in html
        assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_disabled_account_cannot_sign_in_nor_redeem_a_code_it_got_before(emulator, pkce):
    verifier, challenge = pkce
    code = code_from(sign_in(emulator.url, authorize_params(challenge)))
    emulator.store.world.identity["users"]["nina@example.com"]["accountEnabled"] = False

    refused = sign_in(emulator.url, authorize_params(challenge))

    assert refused.status_code == 200
    assert "Your account has been locked" in refused.text
    assert aad_error(redeem(emulator.url, code, verifier)) == (400, "invalid_grant", 50057)
