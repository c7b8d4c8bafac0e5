"""The OpenAPI document is generated from the code, is valid OpenAPI 3.1, and describes every
operation with its problems."""

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from api.tokens import access_token_create
from tests.api.conftest import bearer, token_for


def test_the_document_is_valid_openapi_3_1(anonymous, db):
    response = anonymous.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    assert get_spec_version(document).major == "3"
    assert get_spec_version(document).minor == "1"


def test_it_describes_the_operations_their_security_and_problems(anonymous, db):
    document = anonymous.get("/api/v1/openapi.json").json()

    assert set(document["paths"]) >= {
        "/api/v1/me",
        "/api/v1/me/tokens",
        "/api/v1/me/tokens/{token_id}",
        "/api/v1/departments",
        "/api/v1/departments/{slug}",
        "/api/v1/departments/{slug}/memberships",
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["SessionAuth"]["in"] == "cookie"
    listing = document["paths"]["/api/v1/departments"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"cursor", "limit"}
    assert listing["responses"]["401"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    money = document["components"]["schemas"]["Money"]
    assert money["properties"]["amount"]["type"] == "string"


def _validate(document, path: str, method: str, response) -> None:
    """The answer's body against what the document says this operation answers with this status."""
    answers = document["paths"][path][method]["responses"][str(response.status_code)]
    media_type = response["Content-Type"].split(";")[0]
    schema = answers["content"][media_type]["schema"]
    OAS31Validator({**schema, "components": document["components"]}).validate(response.json())


def test_every_answer_matches_the_document(anonymous, platform_admin, marketing_lead, marketing_member):
    document = anonymous.get("/api/v1/openapi.json").json()
    token, raw = access_token_create(user=platform_admin, name="Schema check", actor=None)
    admin = bearer(raw)
    calls = [
        (admin, "get", "/api/v1/me", "/api/v1/me"),
        (admin, "get", "/api/v1/me/tokens", "/api/v1/me/tokens"),
        (admin, "get", "/api/v1/departments?limit=1", "/api/v1/departments"),
        (admin, "get", "/api/v1/departments/marketing", "/api/v1/departments/{slug}"),
        (admin, "get", "/api/v1/departments/marketing/memberships", "/api/v1/departments/{slug}/memberships"),
        (admin, "get", "/api/v1/departments/nowhere", "/api/v1/departments/{slug}"),
        (admin, "get", "/api/v1/departments?limit=0", "/api/v1/departments"),
        (admin, "get", "/api/v1/departments?cursor=forged", "/api/v1/departments"),
        (anonymous, "get", "/api/v1/me", "/api/v1/me"),
        (
            bearer(token_for(marketing_member)),
            "get",
            "/api/v1/departments/marketing",
            "/api/v1/departments/{slug}",
        ),
        (admin, "delete", f"/api/v1/me/tokens/{token.pk}", "/api/v1/me/tokens/{token_id}"),
    ]
    seen = set()
    for client, method, url, path in calls:
        response = getattr(client, method)(url)
        _validate(document, path, method, response)
        seen.add(response.status_code)

    assert seen == {200, 400, 401, 403, 404, 422}
