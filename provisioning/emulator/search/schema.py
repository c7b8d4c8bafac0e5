"""An index definition as Azure takes it: the checks a create or update must pass (a name Azure
accepts, exactly one key field of type Edm.String, known field types, vector fields with
dimensions and a vector search profile whose algorithm exists; no change to an existing field),
and the definition as Azure returns it, every attribute given its default."""

import re
import uuid
from typing import Any

from provisioning.emulator.search.errors import bad_request

INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
SCALAR_TYPES = {
    "Edm.String",
    "Edm.Int32",
    "Edm.Int64",
    "Edm.Double",
    "Edm.Boolean",
    "Edm.DateTimeOffset",
    "Edm.GeographyPoint",
}
VECTOR_TYPES = {
    "Collection(Edm.Single)",
    "Collection(Edm.Half)",
    "Collection(Edm.Int16)",
    "Collection(Edm.SByte)",
    "Collection(Edm.Byte)",
}
COLLECTION_TYPES = {f"Collection({kind})" for kind in SCALAR_TYPES}
MAX_DIMENSIONS = 4096
# The attributes of a field whose value cannot change once the index exists.
FIXED_ATTRIBUTES = ("type", "key", "searchable", "filterable", "sortable", "facetable", "dimensions")


def is_vector(field: dict[str, Any]) -> bool:
    return field.get("type") in VECTOR_TYPES


def normalized_index(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The definition after Azure's checks, with every default filled in."""
    if body.get("name") not in (None, name):
        raise bad_request(
            f"The index name '{body.get('name')}' in the request body does not match the name '{name}' in the URL."
        )
    check_index_name(name)
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields:
        raise bad_request(
            "The request is invalid. Details: index.fields : The index must contain at least one field."
        )
    vector_search = body.get("vectorSearch") or {}
    normalized = [_normalized_field(field, vector_search) for field in fields]
    names = [field["name"] for field in normalized]
    duplicates = sorted({field for field in names if names.count(field) > 1})
    if duplicates:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The field '{duplicates[0]}' appears more than once."
        )
    keys = [field for field in normalized if field["key"]]
    if len(keys) != 1:
        raise bad_request(
            "The request is invalid. Details: index.fields : The index must contain exactly one key field."
        )
    if keys[0]["type"] != "Edm.String":
        raise bad_request(
            f"The request is invalid. Details: index.fields : The key field '{keys[0]['name']}' must be of type Edm.String."
        )
    return {
        "name": name,
        "description": body.get("description"),
        "defaultScoringProfile": body.get("defaultScoringProfile"),
        "fields": normalized,
        "scoringProfiles": body.get("scoringProfiles") or [],
        "corsOptions": body.get("corsOptions"),
        "suggesters": body.get("suggesters") or [],
        "analyzers": body.get("analyzers") or [],
        "tokenizers": body.get("tokenizers") or [],
        "tokenFilters": body.get("tokenFilters") or [],
        "charFilters": body.get("charFilters") or [],
        "normalizers": body.get("normalizers") or [],
        "encryptionKey": body.get("encryptionKey"),
        "similarity": body.get("similarity") or {"@odata.type": "#Microsoft.Azure.Search.BM25Similarity"},
        "semantic": body.get("semantic"),
        "vectorSearch": body.get("vectorSearch"),
    }


def check_index_name(name: str) -> None:
    if not INDEX_NAME.match(name) or name.endswith("-") or "--" in name:
        raise bad_request(
            f"Invalid index name '{name}'. Index names must contain only lowercase letters, digits or dashes, "
            "cannot start or end with dashes, cannot contain consecutive dashes and are limited to 128 characters."
        )


def _normalized_field(field: Any, vector_search: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(field, dict) or not isinstance(field.get("name"), str):
        raise bad_request("The request is invalid. Details: index.fields : Every field needs a name.")
    name, kind = field["name"], field.get("type")
    if not FIELD_NAME.match(name):
        raise bad_request(f"The request is invalid. Details: index.fields : Invalid field name '{name}'.")
    if kind not in SCALAR_TYPES | VECTOR_TYPES | COLLECTION_TYPES:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The field '{name}' has an unsupported type '{kind}'."
        )
    text = kind in ("Edm.String", "Collection(Edm.String)")
    vector = kind in VECTOR_TYPES
    collection = kind.startswith("Collection(")
    normalized = {
        "name": name,
        "type": kind,
        "searchable": _flag(field, "searchable", text or vector),
        "filterable": _flag(field, "filterable", not vector),
        "retrievable": _flag(field, "retrievable", True),
        "stored": _flag(field, "stored", True),
        "sortable": _flag(field, "sortable", not vector and not collection),
        "facetable": _flag(field, "facetable", not vector and kind != "Edm.GeographyPoint"),
        "key": _flag(field, "key", False),
        "analyzer": field.get("analyzer"),
        "searchAnalyzer": field.get("searchAnalyzer"),
        "indexAnalyzer": field.get("indexAnalyzer"),
        "normalizer": field.get("normalizer"),
        "dimensions": field.get("dimensions"),
        "vectorSearchProfile": field.get("vectorSearchProfile"),
        "vectorEncoding": field.get("vectorEncoding"),
        "synonymMaps": field.get("synonymMaps") or [],
    }
    if vector:
        _check_vector_field(normalized, vector_search)
    elif normalized["dimensions"] is not None or normalized["vectorSearchProfile"] is not None:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The field '{name}' is not a vector field; "
            "dimensions and vectorSearchProfile apply to Collection(Edm.Single) fields only."
        )
    if text and normalized["searchable"] is False and normalized["analyzer"]:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The field '{name}' is not searchable and cannot have an analyzer."
        )
    return normalized


def _flag(field: dict[str, Any], name: str, default: bool) -> bool:
    value = field.get(name)
    if name == "retrievable" and value is None and isinstance(field.get("hidden"), bool):
        return not field["hidden"]
    return default if value is None else bool(value)


def _check_vector_field(field: dict[str, Any], vector_search: dict[str, Any]) -> None:
    name = field["name"]
    dimensions = field["dimensions"]
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 2 <= dimensions <= MAX_DIMENSIONS
    ):
        raise bad_request(
            f"The request is invalid. Details: index.fields : The vector field '{name}' must have the property 'dimensions' set, between 2 and {MAX_DIMENSIONS}."
        )
    if not field["searchable"]:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The vector field '{name}' must be searchable."
        )
    if field["filterable"] or field["sortable"] or field["facetable"] or field["key"]:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The vector field '{name}' cannot be filterable, sortable, facetable or a key."
        )
    profile_name = field["vectorSearchProfile"]
    if not profile_name:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The vector field '{name}' must have the property 'vectorSearchProfile' set."
        )
    profiles = {profile.get("name"): profile for profile in vector_search.get("profiles") or []}
    profile = profiles.get(profile_name)
    if profile is None:
        raise bad_request(
            f"The request is invalid. Details: index.fields : The vector search profile '{profile_name}' of field '{name}' is not defined in vectorSearch.profiles."
        )
    algorithms = {algorithm.get("name") for algorithm in vector_search.get("algorithms") or []}
    if profile.get("algorithm") not in algorithms:
        raise bad_request(
            f"The request is invalid. Details: vectorSearch.profiles : The algorithm configuration '{profile.get('algorithm')}' of profile '{profile_name}' is not defined in vectorSearch.algorithms."
        )


def check_changeable(existing: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Fields may be added to an index, never removed or changed."""
    new = {field["name"]: field for field in wanted["fields"]}
    for field in existing["fields"]:
        after = new.get(field["name"])
        if after is None or any(
            after.get(attribute) != field.get(attribute) for attribute in FIXED_ATTRIBUTES
        ):
            raise bad_request(
                f"Existing field '{field['name']}' cannot be changed or removed. To change a field, rebuild the index.",
                code="OperationNotAllowed",
            )


def new_etag() -> str:
    return f'"0x{uuid.uuid4().hex[:15].upper()}"'
