"""Entra ID tokens through the gateway on a live server, with the unchanged openai SDKs: a workload
identity's token from the emulator's token endpoint (AzureOpenAI's `azure_ad_token`, or as the
OpenAI client's key) and a person's; each call metered on the principal or the person."""

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.jwks import signing_keys
from money.models import UsageRecord
from org.models import Membership
from provisioning.azure import credential
from tests.gateway.conftest import API_VERSION, openai_client, records
from tests.gateway.entra_tokens import (
    SCOPE,
    person_token,
    register_principal,
    register_workload,
    workload_token,
)

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a tagline for our spring sale"}
]


@pytest.fixture(autouse=True)
def fresh_key_cache(settings):
    settings.GATEWAY_JWKS_REFRESH_FLOOR_SECONDS = 0
    signing_keys.forget()
    yield
    signing_keys.forget()


def azure_ad_client(url: str, token: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=url, azure_ad_token=token, api_version=API_VERSION, max_retries=0
    )


def test_a_workload_identity_calls_with_its_entra_token(gateway, gateway_emulator, assistant, marketing):
    workload = register_principal(
        gateway_emulator, department=marketing, name="Campaign reporter", deployments=[assistant]
    )
    client = azure_ad_client(gateway, workload.token())

    completion = client.chat.completions.create(model="company-assistant", messages=QUESTION)
    chunks = list(client.chat.completions.create(model="company-assistant", messages=QUESTION, stream=True))

    assert completion.choices[0].message.content
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    for record in records(2):
        assert record.source == UsageRecord.Source.API
        assert record.department == marketing
        assert record.principal == workload.principal
        assert record.api_key is None
        assert record.user is None
        assert record.output_tokens > 0


def test_a_workload_sees_only_the_deployments_it_was_registered_for(
    gateway, gateway_emulator, assistant, marketing
):
    workload = register_principal(gateway_emulator, department=marketing, deployments=[assistant])
    client = openai_client(gateway, workload.token())

    assert [model.id for model in client.models.list().data] == ["company-assistant"]


def test_a_person_calls_with_their_token_and_their_department_pays(
    gateway, gateway_emulator, assistant, marketing, marketing_member
):
    client = openai_client(gateway, person_token(gateway_emulator, marketing_member))

    completion = client.chat.completions.create(model="company-assistant", messages=QUESTION)

    assert completion.choices[0].message.content
    (record,) = records()
    assert (record.source, record.department, record.user) == ("api", marketing, marketing_member)
    assert record.principal is None


def test_a_person_in_two_departments_names_the_one_that_pays(
    gateway, gateway_emulator, assistant, marketing, finance, marketing_member
):
    Membership.objects.create(user=marketing_member, department=finance)
    token = person_token(gateway_emulator, marketing_member)

    with pytest.raises(openai.BadRequestError) as unnamed:
        openai_client(gateway, token).chat.completions.create(model="company-assistant", messages=QUESTION)
    assert "Switchyard-Department" in unnamed.value.message

    named = openai_client(gateway, token, default_headers={"Switchyard-Department": marketing.slug})
    assert named.chat.completions.create(model="company-assistant", messages=QUESTION).choices
    (record,) = records()
    assert (record.department, record.user) == (marketing, marketing_member)


def test_an_unregistered_workload_is_refused_with_403(gateway, gateway_emulator, assistant):
    client_id, secret, object_id = register_workload(gateway_emulator)
    client = azure_ad_client(gateway, workload_token(gateway_emulator, client_id, secret, scope=SCOPE))

    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="company-assistant", messages=QUESTION)

    assert f"Service principal {object_id}" in refused.value.message
    assert "not registered with Switchyard" in refused.value.message
    assert not UsageRecord.objects.exists()


def test_an_unsigned_token_is_refused_with_401(gateway, gateway_emulator, assistant):
    # The token the portal's own emulator credential makes: the emulator's data plane takes it,
    # the gateway never does.
    unsigned = credential().get_token(SCOPE).token
    client = azure_ad_client(gateway, unsigned)

    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="company-assistant", messages=QUESTION)

    assert "Token not signed" in refused.value.message
    assert refused.value.code == "invalid_api_key"
