"""The passages index every data set of a landing zone shares on the zone's Azure AI Search
service. Each passage names its department, data set and document, so retrieval filters on the
server by the data sets an assistant has (never by anything a caller sends) and deleting a
document or a version removes exactly its passages."""

from azure.core.exceptions import ResourceNotFoundError
from azure.search.documents import SearchClient
from azure.search.documents.indexes.models import (
    ExhaustiveKnnAlgorithmConfiguration,
    SearchableField,
    SearchField,
    SearchIndex,
    SimpleField,
    VectorSearch,
    VectorSearchProfile,
)
from django.conf import settings

from provisioning.azure import search_client, search_index_client
from provisioning.models import SearchService

VECTOR_PROFILE = "passages-knn"


def passages_index(name: str) -> SearchIndex:
    """Fields: `id` (chunks.chunk_id: document uid, version, position), `content` (searchable
    text), `embedding`, `department` (slug), `data_set` (id as text), `document` (uid),
    `version`, `title` (the file's name), `page` (page, slide or sheet number; 0 when none),
    `heading` (the heading path joined with " > ")."""
    return SearchIndex(
        name=name,
        fields=[
            SimpleField(name="id", type="Edm.String", key=True),
            SearchableField(name="content", type="Edm.String"),
            SearchField(
                name="embedding",
                type="Collection(Edm.Single)",
                searchable=True,
                vector_search_dimensions=settings.GROUNDING_EMBEDDING_DIMENSIONS,
                vector_search_profile_name=VECTOR_PROFILE,
            ),
            SimpleField(name="department", type="Edm.String", filterable=True),
            SimpleField(name="data_set", type="Edm.String", filterable=True),
            SimpleField(name="document", type="Edm.String", filterable=True),
            SimpleField(name="version", type="Edm.Int32", filterable=True),
            SearchableField(name="title", type="Edm.String"),
            SimpleField(name="page", type="Edm.Int32", filterable=True),
            SearchableField(name="heading", type="Edm.String"),
        ],
        vector_search=VectorSearch(
            algorithms=[ExhaustiveKnnAlgorithmConfiguration(name="exhaustive")],
            profiles=[VectorSearchProfile(name=VECTOR_PROFILE, algorithm_configuration_name="exhaustive")],
        ),
    )


def ensure_index(service: SearchService) -> None:
    """Creates the service's passages index if it is missing (idempotent)."""
    indexes = search_index_client(service.endpoint)
    try:
        indexes.get_index(service.index_name)
    except ResourceNotFoundError:
        indexes.create_or_update_index(passages_index(service.index_name))


def passages(service: SearchService) -> SearchClient:
    return search_client(service.endpoint, service.index_name)
