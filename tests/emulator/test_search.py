"""The unchanged azure-mgmt-search and azure-search-documents SDKs against the emulator's Azure AI
Search: a service created as a long-running operation, its keys, an index with a vector field,
the departments' chunks embedded through the emulator's embeddings, and the queries grounded
assistants will make: text, vector, hybrid, filtered by data set, shaped by select and top."""

import math
import uuid

import numpy as np
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.search import SearchManagementClient
from azure.search.documents.models import VectorizedQuery
from django.conf import settings

from provisioning.emulator.search import queries
from provisioning.emulator.state import Store
from tests.emulator.conftest import deploy_chat
from tests.emulator.fixtures import RESOURCE_GROUP, SUBSCRIPTION
from tests.emulator.search_fixtures import (
    CHUNKS,
    Embedder,
    Service,
    chunk_index,
    create_service,
    entra_index_client,
    entra_search_client,
    index_client,
    search_client,
    search_management_client,
    service_body,
)

SEARCH_INDEX_DATA_READER = "1407120a-92aa-4202-b7e9-c0e197c71c8f"
SEARCH_INDEX_DATA_CONTRIBUTOR = "8ebe5a00-799e-43f5-93ac-243d3dce84a7"
SEARCH_SERVICE_CONTRIBUTOR = "7ca78c08-252a-4471-8644-bb5ff32d4ba0"


@pytest.fixture
def embedder(cognitive) -> Embedder:
    deployed = deploy_chat(
        cognitive, account="oai-embed", deployment="embed", model="text-embedding-3-small", version="1"
    )
    return Embedder(deployed.endpoint, deployed.deployment)


@pytest.fixture
def search_management(emulator) -> SearchManagementClient:
    return search_management_client()


@pytest.fixture
def service(search_management) -> Service:
    return create_service(search_management)


@pytest.fixture
def indexed(service: Service, embedder) -> Service:
    """The service with the chunk index, every department's chunks embedded and uploaded."""
    index_client(service).create_index(chunk_index())
    vectors = embedder([text for *_, text in CHUNKS])
    documents = [
        {
            "id": key,
            "department": department,
            "data_set": data_set,
            "document": document,
            "page": page,
            "content": text,
            "embedding": vector,
            "tags": ["style"] if department == "marketing" else [department, "policy"],
        }
        for (key, department, data_set, document, page, text), vector in zip(CHUNKS, vectors, strict=True)
    ]
    results = search_client(service).upload_documents(documents)
    assert all(result.succeeded for result in results)
    return service


def keys_of(results) -> list[str]:
    return [result["id"] for result in results]


class TestService:
    def test_a_service_is_created_as_a_long_running_operation(self, search_management, emulator):
        poller = search_management.services.begin_create_or_update(RESOURCE_GROUP, "srch-mkt", service_body())
        assert poller.status().lower() == "provisioning"

        created = poller.result()

        assert created.provisioning_state == "succeeded"
        assert created.status == "running"
        assert created.endpoint == f"{emulator.url}/search/srch-mkt/"
        assert created.sku.name == "basic"
        fetched = search_management.services.get(RESOURCE_GROUP, "srch-mkt")
        assert fetched.id == (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            "/providers/Microsoft.Search/searchServices/srch-mkt"
        )
        assert [item.name for item in search_management.services.list_by_resource_group(RESOURCE_GROUP)] == [
            "srch-mkt"
        ]

    def test_a_second_put_of_a_live_service_answers_at_once(self, search_management, service):
        again = search_management.services.begin_create_or_update(
            RESOURCE_GROUP, service.name, service_body()
        )

        assert again.done()
        assert again.result().endpoint == service.endpoint

    def test_admin_and_query_keys(self, search_management, service):
        admin = search_management.admin_keys.get(RESOURCE_GROUP, service.name)
        query = list(search_management.query_keys.list_by_search_service(RESOURCE_GROUP, service.name))

        assert len(admin.primary_key) == 52
        assert admin.primary_key != admin.secondary_key
        assert [key.key for key in query] == [service.query_key]

    def test_a_failed_provisioning_is_reported(self, search_management, emulator):
        emulator.inject(operation="searchServices.put", kind="lro_failure", count=1)

        with pytest.raises(HttpResponseError):
            search_management.services.begin_create_or_update(
                RESOURCE_GROUP, "srch-bad", service_body()
            ).result()

        assert search_management.services.get(RESOURCE_GROUP, "srch-bad").provisioning_state == "failed"

    def test_names_are_unique_and_checked(self, search_management, service):
        with pytest.raises(HttpResponseError) as taken:
            search_management.services.begin_create_or_update(
                "rg-other", service.name, service_body()
            ).result()
        assert taken.value.status_code == 409

        with pytest.raises(HttpResponseError) as location:
            search_management.services.begin_create_or_update(
                RESOURCE_GROUP, "srch-nowhere", service_body(location="atlantis")
            ).result()
        assert location.value.status_code == 400

    def test_deleting_the_service_takes_its_indexes_and_endpoint(self, search_management, indexed):
        search_management.services.delete(RESOURCE_GROUP, indexed.name)

        with pytest.raises(ResourceNotFoundError):
            search_management.services.get(RESOURCE_GROUP, indexed.name)
        with pytest.raises(ResourceNotFoundError):
            search_client(indexed).get_document_count()


class TestIndexes:
    def test_an_index_with_a_vector_field_is_created_as_azure_returns_it(self, service):
        created = index_client(service).create_index(chunk_index())

        fields = {field.name: field for field in created.fields}
        assert fields["id"].key is True
        assert fields["embedding"].vector_search_dimensions == 1536
        assert fields["embedding"].vector_search_profile_name == "exhaustive"
        assert fields["content"].searchable is True
        assert fields["department"].filterable is True
        assert [index.name for index in index_client(service).list_indexes()] == ["chunks"]
        assert list(index_client(service).list_index_names()) == ["chunks"]
        assert index_client(service).get_index("chunks").e_tag

    def test_create_or_update_adds_fields_but_refuses_to_change_one(self, service):
        client = index_client(service)
        client.create_index(chunk_index())
        index = chunk_index()
        index.fields.append(index.fields[-1].__class__(name="heading", type="Edm.String", filterable=True))

        assert "heading" in [field.name for field in client.create_or_update_index(index).fields]

        index.fields[3].filterable = False  # department
        with pytest.raises(HttpResponseError) as refused:
            client.create_or_update_index(index)
        assert refused.value.status_code == 400

    def test_an_index_without_a_key_field_is_refused(self, service):
        index = chunk_index()
        index.fields[0].key = False

        with pytest.raises(HttpResponseError) as refused:
            index_client(service).create_index(index)

        assert refused.value.status_code == 400
        assert "key field" in refused.value.message

    def test_a_vector_field_needs_dimensions_and_a_known_profile(self, service):
        without_dimensions = chunk_index()
        without_dimensions.fields[2].vector_search_dimensions = None
        unknown_profile = chunk_index()
        unknown_profile.fields[2].vector_search_profile_name = "hnsw-missing"

        for index in (without_dimensions, unknown_profile):
            with pytest.raises(HttpResponseError) as refused:
                index_client(service).create_index(index)
            assert refused.value.status_code == 400

    def test_an_unknown_index_is_a_404(self, service):
        with pytest.raises(ResourceNotFoundError):
            index_client(service).get_index("nowhere")
        with pytest.raises(ResourceNotFoundError):
            search_client(service, index="nowhere").get_document_count()
        with pytest.raises(ResourceNotFoundError):
            list(search_client(service, index="nowhere").search("leave"))

    def test_deleting_an_index(self, indexed):
        index_client(indexed).delete_index("chunks")

        assert list(index_client(indexed).list_index_names()) == []

    def test_statistics_count_documents_and_bytes(self, indexed):
        statistics = index_client(indexed).get_index_statistics("chunks")

        assert statistics.document_count == len(CHUNKS)
        assert statistics.vector_index_size == len(CHUNKS) * 1536 * 4
        assert statistics.storage_size > statistics.vector_index_size


class TestDocuments:
    def test_uploaded_chunks_are_counted_and_read_back(self, indexed):
        client = search_client(indexed)

        assert client.get_document_count() == len(CHUNKS)
        document = client.get_document("hr-1", selected_fields=["id", "page", "document"])
        assert document == {"id": "hr-1", "page": 3, "document": "handbook.pdf"}

    def test_a_vector_reads_back_as_the_numbers_uploaded_in_single_precision(
        self, indexed, embedder, emulator
    ):
        (vector,) = embedder([next(text for key, *_, text in CHUNKS if key == "hr-1")])

        read = search_client(indexed).get_document("hr-1", selected_fields=["embedding"])["embedding"]
        restarted = Store(emulator.state_path).search.index(indexed.name, "chunks")
        assert restarted is not None
        after_restart = queries.shaped(restarted.documents["hr-1"], ["embedding"], restarted)["embedding"]

        # Collection(Edm.Single): kept as float32, as Azure keeps it, and written as JSON numbers.
        single = [float(number) for number in np.asarray(vector, dtype=np.float32)]
        assert read == single
        assert after_restart == single
        assert all(type(number) is float for number in read)

    def test_merge_delete_and_a_batch_with_failures(self, indexed):
        client = search_client(indexed)

        merged = client.merge_documents([{"id": "hr-2", "page": 6}])
        assert merged[0].status_code == 200
        assert client.get_document("hr-2")["page"] == 6
        assert client.get_document("hr-2")["department"] == "hr"

        client.delete_documents([{"id": "hr-2"}])
        with pytest.raises(ResourceNotFoundError):
            client.get_document("hr-2")
        assert client.get_document_count() == len(CHUNKS) - 1

        results = client.merge_or_upload_documents([{"id": "new-1", "content": "x"}])
        assert (results[0].succeeded, results[0].status_code) == (True, 201)
        failed = client.merge_documents([{"id": "missing", "page": 1}])
        assert (failed[0].succeeded, failed[0].status_code) == (False, 404)

    def test_an_unknown_field_refuses_the_batch(self, indexed):
        with pytest.raises(HttpResponseError) as refused:
            search_client(indexed).upload_documents([{"id": "x-1", "colour": "red"}])

        assert refused.value.status_code == 400

    def test_a_vector_of_the_wrong_length_refuses_the_batch(self, indexed):
        with pytest.raises(HttpResponseError) as refused:
            search_client(indexed).upload_documents([{"id": "x-1", "embedding": [0.1, 0.2]}])

        assert refused.value.status_code == 400

    def test_the_control_endpoint_shows_the_service_and_its_indexes(self, indexed, emulator):
        overview = requests.get(f"{emulator.control_url}/", timeout=10).json()

        (service,) = overview["search_services"]
        assert service["indexes"] == {"chunks": len(CHUNKS)}
        assert service["provisioningState"] == "succeeded"

    def test_the_index_survives_a_restart(self, indexed, emulator):
        restarted = Store(emulator.state_path)

        index = restarted.search.index(indexed.name, "chunks")
        assert index is not None
        assert sorted(index.documents) == sorted(key for key, *_ in CHUNKS)
        assert len(index.documents["hr-1"]["embedding"]) == 1536


class TestQueries:
    def test_text_search_ranks_the_document_with_the_words_first(self, indexed):
        results = list(search_client(indexed).search("parental leave weeks"))

        assert keys_of(results)[0] == "hr-1"
        assert "fin-2" in keys_of(results)  # mentions parental leave too, less often
        assert "mkt-1" not in keys_of(results)
        scores = [result["@search.score"] for result in results]
        assert scores == sorted(scores, reverse=True)

    def test_a_star_finds_every_document(self, indexed):
        assert len(list(search_client(indexed).search("*"))) == len(CHUNKS)

    def test_vector_search_finds_the_semantically_close_chunk(self, indexed, embedder):
        question = embedder(["can I work from home three days a week"])[0]

        results = list(
            search_client(indexed).search(
                search_text=None,
                vector_queries=[VectorizedQuery(vector=question, k_nearest_neighbors=2, fields="embedding")],
            )
        )

        assert keys_of(results)[0] == "hr-2"
        assert len(results) == 2
        assert 0 < results[1]["@search.score"] <= results[0]["@search.score"] <= 1

    def test_hybrid_search_fuses_both_rankings(self, indexed, embedder):
        question = "how many weeks of parental leave"
        results = list(
            search_client(indexed).search(
                search_text=question,
                vector_queries=[
                    VectorizedQuery(vector=embedder([question])[0], k_nearest_neighbors=3, fields="embedding")
                ],
                top=3,
            )
        )

        assert keys_of(results)[0] == "hr-1"
        # Reciprocal Rank Fusion: the first of both lists scores 2 / 61.
        assert results[0]["@search.score"] == pytest.approx(2 / 61)

    def test_debug_vector_reports_each_results_subscores_before_fusion(self, indexed, embedder):
        question = "how many weeks of parental leave"
        vector = embedder([question])[0]
        results = list(
            search_client(indexed).search(
                search_text=question,
                vector_queries=[VectorizedQuery(vector=vector, k_nearest_neighbors=2, fields="embedding")],
                select=["id", "content"],
                top=3,
                debug="vector",
            )
        )
        texts = {key: text for key, *_, text in CHUNKS}
        found_by_vector = 0
        for result in results:
            subscores = result["@search.document_debug_info"].vectors.subscores
            assert subscores.text.search_score > 0  # every result here matched the words too
            assert subscores.document_boost == 1.0
            (by_field,) = subscores.vectors
            if by_field:
                found_by_vector += 1
                similarity = by_field["embedding"].vector_similarity
                # The cosine of the question's vector and the passage's, which the answer no longer
                # needs to carry.
                passage = embedder([texts[result["id"]]])[0]
                expected = sum(a * b for a, b in zip(vector, passage, strict=True)) / (
                    math.sqrt(sum(a * a for a in vector)) * math.sqrt(sum(b * b for b in passage))
                )
                assert similarity == pytest.approx(expected, abs=1e-5)
                assert by_field["embedding"].search_score == pytest.approx(1 / (2 - similarity))
            assert "embedding" not in result

        assert found_by_vector == 2  # the vector side's k nearest; the third came from the words alone
        assert keys_of(results)[0] == "hr-1"

    def test_without_debug_no_subscores_and_a_wrong_mode_is_refused(self, indexed):
        client = search_client(indexed)

        plain = list(client.search("parental leave", top=1))
        with pytest.raises(HttpResponseError) as refused:
            list(client.search("parental leave", top=1, debug="everything"))

        assert plain[0]["@search.document_debug_info"] is None
        assert refused.value.status_code == 400
        assert "Invalid value for 'debug'" in str(refused.value)

    def test_a_filter_by_data_set_keeps_out_other_departments(self, indexed, embedder):
        question = "parental leave"
        vector = VectorizedQuery(vector=embedder([question])[0], k_nearest_neighbors=5, fields="embedding")
        client = search_client(indexed)

        hr_only = list(
            client.search(
                search_text=question,
                vector_queries=[vector],
                filter="search.in(data_set, 'hr-handbook,brand-guide', ',')",
            )
        )
        finance_only = list(client.search(search_text=question, filter="department eq 'finance'"))

        assert {result["data_set"] for result in hr_only} == {"hr-handbook", "brand-guide"}
        assert "fin-2" not in keys_of(hr_only)  # it speaks of parental leave, in Finance's data set
        assert keys_of(finance_only) == ["fin-2"]

    def test_filters_combine_with_and_or_not(self, indexed):
        client = search_client(indexed)

        found = list(
            client.search(
                "*",
                filter="(department eq 'hr' and not (page gt 4)) or data_set eq 'brand-guide'",
                order_by=["page asc"],
            )
        )

        assert sorted(keys_of(found)) == ["hr-1", "mkt-1"]

    def test_an_equality_filter_follows_documents_that_change_or_go(self, indexed):
        # `field eq value` starts from the documents holding the value: moved and deleted
        # documents leave it, and what is joined by `or` still looks at every document.
        client = search_client(indexed)

        def found(filter_: str) -> list[str]:
            return sorted(keys_of(client.search("*", filter=filter_)))

        assert found("department eq 'hr' and page eq 3") == ["hr-1"]
        assert found("page eq 3.0 and department eq 'hr'") == ["hr-1"]
        client.merge_documents([{"id": "hr-1", "department": "finance"}])
        client.delete_documents([{"id": "hr-2"}])

        assert found("department eq 'hr'") == []
        assert found("department eq 'finance' and page eq 3") == ["hr-1"]
        assert found("department eq 'nobody' or data_set eq 'brand-guide'") == ["mkt-1"]
        assert found("not (department eq 'finance')") == ["mkt-1"]

    def test_a_filter_over_a_collection_with_any_and_all(self, indexed):
        client = search_client(indexed)

        style = keys_of(client.search("*", filter="tags/any(tag: tag eq 'style')"))
        policies = keys_of(client.search("*", filter="tags/any(tag: search.in(tag, 'hr|finance', '|'))"))
        not_hr = keys_of(client.search("*", filter="tags/all(tag: tag ne 'hr')"))

        assert style == ["mkt-1"]
        assert sorted(policies) == ["fin-1", "fin-2", "hr-1", "hr-2"]
        assert sorted(not_hr) == ["fin-1", "fin-2", "mkt-1"]

    def test_select_top_skip_and_count(self, indexed):
        client = search_client(indexed)

        results = client.search(
            "*", select=["id", "page"], top=2, skip=1, include_total_count=True, order_by=["page desc"]
        )
        page = list(results)

        assert results.get_count() == len(CHUNKS)
        assert len(page) == 2
        assert {name for name in page[0] if not name.startswith("@")} == {"id", "page"}
        assert [result["page"] for result in page] == [3, 2]

    def test_results_beyond_fifty_come_in_pages(self, service):
        index_client(service).create_index(chunk_index())
        client = search_client(service)
        client.upload_documents(
            [{"id": f"page-{number}", "content": "leave", "page": number} for number in range(120)]
        )

        found = keys_of(client.search("leave"))

        assert len(found) == 120
        assert len(set(found)) == 120

    def test_a_malformed_filter_is_a_400(self, indexed):
        client = search_client(indexed)

        for broken in (
            "department eq",
            "department eq 'hr' and",
            "search.in(department, 'hr'",
            "colour eq 'red'",
            "content eq 'x' or",
        ):
            with pytest.raises(HttpResponseError) as refused:
                list(client.search("*", filter=broken))
            assert refused.value.status_code == 400, broken
        with pytest.raises(HttpResponseError) as not_filterable:
            list(client.search("*", filter="embedding eq 'x'"))
        assert not_filterable.value.status_code == 400


class TestAccess:
    def test_a_wrong_key_is_refused(self, indexed):
        with pytest.raises(HttpResponseError) as refused:
            search_client(indexed, key="0" * 52).get_document_count()

        assert refused.value.status_code == 403

    def test_a_query_key_may_read_but_not_write(self, indexed):
        reader = search_client(indexed, key=indexed.query_key)

        assert reader.get_document_count() == len(CHUNKS)
        with pytest.raises(HttpResponseError) as refused:
            reader.upload_documents([{"id": "x-1"}])
        assert refused.value.status_code == 403
        with pytest.raises(HttpResponseError):
            index_client(indexed, key=indexed.query_key).get_index("chunks")

    def test_an_entra_token_needs_role_based_access_and_a_role(self, search_management):
        service = create_service(search_management, "srch-rbac", rbac=True)
        index_client(service).create_index(chunk_index())
        client = entra_search_client(service)

        with pytest.raises(HttpResponseError) as refused:
            client.get_document_count()
        assert refused.value.status_code == 403

        _grant(service.resource_id + "/indexes/chunks", SEARCH_INDEX_DATA_READER)
        assert client.get_document_count() == 0
        # A role on one index does not reach another, nor lets its holder write.
        index_client(service).create_index(chunk_index("other"))
        with pytest.raises(HttpResponseError) as elsewhere:
            entra_search_client(service, index="other").get_document_count()
        assert elsewhere.value.status_code == 403
        with pytest.raises(HttpResponseError) as writing:
            client.upload_documents([{"id": "x-1"}])
        assert writing.value.status_code == 403

    def test_a_keyless_service_takes_entra_tokens_with_roles_only(self, search_management):
        service = create_service(search_management, "srch-keyless", keyless=True)
        assert search_management.services.get(RESOURCE_GROUP, service.name).disable_local_auth is True
        with pytest.raises(HttpResponseError) as keys_refused:
            index_client(service).create_index(chunk_index())
        assert keys_refused.value.status_code == 403

        _grant(service.resource_id, SEARCH_SERVICE_CONTRIBUTOR)
        _grant(service.resource_id, SEARCH_INDEX_DATA_CONTRIBUTOR)
        entra_index_client(service).create_index(chunk_index())
        client = entra_search_client(service)
        client.upload_documents([{"id": "hr-1", "content": "parental leave", "department": "hr"}])

        assert keys_of(client.search("leave", filter="department eq 'hr'")) == ["hr-1"]

    def test_an_entra_token_is_refused_where_only_keys_are_accepted(self, indexed):
        _grant(indexed.resource_id, SEARCH_INDEX_DATA_READER)

        with pytest.raises(HttpResponseError) as refused:
            entra_search_client(indexed).get_document_count()

        assert refused.value.status_code == 403

    def test_no_credential_is_a_401(self, indexed):
        answer = requests.get(
            f"{indexed.endpoint}indexes('chunks')/docs/$count",
            params={"api-version": "2026-04-01"},
            timeout=10,
        )

        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "Unauthorized"


class TestWire:
    def test_an_api_version_is_required(self, indexed):
        answer = requests.get(
            f"{indexed.endpoint}indexes('chunks')/docs/$count",
            headers={"api-key": indexed.admin_key},
            timeout=10,
        )

        assert answer.status_code == 400
        assert "api-version" in answer.json()["error"]["message"]

    def test_search_by_get_and_an_earlier_ga_version(self, indexed):
        answer = requests.get(
            f"{indexed.endpoint}indexes('chunks')/docs",
            params={"api-version": "2024-07-01", "search": "brand logo", "$select": "id", "$top": "1"},
            headers={"api-key": indexed.query_key},
            timeout=10,
        )

        assert answer.status_code == 200
        assert [result["id"] for result in answer.json()["value"]] == ["mkt-1"]

    def test_an_injected_fault_is_retried_by_the_sdk(self, indexed, emulator):
        emulator.inject(operation="search", kind="503", count=1, retry_after_seconds=0)

        assert search_client(indexed).get_document_count() == len(CHUNKS)
        assert emulator.faults() == []


def _grant(scope: str, role: str) -> None:
    from provisioning.azure import authorization_client

    authorization_client(SUBSCRIPTION).role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                "principalId": settings.AZURE_PORTAL_PRINCIPAL_ID,
                "principalType": "ServicePrincipal",
            }
        },
    )
