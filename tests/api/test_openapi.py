"""The OpenAPI document is generated from the code, is valid OpenAPI 3.1, and describes every
operation with its problems."""

from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version


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

    assert set(document["paths"]) == {
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
