"""How an application calls a deployment through Switchyard's gateway: the addresses and the
snippets the deployment page shows (the openai SDK's two clients, and curl)."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from org.models import Department
from provisioning.models import AccessGrant, CatalogEntry, ModelDeployment

# The Azure OpenAI data-plane version the Azure-style snippet names (GA); the gateway passes
# Azure's answer through whichever version a caller asks for.
AZURE_API_VERSION = "2024-10-21"
KEY_VARIABLE = "SWITCHYARD_API_KEY"


def gateway_url(request: HttpRequest) -> str:
    """Where applications reach the gateway: GATEWAY_PUBLIC_URL when set (behind a proxy, say),
    else the address this page was opened at."""
    configured = str(settings.GATEWAY_PUBLIC_URL or "")
    return (configured or request.build_absolute_uri("/")).rstrip("/")


def entra_audience() -> str:
    """The audience (app id URI) an application asks Entra ID for a gateway token for."""
    return str(settings.GATEWAY_TOKEN_AUDIENCE or "")


def key_departments(deployment: ModelDeployment, grants: Iterable[AccessGrant]) -> list[Department]:
    """Whose API keys call the deployment: its department's for a dedicated one, those of the
    departments granted a shared one (of `grants`, the ones the reader may see)."""
    if deployment.scope == ModelDeployment.Scope.DEDICATED:
        return [deployment.department]
    return [grant.department for grant in grants]


def writes_text(deployment: ModelDeployment) -> bool:
    """Chat models write text; an embeddings model (the catalog gives it no output limit) does
    not. Before the first catalog sync, the name tells."""
    limits = list(
        CatalogEntry.objects.filter(model_name=deployment.model_name).values_list(
            "max_output_tokens", flat=True
        )
    )
    if not limits:
        return "embedding" not in deployment.model_name
    return any(limit is not None for limit in limits)


@dataclass(frozen=True)
class Snippet:
    label: str
    language: str
    code: str


@dataclass(frozen=True)
class HowToCall:
    gateway_name: str
    v1_base_url: str
    azure_endpoint: str
    api_version: str
    snippets: list[Snippet]


def how_to_call(deployment: ModelDeployment, *, base_url: str) -> HowToCall:
    name = deployment.gateway_name
    v1 = f"{base_url}/openai/v1"
    chat = writes_text(deployment)
    return HowToCall(
        gateway_name=name,
        v1_base_url=v1,
        azure_endpoint=base_url,
        api_version=AZURE_API_VERSION,
        snippets=[
            Snippet("Python · OpenAI", "python", _openai(v1, name, chat)),
            Snippet("Python · AzureOpenAI", "python", _azure_openai(base_url, name, chat)),
            Snippet("curl", "bash", _curl(v1, name, chat)),
        ],
    )


def _call(name: str, chat: bool) -> str:
    if chat:
        return (
            "response = client.chat.completions.create(\n"
            f'    model="{name}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n'
            ")\n"
            "print(response.choices[0].message.content)\n"
        )
    return (
        f'response = client.embeddings.create(model="{name}", input="Hello!")\n'
        "print(len(response.data[0].embedding))\n"
    )


def _openai(v1: str, name: str, chat: bool) -> str:
    return (
        "import os\n\n"
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{v1}", api_key=os.environ["{KEY_VARIABLE}"])\n' + _call(name, chat)
    )


def _azure_openai(endpoint: str, name: str, chat: bool) -> str:
    return (
        "import os\n\n"
        "from openai import AzureOpenAI\n\n"
        "client = AzureOpenAI(\n"
        f'    azure_endpoint="{endpoint}",\n'
        f'    api_key=os.environ["{KEY_VARIABLE}"],\n'
        f'    api_version="{AZURE_API_VERSION}",\n'
        ")\n" + _call(name, chat)
    )


def _curl(v1: str, name: str, chat: bool) -> str:
    path, body = (
        ("chat/completions", f'{{"model": "{name}", "messages": [{{"role": "user", "content": "Hello!"}}]}}')
        if chat
        else ("embeddings", f'{{"model": "{name}", "input": "Hello!"}}')
    )
    return (
        f"curl {v1}/{path} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'\n"
    )
