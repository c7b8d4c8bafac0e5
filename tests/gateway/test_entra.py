"""Entra ID tokens at the gateway: tokens come from the emulator's token endpoint over HTTP and are
checked against the key set it publishes, as against Entra ID."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from gateway.callers import CallerRefused
from gateway.entra import caller_for_token
from gateway.jwks import signing_keys
from gateway.models import ServicePrincipal
from org.models import Membership
from provisioning.azure import COGNITIVE_SERVICES_SCOPE, credential
from provisioning.emulator.identity_registry import SWITCHYARD_APP_ID, SWITCHYARD_APP_ID_URI
from tests.factories import make_deployment, make_user
from tests.gateway.entra_tokens import (
    Workload,
    person_token,
    register_principal,
    register_workload,
    workload_token,
)

OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture(autouse=True)
def fresh_key_cache(settings):
    """Each test starts with no cached key set, and may fetch it again at once."""
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 0
    signing_keys.forget()
    yield
    signing_keys.forget()


@pytest.fixture
def workload(emulator, marketing) -> Workload:
    assistant = make_deployment(department=marketing, display_name="Copy assistant")
    return register_principal(
        emulator,
        department=marketing,
        name="Campaign reporter",
        deployments=[assistant],
        requests_per_minute=60,
        tokens_per_minute=20_000,
    )


def refusal(token: str, *, now: datetime | None = None, department: str | None = None) -> CallerRefused:
    with pytest.raises(CallerRefused) as refused:
        caller_for_token(token, now=now or timezone.now(), department=department)
    return refused.value


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def key_set_requests(emulator) -> int:
    return int(requests.get(f"{emulator.control_url}/identity", timeout=10).json()["keySetRequests"])


def rotate(emulator) -> str:
    response = requests.post(f"{emulator.control_url}/identity/rotate-key", timeout=10)
    assert response.status_code == 200
    return str(response.json()["kid"])


def b64(part: bytes) -> str:
    return base64.urlsafe_b64encode(part).rstrip(b"=").decode()


# The right token --------------------------------------------------------------------------------


def test_a_registered_workload_calls_as_its_department(workload, marketing):
    principal, token = workload.principal, workload.token()

    caller = caller_for_token(token, now=timezone.now())

    assert caller.department == marketing
    assert caller.principal_id == principal.pk
    assert caller.api_key_id is None
    assert caller.user_id is None
    assert caller.deployment_ids == frozenset(principal.deployments.values_list("pk", flat=True))
    assert (caller.requests_per_minute, caller.tokens_per_minute) == (60, 20_000)
    assert caller.label == "service principal Campaign reporter"
    principal.refresh_from_db()
    assert principal.last_used_at is not None


def test_the_token_is_a_signed_v2_access_token_for_switchyard(workload, emulator):
    principal, token = workload.principal, workload.token()

    header, claims = header_of(token), claims_of(token)

    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["aud"] == SWITCHYARD_APP_ID  # v2.0 tokens name the API by its application id
    assert claims["iss"] == f"{emulator.url}/{claims['tid']}/v2.0"
    assert claims["oid"] == claims["sub"] == str(principal.object_id)
    assert claims["azp"] == str(principal.application_id)
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "2.0"
    assert "scp" not in claims
    assert claims["nbf"] <= claims["iat"] < claims["exp"]


def test_a_v1_token_with_the_app_id_uri_as_audience_is_accepted(emulator, marketing):
    # An API whose manifest leaves accessTokenAcceptedVersion unset gets v1.0 tokens from the v2.0
    # endpoint: issuer sts-style, audience the app id URI asked for.
    response = requests.put(
        f"{emulator.control_url}/identity/apis",
        json={"appIdUri": SWITCHYARD_APP_ID_URI, "appId": SWITCHYARD_APP_ID, "accessTokenVersion": 1},
        timeout=10,
    )
    assert response.status_code == 200
    registered = register_principal(emulator, department=marketing)
    principal, token = registered.principal, registered.token()

    claims = claims_of(token)
    assert (claims["ver"], claims["aud"], claims["appid"]) == (
        "1.0",
        SWITCHYARD_APP_ID_URI,
        str(principal.application_id),
    )
    assert caller_for_token(token, now=timezone.now()).principal_id == principal.pk


def test_a_token_is_good_until_it_expires_give_or_take_a_minute(workload):
    principal, token = workload.principal, workload.token()
    expires = datetime.fromtimestamp(claims_of(token)["exp"], tz=UTC)

    assert caller_for_token(token, now=expires + timedelta(seconds=30)).principal_id == principal.pk
    assert "Token expired at" in refusal(token, now=expires + timedelta(minutes=2)).message


# Tokens Switchyard cannot trust: 401 -----------------------------------------------------------


def test_an_expired_token_is_refused(workload):
    token = workload.token()
    later = timezone.now() + timedelta(hours=2)

    refused = refusal(token, now=later)

    assert (refused.status, refused.code) == (401, "invalid_api_key")
    assert refused.message.startswith("Token expired at")
    assert "get a new one" in refused.message


def test_a_token_not_yet_valid_is_refused(workload):
    token = workload.token()
    not_before = datetime.fromtimestamp(claims_of(token)["nbf"], tz=UTC)

    refused = refusal(token, now=not_before - timedelta(minutes=5))

    assert refused.status == 401
    assert "Token not valid before" in refused.message
    assert "clock" in refused.message


def test_a_tampered_token_fails_its_signature(workload, emulator, finance):
    token = workload.token()
    header, _payload, signature = token.split(".")
    claims = claims_of(token) | {"oid": "00000000-0000-0000-0000-00000000beef"}
    tampered = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"

    refused = refusal(tampered)

    assert refused.status == 401
    assert refused.message.startswith("Bad token signature")


def test_a_token_signed_by_another_key_under_the_tenants_key_id_fails(workload):
    token = workload.token()
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        claims_of(token), impostor, algorithm="RS256", headers={"kid": header_of(token)["kid"]}
    )

    assert refusal(forged).message.startswith("Bad token signature")


def test_a_token_signed_by_a_key_the_tenant_does_not_publish_is_refused(workload):
    token = workload.token()
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims_of(token), impostor, algorithm="RS256", headers={"kid": "made-up-key"})

    refused = refusal(forged)

    assert refused.status == 401
    assert refused.message.startswith("Unknown signing key made-up-key")


def test_an_unsigned_token_is_never_accepted(workload):
    token = workload.token()
    unsigned = jwt.encode(claims_of(token), None, algorithm="none")

    refused = refusal(unsigned)

    assert refused.status == 401
    assert refused.message.startswith("Token not signed")


def test_the_portals_own_unsigned_emulator_token_is_refused(emulator, workload):
    # The emulator's data plane takes these; the gateway must not, in emulator mode or any other.
    portal_token = credential().get_token(f"{SWITCHYARD_APP_ID_URI}/.default").token

    assert refusal(portal_token).message.startswith("Token not signed")


def test_a_token_signed_with_the_public_key_as_an_hmac_secret_is_refused(workload, emulator):
    # The classic algorithm confusion: HS256 "signed" with the published key as the shared secret.
    token = workload.token()
    published = requests.get(
        f"{emulator.url}/{claims_of(token)['tid']}/discovery/v2.0/keys", timeout=10
    ).json()
    secret = json.dumps(published["keys"][0]).encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": header_of(token)["kid"]}
    signing_input = f"{b64(json.dumps(header).encode())}.{token.split('.')[1]}"
    forged = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"

    assert refusal(forged).message == "Token signed with HS256: Entra ID signs access tokens with RS256 only."


def test_a_token_for_another_api_has_the_wrong_audience(workload):
    # The application's token for Azure OpenAI itself, sent to Switchyard by mistake.
    token = workload.token(scope=COGNITIVE_SERVICES_SCOPE)

    refused = refusal(token)

    assert refused.status == 401
    assert refused.message == (
        f"Wrong audience: expected {SWITCHYARD_APP_ID_URI} or {SWITCHYARD_APP_ID}, got "
        f"https://cognitiveservices.azure.com. Ask for the token with scope {SWITCHYARD_APP_ID_URI}/.default."
    )


def test_a_token_from_another_tenant_has_the_wrong_issuer(emulator, marketing):
    client_id, secret, object_id = register_workload(emulator)
    ServicePrincipal.objects.create(department=marketing, name="Job", object_id=object_id)
    token = workload_token(emulator, client_id, secret, tenant_id=OTHER_TENANT)

    refused = refusal(token)

    assert refused.status == 401
    assert refused.message.startswith("Wrong issuer: expected ")
    assert refused.message.endswith(f"got {emulator.url}/{OTHER_TENANT}/v2.0.")


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("not-a-token", "neither a Switchyard key"),
        ("a.b.c", "neither a Switchyard key"),
        ("", "neither a Switchyard key"),
    ],
)
def test_what_is_not_a_token_is_refused_with_a_hint(emulator, token, says):
    assert says in refusal(token).message


# Key rollover ------------------------------------------------------------------------------------


def test_a_token_signed_with_a_new_key_makes_the_gateway_fetch_the_keys_again(workload, emulator):
    principal, token = workload.principal, workload.token()
    caller_for_token(token, now=timezone.now())  # the key set is cached now
    fetched = key_set_requests(emulator)
    new_kid = rotate(emulator)
    new_token = workload.token()
    assert header_of(new_token)["kid"] == new_kid

    assert caller_for_token(new_token, now=timezone.now()).principal_id == principal.pk
    assert key_set_requests(emulator) == fetched + 1
    # Tokens signed before the rollover still verify: the old key stays published.
    assert caller_for_token(token, now=timezone.now()).principal_id == principal.pk
    assert key_set_requests(emulator) == fetched + 1


def test_unknown_key_ids_do_not_hammer_the_issuer(workload, emulator, settings):
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 300
    token = workload.token()
    caller_for_token(token, now=timezone.now())
    fetched = key_set_requests(emulator)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for number in range(25):
        forged = jwt.encode(claims_of(token), impostor, algorithm="RS256", headers={"kid": f"bogus-{number}"})
        assert refusal(forged).message.startswith("Unknown signing key")

    assert key_set_requests(emulator) == fetched  # the floor had not passed since the first fetch


def test_a_new_key_inside_the_floor_waits_for_it(workload, emulator, settings):
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 300
    principal, token = workload.principal, workload.token()
    caller_for_token(token, now=timezone.now())
    rotate(emulator)
    new_token = workload.token()

    assert refusal(new_token).message.startswith("Unknown signing key")
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 0
    assert caller_for_token(new_token, now=timezone.now()).principal_id == principal.pk


def test_an_unreachable_key_set_is_a_503_not_a_bad_token(workload, emulator):
    token = workload.token()
    emulator.inject(operation="identity.keys", kind="503")

    refused = refusal(token)

    assert (refused.status, refused.code) == (503, "issuer_unavailable")
    assert "try again" in refused.message


def test_keys_already_known_outlive_an_unreachable_key_set(workload, emulator):
    principal, token = workload.principal, workload.token()
    caller_for_token(token, now=timezone.now())
    emulator.inject(operation="identity.keys", kind="500")

    assert caller_for_token(token, now=timezone.now()).principal_id == principal.pk


# Good tokens, callers who may not use the gateway: 403 -----------------------------------------


def test_an_unregistered_service_principal_is_forbidden(emulator, marketing):
    client_id, secret, object_id = register_workload(emulator)
    token = workload_token(emulator, client_id, secret)

    refused = refusal(token)

    assert (refused.status, refused.code) == (403, "permission_denied")
    assert refused.message == (
        f"Service principal {object_id} (application {client_id}) is not registered with Switchyard: ask "
        "a platform admin to register it for your department."
    )


def test_a_disabled_service_principal_is_forbidden_at_its_next_call(workload):
    principal, token = workload.principal, workload.token()
    assert caller_for_token(token, now=timezone.now()).principal_id == principal.pk
    principal.enabled = False
    principal.save()

    refused = refusal(token)

    assert refused.status == 403
    assert "Campaign reporter is disabled" in refused.message


def test_a_registration_counts_from_the_next_call(emulator, marketing):
    client_id, secret, object_id = register_workload(emulator)
    token = workload_token(emulator, client_id, secret)
    assert refusal(token).status == 403

    principal = ServicePrincipal.objects.create(department=marketing, name="Late job", object_id=object_id)

    assert caller_for_token(token, now=timezone.now()).principal_id == principal.pk


def test_a_service_principal_cannot_call_for_another_department(workload, finance):
    token = workload.token()

    refused = refusal(token, department="finance")

    assert refused.status == 403
    assert "calls for marketing, not finance" in refused.message


# People ------------------------------------------------------------------------------------------


def test_a_person_pays_with_their_department(emulator, marketing, marketing_member):
    token = person_token(emulator, marketing_member)

    caller = caller_for_token(token, now=timezone.now())

    assert caller.department == marketing
    assert caller.user_id == marketing_member.pk
    assert caller.principal_id is None
    assert caller.api_key_id is None
    assert caller.deployment_ids is None
    claims = claims_of(token)
    assert claims["idtyp"] == "user"
    assert claims["scp"] == "user_impersonation"
    assert claims["preferred_username"] == marketing_member.email


def test_a_person_in_several_departments_names_the_one_that_pays(
    emulator, marketing, finance, marketing_member
):
    Membership.objects.create(user=marketing_member, department=finance)
    token = person_token(emulator, marketing_member)

    refused = refusal(token)
    assert (refused.status, refused.code) == (400, "department_required")
    assert "several departments (finance, marketing)" in refused.message
    assert "Switchyard-Department: <slug>" in refused.message

    assert caller_for_token(token, now=timezone.now(), department="finance").department == finance
    assert caller_for_token(token, now=timezone.now(), department="marketing").department == marketing


def test_a_person_cannot_charge_a_department_they_are_not_in(emulator, marketing, finance, marketing_member):
    token = person_token(emulator, marketing_member)

    refused = refusal(token, department="finance")

    assert refused.status == 403
    assert "not a member of finance; your departments: marketing" in refused.message


def test_a_person_who_never_signed_in_is_told_to_sign_in_first(emulator, marketing):
    stranger = make_user(email="stranger@example.com", department=marketing)
    token = person_token(emulator, stranger)
    SocialAccount.objects.filter(user=stranger).delete()

    refused = refusal(token)

    assert refused.status == 403
    assert "stranger@example.com has not signed in to Switchyard yet" in refused.message


def test_a_deactivated_person_is_forbidden(emulator, marketing, marketing_member):
    token = person_token(emulator, marketing_member)
    marketing_member.is_active = False
    marketing_member.save()

    assert "deactivated" in refusal(token).message
