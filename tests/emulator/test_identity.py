"""The emulator as Entra ID's token service: discovery, the published keys, the token endpoint's
grants and errors in Entra's shapes, the registry and key rotation on /_emulator/identity."""

import base64
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from provisioning.emulator.app import build_app
from provisioning.emulator.identity_registry import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_OBJECT_ID,
    DEMO_CLIENT_SECRET,
    PORTAL_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    SWITCHYARD_APP_ID,
)
from tests.servers import ThreadedServer

TENANT = "0d5e4f3a-2b1c-4d0e-9f8a-7b6c5d4e3f2a"
SCOPE = "api://switchyard/.default"


def client_credentials(**changes: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "scope": SCOPE,
        **changes,
    }


def post_token(url: str, form: dict[str, str], *, tenant: str = TENANT, **kwargs) -> requests.Response:
    return requests.post(f"{url}/{tenant}/oauth2/v2.0/token", data=form, timeout=10, **kwargs)


def key_set(url: str, tenant: str = TENANT) -> dict[str, Any]:
    response = requests.get(f"{url}/{tenant}/discovery/v2.0/keys", timeout=10)
    assert response.status_code == 200
    key_set: dict[str, Any] = response.json()
    return key_set


def verified(url: str, token: str, audience: str = SWITCHYARD_APP_ID) -> dict[str, Any]:
    keys = {key["kid"]: jwt.PyJWK(key) for key in key_set(url)["keys"]}
    return jwt.decode(
        token, keys[jwt.get_unverified_header(token)["kid"]], algorithms=["RS256"], audience=audience
    )


def aad_error(response: requests.Response) -> tuple[int, str, int]:
    body = response.json()
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    return response.status_code, body["error"], body["error_codes"][0]


class TestDiscovery:
    def test_the_openid_configuration_points_at_the_tenants_endpoints(self, emulator):
        response = requests.get(f"{emulator.url}/{TENANT}/v2.0/.well-known/openid-configuration", timeout=10)

        assert response.status_code == 200
        configuration = response.json()
        assert configuration["issuer"] == f"{emulator.url}/{TENANT}/v2.0"
        assert configuration["jwks_uri"] == f"{emulator.url}/{TENANT}/discovery/v2.0/keys"
        assert configuration["token_endpoint"] == f"{emulator.url}/{TENANT}/oauth2/v2.0/token"
        assert configuration["id_token_signing_alg_values_supported"] == ["RS256"]

    def test_a_tenant_that_is_not_an_id_is_not_found(self, emulator):
        response = requests.get(f"{emulator.url}/contoso/v2.0/.well-known/openid-configuration", timeout=10)

        assert aad_error(response) == (400, "invalid_tenant", 90002)

    def test_each_published_key_is_an_rsa_signing_key_with_its_certificate(self, emulator):
        keys = key_set(emulator.url)["keys"]

        assert keys
        for key in keys:
            assert (key["kty"], key["use"], key["e"]) == ("RSA", "sig", "AQAB")
            assert key["kid"] == key["x5t"]
            assert key["issuer"] == f"{emulator.url}/{{tenantid}}/v2.0"
            certificate = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
            thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1()))  # noqa: S303
            assert key["kid"] == thumbprint.rstrip(b"=").decode()
            public_key = certificate.public_key()
            assert isinstance(public_key, rsa.RSAPublicKey)
            assert jwt.PyJWK(key).key.public_numbers() == public_key.public_numbers()

    def test_the_v1_key_set_lists_the_same_keys(self, emulator):
        v1 = requests.get(f"{emulator.url}/{TENANT}/discovery/keys", timeout=10).json()

        assert [key["kid"] for key in v1["keys"]] == [key["kid"] for key in key_set(emulator.url)["keys"]]


class TestClientCredentials:
    def test_the_demo_workload_gets_a_signed_token_for_switchyard(self, emulator):
        response = post_token(emulator.url, client_credentials())

        assert response.status_code == 200
        body = response.json()
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 3599)
        assert response.headers["cache-control"] == "no-store, no-cache"
        claims = verified(emulator.url, body["access_token"])
        assert claims["iss"] == f"{emulator.url}/{TENANT}/v2.0"
        assert claims["tid"] == TENANT
        assert claims["oid"] == claims["sub"] == DEMO_CLIENT_OBJECT_ID
        assert claims["azp"] == DEMO_CLIENT_ID
        assert claims["idtyp"] == "app"
        assert claims["exp"] - claims["iat"] == 3600 + 300  # backdated five minutes, as Entra does

    def test_the_client_may_authenticate_with_http_basic(self, emulator):
        form = client_credentials()
        del form["client_id"], form["client_secret"]

        response = post_token(emulator.url, form, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))

        assert response.status_code == 200

    def test_a_microsoft_api_gets_a_v1_token_naming_the_resource(self, emulator):
        response = post_token(
            emulator.url, client_credentials(scope="https://cognitiveservices.azure.com/.default")
        )

        token = response.json()["access_token"]
        assert jwt.get_unverified_header(token)["x5t"] == jwt.get_unverified_header(token)["kid"]
        claims = verified(emulator.url, token, audience="https://cognitiveservices.azure.com")
        assert (claims["ver"], claims["iss"], claims["appid"]) == (
            "1.0",
            f"{emulator.url}/{TENANT}/",
            DEMO_CLIENT_ID,
        )

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"client_secret": "wrong"}, (401, "invalid_client", 7000215)),
            ({"client_secret": ""}, (401, "invalid_client", 7000218)),
            ({"client_id": "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"}, (400, "unauthorized_client", 700016)),
            ({"scope": ""}, (400, "invalid_request", 900144)),
            ({"scope": "api://switchyard/user_impersonation"}, (400, "invalid_scope", 1002012)),
            ({"scope": "api://nobody-registered/.default"}, (400, "invalid_resource", 500011)),
            ({"scope": f"{SCOPE} https://management.azure.com/.default"}, (400, "invalid_scope", 70011)),
            ({"grant_type": "refresh_token"}, (400, "unsupported_grant_type", 70003)),
            ({"grant_type": ""}, (400, "invalid_request", 900144)),
        ],
    )
    def test_bad_requests_get_entras_errors(self, emulator, changes, expected):
        assert aad_error(post_token(emulator.url, client_credentials(**changes))) == expected

    def test_a_public_client_cannot_use_the_client_credentials_grant(self, emulator):
        form = client_credentials(client_id=PUBLIC_CLIENT_ID)
        del form["client_secret"]

        assert aad_error(post_token(emulator.url, form)) == (401, "invalid_client", 7000218)

    def test_the_api_may_be_named_by_its_application_id(self, emulator):
        response = post_token(emulator.url, client_credentials(scope=f"{SWITCHYARD_APP_ID}/.default"))

        assert verified(emulator.url, response.json()["access_token"])["aud"] == SWITCHYARD_APP_ID

    def test_an_injected_fault_makes_the_token_service_unavailable(self, emulator):
        emulator.inject(operation="identity.token", kind="503", count=1)

        assert aad_error(post_token(emulator.url, client_credentials())) == (
            503,
            "temporarily_unavailable",
            90033,
        )
        assert post_token(emulator.url, client_credentials()).status_code == 200


class TestPasswordGrant:
    @pytest.fixture
    def mark(self, emulator):
        response = requests.put(
            f"{emulator.control_url}/identity/users/Mark@example.com",
            json={"password": "pw-1", "objectId": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d", "name": "Mark M"},
            timeout=10,
        )
        assert response.status_code == 200
        return response.json()

    def password_form(self, **changes: str) -> dict[str, str]:
        return {
            "grant_type": "password",
            "client_id": PUBLIC_CLIENT_ID,
            "username": "mark@example.com",
            "password": "pw-1",
            "scope": "openid profile api://switchyard/user_impersonation",
            **changes,
        }

    def test_a_person_gets_a_delegated_token(self, emulator, mark):
        response = post_token(emulator.url, self.password_form())

        assert response.status_code == 200
        assert response.json()["scope"] == "api://switchyard/user_impersonation"
        claims = verified(emulator.url, response.json()["access_token"])
        assert claims["oid"] == mark["objectId"]
        assert claims["sub"] != claims["oid"]  # a person's subject is pairwise, per application
        assert (claims["scp"], claims["idtyp"], claims["name"]) == ("user_impersonation", "user", "Mark M")
        assert claims["preferred_username"] == "mark@example.com"
        assert (claims["azp"], claims["azpacr"]) == (PUBLIC_CLIENT_ID, "0")

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"password": "wrong"}, (400, "invalid_grant", 50126)),
            ({"username": "nobody@example.com"}, (400, "invalid_grant", 50126)),
            ({"scope": "api://switchyard/Files.ReadWrite"}, (400, "invalid_scope", 70011)),
            ({"client_secret": "anything"}, (401, "invalid_client", 700025)),
        ],
    )
    def test_bad_sign_ins_are_refused(self, emulator, mark, changes, expected):
        assert aad_error(post_token(emulator.url, self.password_form(**changes))) == expected


class TestRegistryAndKeys:
    def test_a_registered_client_gets_tokens_for_its_service_principal(self, emulator):
        client_id, object_id = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "2d3e4f5a-6b7c-4d8e-9fa0-1b2c3d4e5f6a"
        response = requests.put(
            f"{emulator.control_url}/identity/clients/{client_id}",
            json={"displayName": "Billing job", "secret": "s-1", "objectId": object_id},
            timeout=10,
        )
        assert response.status_code == 200

        token = post_token(emulator.url, client_credentials(client_id=client_id, client_secret="s-1"))

        assert verified(emulator.url, token.json()["access_token"])["oid"] == object_id
        listed = requests.get(f"{emulator.control_url}/identity", timeout=10).json()["clients"][client_id]
        assert listed == {"displayName": "Billing job", "objectId": object_id, "public": False}

    @pytest.mark.parametrize(
        ("body", "says"),
        [
            ({"secret": "s", "objectId": "not-a-guid"}, "objectId is a GUID"),
            ({"secret": "", "objectId": DEMO_CLIENT_OBJECT_ID}, "secret is a non-empty string"),
            ({"secret": "s", "objectId": DEMO_CLIENT_OBJECT_ID, "roles": []}, "unknown fields ['roles']"),
        ],
    )
    def test_a_bad_registration_says_what_is_wrong(self, emulator, body, says):
        response = requests.put(
            f"{emulator.control_url}/identity/clients/{DEMO_CLIENT_ID}", json=body, timeout=10
        )

        assert response.status_code == 400
        assert says in response.json()["error"]["message"]

    def test_rotation_publishes_the_new_key_beside_the_previous_one(self, emulator):
        old = post_token(emulator.url, client_credentials()).json()["access_token"]
        first = requests.post(f"{emulator.control_url}/identity/rotate-key", timeout=10).json()
        second = requests.post(f"{emulator.control_url}/identity/rotate-key", timeout=10).json()

        new = post_token(emulator.url, client_credentials()).json()["access_token"]

        assert jwt.get_unverified_header(new)["kid"] == second["kid"]
        assert [key["kid"] for key in key_set(emulator.url)["keys"]] == [second["kid"], first["kid"]]
        assert second["published"] == [second["kid"], first["kid"]]
        assert verified(emulator.url, new)["oid"] == DEMO_CLIENT_OBJECT_ID
        with pytest.raises(KeyError):  # two rotations later the first key is gone
            verified(emulator.url, old)

    def test_a_reset_keeps_the_keys_but_forgets_registrations(self, emulator):
        kids = [key["kid"] for key in key_set(emulator.url)["keys"]]
        requests.put(
            f"{emulator.control_url}/identity/clients/1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            json={"secret": "s-1", "objectId": DEMO_CLIENT_OBJECT_ID},
            timeout=10,
        )

        emulator.reset()

        assert [key["kid"] for key in key_set(emulator.url)["keys"]] == kids
        clients = requests.get(f"{emulator.control_url}/identity", timeout=10).json()["clients"]
        assert set(clients) == {DEMO_CLIENT_ID, PUBLIC_CLIENT_ID, PORTAL_CLIENT_ID}

    def test_keys_survive_a_restart(self, tmp_path):
        state = tmp_path / "state.json"
        with ThreadedServer(build_app(state_path=state)) as first:
            token = post_token(first.url, client_credentials()).json()["access_token"]
            kids = [key["kid"] for key in key_set(first.url)["keys"]]

        with ThreadedServer(build_app(state_path=state)) as second:
            assert [key["kid"] for key in key_set(second.url)["keys"]] == kids
            keys = {key["kid"]: jwt.PyJWK(key) for key in key_set(second.url)["keys"]}
            claims = jwt.decode(
                token,
                keys[jwt.get_unverified_header(token)["kid"]],
                algorithms=["RS256"],
                audience=SWITCHYARD_APP_ID,
                options={"verify_iss": False},
            )
            assert claims["oid"] == DEMO_CLIENT_OBJECT_ID
