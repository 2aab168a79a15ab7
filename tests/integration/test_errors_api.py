"""Every failure answers with the contract's envelope ``{error, message, details}``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.store.entries import EntryStore
from tests.conftest import AppFactory
from tests.support.auth import authorized_client


def envelope(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], dict)
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/nope", "/cache/", "/cachex/1", "/docs/nothing"])
def test_unknown_route_is_404_not_found(client: FlaskClient, path: str) -> None:
    envelope(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/cache", {"POST"}),
        ("delete", "/cache", {"POST"}),
        ("get", "/cache", {"POST"}),
        ("patch", "/cache", {"POST"}),
        ("post", "/openapi.json", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    response = getattr(client, method)(path)
    body = envelope(response, 405, "method_not_allowed")
    allow = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method.upper() not in allow
    assert body["details"]["method"] == method.upper()
    assert allowed <= set(body["details"]["allowed"])


def test_body_over_the_limit_is_413(make_app: AppFactory) -> None:
    client = authorized_client(make_app(max_body_bytes=2048))
    small = {"key": "k", "value": "x" * 1900}
    assert client.post("/cache", json=small).status_code == 201
    response = client.post("/cache", json={"key": "big", "value": "x" * 2100})
    body = envelope(response, 413, "payload_too_large")
    assert body["details"]["max_bytes"] == 2048
    assert client.get("/cache/big").status_code == 404
    items = [{"key": f"k{i}", "value": "x" * 100} for i in range(30)]
    envelope(client.post("/cache/batch-set", json={"entries": items}), 413, "payload_too_large")


def test_default_body_limit_is_8_mib(client: FlaskClient) -> None:
    assert client.application.config["MAX_CONTENT_LENGTH"] == 8 * 1024 * 1024


@pytest.mark.parametrize(
    "data",
    [b"{", b'{"key": "k", "value": }', b"{'key': 'k'}", b'{"key": "k", "value": NaN}', b"\xff\xfe"],
)
def test_malformed_json_is_400(client: FlaskClient, data: bytes) -> None:
    response = client.post("/cache", data=data, content_type="application/json")
    body = envelope(response, 400, "invalid_request")
    assert body["message"] == "Request body is not valid JSON"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_body_is_400(client: FlaskClient, content_type: str) -> None:
    data = json.dumps({"key": "k", "value": 1})
    response = client.post("/cache", data=data, content_type=content_type)
    body = envelope(response, 400, "invalid_request")
    assert body["details"]["content_type"] == content_type
    assert client.get("/cache/k").status_code == 404


def test_json_with_charset_is_accepted(client: FlaskClient) -> None:
    data = json.dumps({"key": "k", "value": "é"}, ensure_ascii=False).encode()
    response = client.post("/cache", data=data, content_type="application/json; charset=utf-8")
    assert response.status_code == 201


def test_empty_body_is_400_naming_required_fields(client: FlaskClient) -> None:
    body = envelope(client.post("/cache"), 400, "invalid_request")
    assert set(body["details"]) == {"key", "value"}


def test_top_level_must_be_an_object(client: FlaskClient) -> None:
    envelope(client.post("/cache", json=[1, 2]), 400, "invalid_request")
    envelope(client.post("/cache/batch", json="keys"), 400, "invalid_request")


def test_json_nested_64_deep_is_accepted_and_65_is_not(client: FlaskClient) -> None:
    # The body object is level 1 and the value's outer array level 2.
    ok = f'{{"key": "k", "value": {nested(63)}}}'
    assert client.post("/cache", data=ok, content_type="application/json").status_code == 201
    too_deep = f'{{"key": "k2", "value": {nested(64)}}}'
    response = client.post("/cache", data=too_deep, content_type="application/json")
    body = envelope(response, 400, "invalid_request")
    assert "64" in body["details"]["issue"]
    assert client.get("/cache/k2").status_code == 404


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/cache", f'{{"key": "k", "value": {nested(10_000)}}}'),
        ("/cache", '{"a":' * 10_000 + "1" + "}" * 10_000),
        ("/cache/batch", nested(10_000)),
        ("/cache/batch-set", f'{{"entries": [{{"key": "k", "value": {nested(10_000)}}}]}}'),
        ("/cache/invalidate", nested(10_000)),
    ],
)
def test_json_ten_thousand_deep_is_400_not_500(client: FlaskClient, path: str, data: str) -> None:
    response = client.post(path, data=data, content_type="application/json")
    body = envelope(response, 400, "invalid_request")
    assert body["message"] == "JSON nesting is too deep"


def test_invalid_utf8_in_path_is_400_invalid_key(client: FlaskClient) -> None:
    # WSGI carries the raw path bytes as a latin-1 string; 0xFF alone is not UTF-8.
    response = client.get("/cache/x", environ_overrides={"PATH_INFO": "/cache/\xff"})
    body = envelope(response, 400, "invalid_key")
    assert body["details"]["issue"] == "Path is not valid UTF-8"
    delete = client.delete("/cache/x", environ_overrides={"PATH_INFO": "/cache/a\xc3("})
    envelope(delete, 400, "invalid_key")


def test_valid_utf8_in_raw_path_is_a_key(client: FlaskClient) -> None:
    client.post("/cache", json={"key": "é", "value": 1})
    raw = "/cache/" + "é".encode().decode("latin-1")
    response = client.get("/cache/x", environ_overrides={"PATH_INFO": raw})
    assert response.status_code == 200
    assert response.get_json()["key"] == "é"


def test_validation_error_on_a_list_item_is_400(client: FlaskClient) -> None:
    # Marshmallow keys list-item errors by integer index; the body must still serialise.
    response = client.post("/cache", json={"key": "k", "value": 1, "tags": ["ok", "not ok"]})
    body = envelope(response, 400, "invalid_request")
    assert body["details"]["tags"] == {"1": ["Tag must match ^[A-Za-z0-9_.:-]{1,128}$."]}


def test_unhandled_exception_is_500_without_a_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(EntryStore, "get", explode)
    response = client.get("/cache/k")
    body = envelope(response, 500, "internal_error")
    assert body["details"] == {}
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "secret", "explode", ".py"):
        assert leak not in text


def test_redis_script_error_is_500_without_a_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise redis.ResponseError("ERR Error running script user_script:12")

    monkeypatch.setattr(EntryStore, "set", fail)
    response = client.post("/cache", json={"key": "k", "value": 1})
    body = envelope(response, 500, "internal_error")
    assert "user_script" not in response.get_data(as_text=True)
    assert body["details"] == {}


def test_key_not_found_envelope_matches_the_seed(client: FlaskClient) -> None:
    body = envelope(client.get("/cache/user:1?namespace=users"), 404, "key_not_found")
    assert body["message"] == "Cache key not found"
    assert body["details"]["key"] == "user:1"


def test_invalid_key_envelope_matches_the_seed(client: FlaskClient) -> None:
    body = envelope(
        client.post("/cache", json={"key": "invalid key", "value": 1}), 400, "invalid_key"
    )
    assert body["message"] == "Invalid cache key format"
    assert body["details"]["key"] == "invalid key"
    assert "invalid characters" in body["details"]["issue"]
