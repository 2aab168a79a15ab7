"""``/openapi.json`` documents every entry endpoint; ``/docs`` serves the interactive UI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

# A request body of raw bytes or text rather than JSON (PUT /cache/{key}).
RAW = "raw"
OPERATIONS = [
    # (path, method, success status, request body schema or None, response schema or None)
    ("/cache", "post", "201", "SetEntryBody", "SetEntryResult"),
    ("/cache/{key}", "get", "200", None, "Entry"),
    ("/cache/{key}", "delete", "200", None, "DeleteEntryResult"),
    ("/cache/batch", "post", "200", "BatchGetBody", "BatchGetResult"),
    ("/cache/batch-set", "post", "200", "BatchSetBody", "BatchSetResult"),
    ("/cache/invalidate", "post", "200", "InvalidateBody", "InvalidateResult"),
    ("/cache/{key}", "put", "201", RAW, "SetEntryResult"),
    ("/cache/{key}", "patch", "200", "PatchEntryBody", "EntryMetadata"),
    ("/namespaces/{namespace}", "put", "200", "NamespaceConfig", "Namespace"),
    ("/namespaces/{namespace}", "patch", "200", "NamespaceConfig", "Namespace"),
    ("/namespaces/{namespace}", "get", "200", None, "Namespace"),
    ("/namespaces", "get", "200", None, "NamespaceList"),
]


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def json_schema_ref(content_holder: dict[str, Any]) -> str:
    ref: str = content_holder["content"]["application/json"]["schema"]["$ref"]
    return ref


def test_document_header(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Cache Service"
    assert spec["info"]["version"]


def test_every_path_and_method_is_documented(spec: dict[str, Any]) -> None:
    for path, method, *_ in OPERATIONS:
        assert method in spec["paths"][path], (path, method)


@pytest.mark.parametrize(
    ("path", "method", "status", "request_schema", "response_schema"), OPERATIONS
)
def test_operation_schemas(
    spec: dict[str, Any],
    path: str,
    method: str,
    status: str,
    request_schema: str | None,
    response_schema: str | None,
) -> None:
    operation = spec["paths"][path][method]
    assert operation["summary"]
    if request_schema == RAW:
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/octet-stream", "text/plain"}
    elif request_schema is not None:
        assert operation["requestBody"]["required"] is True
        assert json_schema_ref(operation["requestBody"]) == f"#/components/schemas/{request_schema}"
    else:
        assert "requestBody" not in operation
    assert (
        json_schema_ref(operation["responses"][status]) == f"#/components/schemas/{response_schema}"
    )
    # Failures are documented with the error envelope.
    error_responses = [
        resolve(spec, response["$ref"]) if "$ref" in response else response
        for code, response in operation["responses"].items()
        if code == "default" or code.startswith(("4", "5"))
    ]
    assert error_responses
    for response in error_responses:
        assert json_schema_ref(response) == "#/components/schemas/Error"


def test_set_entry_documents_both_success_codes_and_conflicts(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/cache"]["post"]["responses"]
    assert {"200", "201", "409", "413"} <= set(responses)


def test_get_entry_documents_not_modified_and_not_found(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/cache/{key}"]["get"]["responses"]
    assert {"200", "304", "404"} <= set(responses)


def test_key_is_a_path_parameter(spec: dict[str, Any]) -> None:
    path_item = spec["paths"]["/cache/{key}"]
    parameters = path_item.get("parameters", []) + path_item["get"].get("parameters", [])
    key = next(p for p in parameters if p["name"] == "key")
    assert key["in"] == "path"
    assert key["required"] is True
    query = {p["name"] for p in path_item["get"]["parameters"] if p["in"] == "query"}
    assert query == {"namespace", "include_metadata"}


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    found = list(refs(spec))
    assert found
    for ref in found:
        assert resolve(spec, ref) is not None


def test_request_schemas_carry_the_contract_fields(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    body = schemas["SetEntryBody"]
    assert set(body["properties"]) == {
        "key",
        "value",
        "namespace",
        "ttl",
        "expires_at",
        "tags",
        "overwrite",
        "type",
        "sliding",
    }
    assert set(body["required"]) == {"key", "value"}
    assert body["additionalProperties"] is False
    assert body["properties"]["tags"]["maxItems"] == 32
    assert body["properties"]["namespace"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
    assert schemas["BatchGetBody"]["properties"]["keys"]["maxItems"] == 1000
    assert schemas["BatchSetBody"]["properties"]["entries"]["maxItems"] == 1000
    assert set(schemas["InvalidateBody"]["properties"]) == {
        "namespace",
        "tags",
        "match",
        "pattern",
        "keys",
    }


def test_response_schemas_carry_the_contract_fields(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["Entry"]["properties"]) == {
        "key",
        "value",
        "namespace",
        "type",
        "ttl",
        "ttl_remaining",
        "created_at",
        "updated_at",
        "expires_at",
        "hit_count",
        "last_accessed",
        "tags",
        "size_bytes",
        "stored_bytes",
        "compression",
        # Beyond the contract's list, and sent with include_metadata (schemathesis found the
        # document missing them): whether reads slide the expiry, a list's or set's length.
        "sliding",
        "length",
    }
    assert set(schemas["Error"]["required"]) == {"error", "message", "details"}
    assert {"invalidated_keys", "total_invalidated", "truncated", "invalidated_at"} <= set(
        schemas["InvalidateResult"]["properties"]
    )
    assert {"total_created", "total_updated", "total_failed"} <= set(
        schemas["BatchSetResult"]["properties"]
    )
    assert {"entries", "missing_keys", "total_requested", "total_found"} <= set(
        schemas["BatchGetResult"]["properties"]
    )


def test_docs_page(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "swagger-ui" in page
    assert "/openapi.json" in page
