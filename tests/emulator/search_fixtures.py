"""Builders for the search tests, through the official SDKs only: the management client for
Microsoft.Search, a search service made through it, search clients by key or Entra ID token, an
embeddings caller, and the departments' chunks the grounded assistants will index."""

from dataclasses import dataclass

import openai
from azure.core.credentials import AzureKeyCredential
from azure.mgmt.search import SearchManagementClient
from azure.mgmt.search.models import DataPlaneAadOrApiKeyAuthOption, DataPlaneAuthOptions, SearchService, Sku
from azure.search.documents import SearchClient
from azure.search.documents.indexes import SearchIndexClient
from azure.search.documents.indexes.models import (
    ExhaustiveKnnAlgorithmConfiguration,
    SearchableField,
    SearchField,
    SearchIndex,
    SimpleField,
    VectorSearch,
    VectorSearchProfile,
)

from provisioning.azure import (
    ARM_SCOPE,
    SEARCH_SCOPE,
    LoopbackBearerTokenPolicy,
    LoopbackSearchBearerPolicy,
    credential,
    data_plane_token_provider,
)
from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION

DIMENSIONS = 1536

# (key, department, data set, document, page, text)
CHUNKS = [
    (
        "hr-1",
        "hr",
        "hr-handbook",
        "handbook.pdf",
        3,
        "Parental leave: every parent may take sixteen weeks of paid parental leave after a birth or adoption. "
        "Tell your lead about parental leave eight weeks before it starts.",
    ),
    (
        "hr-2",
        "hr",
        "hr-handbook",
        "handbook.pdf",
        5,
        "Remote work: you may work from home up to three days a week when your team agrees.",
    ),
    (
        "fin-1",
        "finance",
        "finance-policies",
        "expenses.docx",
        1,
        "Expense claims: submit travel expense receipts within thirty days; hotel costs above the limit need approval.",
    ),
    (
        "fin-2",
        "finance",
        "finance-policies",
        "expenses.docx",
        2,
        "Parental leave pay is processed by payroll in the month the leave starts.",
    ),
    (
        "mkt-1",
        "marketing",
        "brand-guide",
        "brand.md",
        1,
        "Brand voice: write short, friendly sentences; our logo always sits on a white background.",
    ),
]


@dataclass(frozen=True)
class Service:
    name: str
    endpoint: str
    admin_key: str
    query_key: str
    resource_id: str


def search_management_client() -> SearchManagementClient:
    token_credential = credential()
    return SearchManagementClient(
        token_credential,
        SUBSCRIPTION,
        base_url=_emulator_url(),
        authentication_policy=LoopbackBearerTokenPolicy(token_credential, ARM_SCOPE),
        polling_interval=0.05,
    )


def _emulator_url() -> str:
    from django.conf import settings

    return str(settings.AZURE_EMULATOR_URL)


def service_body(
    *, location: str = "swedencentral", rbac: bool = False, keyless: bool = False
) -> SearchService:
    """A basic service; `rbac` accepts Entra ID tokens beside keys, `keyless` only tokens."""
    return SearchService(
        location=location,
        sku=Sku(name="basic"),
        replica_count=1,
        partition_count=1,
        disable_local_auth=True if keyless else None,
        auth_options=DataPlaneAuthOptions(aad_or_api_key=DataPlaneAadOrApiKeyAuthOption()) if rbac else None,
    )


def create_service(management, name: str = "srch-test", **options) -> Service:
    created = management.services.begin_create_or_update(
        RESOURCE_GROUP, name, service_body(**options)
    ).result()
    admin = management.admin_keys.get(RESOURCE_GROUP, name)
    query = next(iter(management.query_keys.list_by_search_service(RESOURCE_GROUP, name)))
    return Service(name, created.endpoint, admin.primary_key, query.key, created.id)


def chunk_index(name: str = "chunks") -> SearchIndex:
    return SearchIndex(
        name=name,
        fields=[
            SimpleField(name="id", type="Edm.String", key=True),
            SearchableField(name="content", type="Edm.String"),
            SearchField(
                name="embedding",
                type="Collection(Edm.Single)",
                searchable=True,
                vector_search_dimensions=DIMENSIONS,
                vector_search_profile_name="exhaustive",
            ),
            SimpleField(name="department", type="Edm.String", filterable=True),
            SimpleField(name="data_set", type="Edm.String", filterable=True),
            SimpleField(name="document", type="Edm.String", filterable=True),
            SimpleField(name="page", type="Edm.Int32", filterable=True, sortable=True),
            SimpleField(name="tags", type="Collection(Edm.String)", filterable=True),
        ],
        vector_search=VectorSearch(
            algorithms=[ExhaustiveKnnAlgorithmConfiguration(name="knn")],
            profiles=[VectorSearchProfile(name="exhaustive", algorithm_configuration_name="knn")],
        ),
    )


def index_client(service: Service, key: str | None = None) -> SearchIndexClient:
    return SearchIndexClient(service.endpoint, AzureKeyCredential(key or service.admin_key))


def search_client(service: Service, key: str | None = None, index: str = "chunks") -> SearchClient:
    return SearchClient(service.endpoint, index, AzureKeyCredential(key or service.admin_key))


def entra_search_client(service: Service, index: str = "chunks") -> SearchClient:
    token_credential = credential()
    return SearchClient(
        service.endpoint,
        index,
        token_credential,
        authentication_policy=LoopbackSearchBearerPolicy(token_credential, SEARCH_SCOPE),
    )


def entra_index_client(service: Service) -> SearchIndexClient:
    token_credential = credential()
    return SearchIndexClient(
        service.endpoint,
        token_credential,
        authentication_policy=LoopbackSearchBearerPolicy(token_credential, SEARCH_SCOPE),
    )


@dataclass(frozen=True)
class Embedder:
    endpoint: str
    deployment: str

    def __call__(self, texts: list[str]) -> list[list[float]]:
        client = openai.AzureOpenAI(
            azure_endpoint=self.endpoint,
            azure_ad_token_provider=data_plane_token_provider(),
            api_version="2024-10-21",
        )
        return [item.embedding for item in client.embeddings.create(model=self.deployment, input=texts).data]
