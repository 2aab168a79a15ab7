"""Hostile input: each case answers the contract's 4xx envelope, fast, and changes nothing.

Cases already asserted elsewhere (tests/integration/test_errors_api.py, test_entries_api.py,
test_batch_api.py, test_invalidate_api.py) are not repeated for their status alone; here each
one is also timed, and the endpoints those files leave out are covered. Raw sockets (chunked
bodies, undecodable path bytes on the wire) are in tests/e2e/test_input_abuse_http.py.

Timing: every case is sent three times and the fastest answer must take under 50 ms. On a
shared 2-core CI machine a single attempt can lose its time slice to another process; the
fastest of three measures the service's own work, which is what a slow parse would show in.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import AppFactory
from tests.support.auth import authorized_client

# Input handling, the same code on every topology (invalidation itself runs on the cluster
# pass in test_invalidate_api.py): run once.
pytestmark = pytest.mark.topology_independent

LIMIT_SECONDS = 0.050
ATTEMPTS = 3
MIB = 1024 * 1024
FIVE_THOUSAND_DIGITS = "9" * 5000
USER = "e3e70682-c209-1cac-a29f-6fbed82c07cd"
MUST_BE_JSON = "Request body must be JSON"
NOT_JSON = "Request body is not valid JSON"
RAW_PUT = "PUT takes a raw body: application/octet-stream or text/plain"
# Every case's fastest time, printed at the end of the module (``-s``) for the README.
TIMINGS: dict[str, list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def timing_summary() -> Iterator[None]:
    yield
    times = [best for bests in TIMINGS.values() for best in bests]
    if times:
        print(
            f"\ninput abuse: {len(times)} timed requests, fastest-of-{ATTEMPTS} median "
            f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms"
        )
        for case, bests in sorted(TIMINGS.items()):
            print(f"  {case}: max {max(bests) * 1000:.2f} ms")


def fastest(case: str, send: Callable[[], TestResponse]) -> TestResponse:
    """Send the request three times; assert every answer is the same, and the fastest quick."""
    answers: list[TestResponse] = []
    best = float("inf")
    for _ in range(ATTEMPTS):
        started = time.perf_counter()
        response = send()
        response.get_data()
        best = min(best, time.perf_counter() - started)
        answers.append(response)
    assert len({(a.status_code, a.get_data()) for a in answers}) == 1, "answers differ"
    TIMINGS.setdefault(case, []).append(best)
    assert best < LIMIT_SECONDS, f"{case}: fastest of {ATTEMPTS} took {best * 1000:.1f} ms"
    return answers[0]


def envelope(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data()[:300]
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    assert isinstance(body["details"], dict)
    return body


def post_raw(
    client: FlaskClient, path: str, data: bytes | str, content_type: str = "application/json"
) -> Callable[[], TestResponse]:
    return lambda: client.post(path, data=data, content_type=content_type)


def stored_keys(client: FlaskClient, namespace: str = "default") -> int:
    """How many of the probe keys exist (nothing a refused request sent may be stored)."""
    probe = ["k", "k2", "big", "a" * 250]
    body = client.post("/cache/batch", json={"keys": probe, "namespace": namespace}).get_json()
    found: int = body["total_found"]
    return found


# Keys at the 250-byte limit


KEY_250 = "k" * 248 + "é"  # 248 + 2 bytes
KEY_251 = "k" * 249 + "é"  # 249 + 2 bytes: 250 characters, one byte too many


def test_key_of_250_bytes_is_stored_everywhere(client: FlaskClient) -> None:
    assert len(KEY_250.encode()) == 250
    assert client.post("/cache", json={"key": KEY_250, "value": 1}).status_code == 201
    assert client.get(f"/cache/{KEY_250}").get_json()["key"] == KEY_250
    put = client.put(f"/cache/{KEY_250}", data=b"raw", content_type="application/octet-stream")
    assert put.status_code == 200
    assert client.delete(f"/cache/{KEY_250}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/cache", {"key": KEY_251, "value": 1}),
        ("get", f"/cache/{KEY_251}", None),
        ("put", f"/cache/{KEY_251}", None),
        ("patch", f"/cache/{KEY_251}", {"ttl": 60}),
        ("delete", f"/cache/{KEY_251}", None),
        ("post", "/cache/batch", {"keys": ["ok", KEY_251]}),
        ("post", "/cache/invalidate", {"keys": ["ok", KEY_251]}),
    ],
)
def test_key_of_251_bytes_is_400_invalid_key(
    client: FlaskClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert len(KEY_251.encode()) == 251
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    if method == "put":
        kwargs = {"data": b"raw", "content_type": "application/octet-stream"}
    response = fastest(
        f"key 251 bytes {method} {path[:12]}", lambda: client.open(path, method=method, **kwargs)
    )
    details = envelope(response, 400, "invalid_key")["details"]
    assert details["key"] == KEY_251
    assert details["issue"] == "Key is 251 bytes long; at most 250 are allowed"
    if path.startswith("/cache/batch") or path.startswith("/cache/invalidate"):
        assert details["index"] == 1
    assert client.post("/cache/batch", json={"keys": [KEY_251[:-1]]}).status_code == 200


def test_key_of_251_bytes_fails_alone_in_batch_set(client: FlaskClient) -> None:
    items = [{"key": "ok", "value": 1}, {"key": KEY_251, "value": 2}]
    response = client.post("/cache/batch-set", json={"entries": items})
    body = response.get_json()
    assert response.status_code == 200
    assert body["total_created"] == 1
    assert body["total_failed"] == 1
    assert body["entries"][1]["error"]["error"] == "invalid_key"
    assert body["entries"][1]["error"]["details"]["key"] == KEY_251


# Control characters


CONTROL_KEYS = ["nul\x00", "esc\x1b[0m", "del\x7f", "nel\x85", "csi\x9b", "line\u2028sep"]


@pytest.mark.parametrize("key", CONTROL_KEYS)
def test_control_characters_in_a_path_key_are_400(client: FlaskClient, key: str) -> None:
    # The test client percent-encodes the path; the service decodes it back to the key.
    response = fastest(f"control char in path {key[:3]}", lambda: client.get(f"/cache/{key}"))
    details = envelope(response, 400, "invalid_key")["details"]
    assert details["key"] == key
    assert "invalid characters" in details["issue"]


@pytest.mark.parametrize("key", CONTROL_KEYS)
def test_control_characters_in_body_keys_are_400(client: FlaskClient, key: str) -> None:
    write = fastest(
        f"control char in body {key[:3]}",
        lambda: client.post("/cache", json={"key": key, "value": 1}),
    )
    assert envelope(write, 400, "invalid_key")["details"]["key"] == key
    batch = client.post("/cache/batch", json={"keys": [key]})
    assert envelope(batch, 400, "invalid_key")["details"]["index"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("namespace", "ns\x00"), ("namespace", "ns\n"), ("tags", ["t\x00"]), ("tags", ["t\x1b"])],
)
def test_control_characters_in_other_fields_are_400(
    client: FlaskClient, field: str, value: Any
) -> None:
    body = {"key": "k", "value": 1, field: value}
    response = fastest(f"control char in {field}", lambda: client.post("/cache", json=body))
    assert set(envelope(response, 400, "invalid_request")["details"]) == {field}


@pytest.mark.parametrize("data", [{"a": "\x00"}, {"\x00": 1}, {"a": [{"b": "x\x00y"}]}])
def test_nul_in_session_data_is_400_not_500(client: FlaskClient, data: dict[str, Any]) -> None:
    # Postgres jsonb cannot hold U+0000: found by schemathesis as a 500 before the check.
    body = {"user_id": USER, "data": data}
    response = fastest("NUL in session data", lambda: client.post("/sessions", json=body))
    details = envelope(response, 400, "invalid_request")["details"]
    assert "NUL" in details["data"][0]
    listed = client.get(f"/users/{USER}/sessions").get_json()
    assert listed["total"] == 0


# Invalid UTF-8 in the path (the raw bytes as WSGI carries them: a latin-1 string)


@pytest.mark.parametrize(
    ("method", "raw_path"),
    [
        ("get", "/cache/\xff"),
        ("put", "/cache/ok\xc3"),  # a truncated two-byte sequence
        ("delete", "/cache/\xed\xa0\x80"),  # an encoded surrogate
        ("patch", "/cache/\xc0\xaf"),  # an overlong "/"
        ("get", "/namespaces/\xff"),
        ("get", "/sessions/\xfe"),
    ],
)
def test_invalid_utf8_in_the_raw_path_is_400_invalid_key(
    client: FlaskClient, method: str, raw_path: str
) -> None:
    response = fastest(
        f"invalid UTF-8 path {raw_path[:12]!r}",
        lambda: client.open(
            "/cache/x",
            method=method,
            json={"ttl": 5},
            environ_overrides={"PATH_INFO": raw_path},
        ),
    )
    details = envelope(response, 400, "invalid_key")["details"]
    assert details["issue"] == "Path is not valid UTF-8"


# Deep JSON


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP = nested(10_000)


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/cache", f'{{"key": "k", "value": {DEEP}}}'),
        ("post", "/cache/batch-set", f'{{"entries": [{{"key": "k", "value": {DEEP}}}]}}'),
        ("patch", "/cache/k", f'{{"append": {DEEP}}}'),
        (
            "post",
            "/sessions",
            f'{{"user_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd", "data": {{"a": {DEEP}}}}}',
        ),
        ("patch", "/sessions/c9.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", f'{{"data": {{"a": {DEEP}}}}}'),
        ("put", "/namespaces/deep", '{"compression":' * 10_000 + "{}" + "}" * 10_000),
        ("post", "/cache/invalidate", '{"keys":' * 10_000 + "[]" + "}" * 10_000),
    ],
)
def test_json_ten_thousand_deep_is_400_quickly(
    client: FlaskClient, method: str, path: str, data: str
) -> None:
    response = fastest(
        f"10k-deep JSON {method} {path[:14]}",
        lambda: client.open(path, method=method, data=data, content_type="application/json"),
    )
    body = envelope(response, 400, "invalid_request")
    assert body["message"] == "JSON nesting is too deep"
    assert body["details"]["issue"] == "JSON may nest at most 64 levels"
    assert stored_keys(client) == 0


# 5,000-digit integers


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/cache", f'{{"key": "k", "value": {FIVE_THOUSAND_DIGITS}}}'),
        ("/cache", f'{{"key": "k", "value": 1, "ttl": {FIVE_THOUSAND_DIGITS}}}'),
        ("/cache", f'{{"key": "k", "value": [-{FIVE_THOUSAND_DIGITS}]}}'),
        ("/cache/batch-set", f'{{"entries": [{{"key": "k", "value": {FIVE_THOUSAND_DIGITS}}}]}}'),
        ("/sessions", f'{{"user_id": "u", "data": {{}}, "ttl": {FIVE_THOUSAND_DIGITS}}}'),
    ],
)
def test_five_thousand_digit_integers_in_bodies_are_400(
    client: FlaskClient, path: str, data: str
) -> None:
    # Python refuses to parse integers longer than 4300 digits (CVE-2020-10735): the parse
    # fails fast instead of taking quadratic time, and the body is "not valid JSON".
    response = fastest(f"5000-digit integer {path}", post_raw(client, path, data))
    body = envelope(response, 400, "invalid_request")
    assert body["message"] == "Request body is not valid JSON"
    assert "digits" in body["details"]["issue"]
    assert stored_keys(client) == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/cache/k?ttl={FIVE_THOUSAND_DIGITS}", "ttl"),
        (f"/cache/statistics?top={FIVE_THOUSAND_DIGITS}", "top"),
    ],
)
def test_five_thousand_digit_integers_in_queries_are_400(
    client: FlaskClient, path: str, field: str
) -> None:
    method = "put" if path.startswith("/cache/k") else "get"
    response = fastest(
        f"5000-digit integer query {field}",
        lambda: client.open(
            path, method=method, data=b"v", content_type="application/octet-stream"
        ),
    )
    assert set(envelope(response, 400, "invalid_request")["details"]) == {field}
    assert stored_keys(client) == 0


def test_large_exact_integers_below_the_digit_limit_are_values(client: FlaskClient) -> None:
    # The limit is Python's, not a rule about values: 4,000 digits are stored exactly.
    digits = "7" * 4000
    data = f'{{"key": "k", "value": {digits}}}'
    assert post_raw(client, "/cache", data)().status_code == 201
    assert client.get("/cache/k").get_data(as_text=True) == (
        f'{{"key":"k","value":{digits},"namespace":"default"}}'
    )


# Bodies of 8 MiB + 1


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("post", "/cache", "application/json"),
        ("put", "/cache/big", "application/octet-stream"),
        ("put", "/cache/big", "text/plain"),
        ("post", "/cache/batch", "application/json"),
        ("post", "/cache/batch-set", "application/json"),
        ("post", "/cache/invalidate", "application/json"),
        ("post", "/sessions", "application/json"),
        ("put", "/namespaces/big", "application/json"),
    ],
)
def test_body_of_8_mib_plus_one_is_413(
    client: FlaskClient, method: str, path: str, content_type: str
) -> None:
    prefix = b'{"key": "big", "value": "'
    data = prefix + b"x" * (8 * MIB + 1 - len(prefix) - 2) + b'"}'
    assert len(data) == 8 * MIB + 1
    response = fastest(
        f"8 MiB + 1 {method} {path}",
        lambda: client.open(path, method=method, data=data, content_type=content_type),
    )
    body = envelope(response, 413, "payload_too_large")
    assert body["details"] == {"max_bytes": 8 * MIB}
    assert client.get("/cache/big").status_code == 404


def test_body_of_exactly_8_mib_is_read(make_app: AppFactory) -> None:
    # At the limit the body is parsed (and then refused for the value's own limit, 1 MiB).
    client = authorized_client(make_app())
    prefix = b'{"key": "big", "value": "'
    data = prefix + b"x" * (8 * MIB - len(prefix) - 2) + b'"}'
    response = client.post("/cache", data=data, content_type="application/json")
    assert envelope(response, 413, "value_too_large")["details"]


# Content-Type lies


@pytest.mark.parametrize(
    ("method", "path", "data", "content_type", "message"),
    [
        # JSON labelled as something else.
        (
            "post",
            "/cache",
            b'{"key": "k", "value": 1}',
            "multipart/form-data; boundary=x",
            "Request body must be JSON",
        ),
        (
            "post",
            "/cache/batch",
            b'{"keys": ["k"]}',
            "application/octet-stream",
            "Request body must be JSON",
        ),
        ("post", "/cache/invalidate", b"{}", "text/html", MUST_BE_JSON),
        (
            "post",
            "/sessions",
            b'{"user_id": "u", "data": {}}',
            "text/plain",
            "Request body must be JSON",
        ),
        # Something else labelled as JSON.
        ("post", "/cache", b"key=k&value=1", "application/json", NOT_JSON),
        (
            "post",
            "/cache",
            b"\x89PNG\r\n\x1a\n",
            "application/json",
            "Request body is not valid JSON",
        ),
        (
            "post",
            "/cache",
            '{"key": "k", "value": "é"}'.encode("utf-16"),
            "application/json",
            "Request body is not valid JSON",
        ),
        (
            "post",
            "/cache/batch-set",
            b"<entries/>",
            "application/json; charset=utf-8",
            "Request body is not valid JSON",
        ),
        # A raw PUT that claims JSON, or text that is not UTF-8.
        (
            "put",
            "/cache/k",
            b'"v"',
            "application/json",
            "PUT takes a raw body: application/octet-stream or text/plain",
        ),
        ("put", "/cache/k", b"caf\xe9", "text/plain", "A text/plain body must be UTF-8"),
        (
            "put",
            "/cache/k",
            b"v",
            "",
            "PUT takes a raw body: application/octet-stream or text/plain",
        ),
    ],
)
def test_content_type_lies_are_400(
    client: FlaskClient, method: str, path: str, data: bytes, content_type: str, message: str
) -> None:
    response = fastest(
        f"Content-Type lie {method} {path} {content_type[:16]}",
        lambda: client.open(path, method=method, data=data, content_type=content_type),
    )
    assert envelope(response, 400, "invalid_request")["message"] == message
    assert stored_keys(client) == 0


def test_missing_body_is_400_where_a_body_is_required(client: FlaskClient) -> None:
    client.post("/cache", json={"key": "k", "value": 1})
    # Read as {}, a bodiless invalidation would have emptied the default namespace.
    response = fastest("missing body invalidate", lambda: client.post("/cache/invalidate"))
    body = envelope(response, 400, "invalid_request")
    assert body["message"] == "Request body is required"
    assert client.get("/cache/k").status_code == 200
    reset = client.put("/namespaces/fresh")
    assert envelope(reset, 400, "invalid_request")["message"] == "Request body is required"
    assert client.get("/namespaces/fresh").get_json()["configured"] is False


# Batches of 1001


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/cache/batch", {"keys": [f"k{i}" for i in range(1001)]}, "keys"),
        (
            "/cache/batch-set",
            {"entries": [{"key": f"k{i}", "value": i} for i in range(1001)]},
            "entries",
        ),
        ("/cache/invalidate", {"keys": [f"k{i}" for i in range(1001)]}, "keys"),
    ],
)
def test_batch_of_1001_is_400_quickly(
    client: FlaskClient, path: str, body: dict[str, Any], field: str
) -> None:
    data = json.dumps(body)
    response = fastest(f"batch of 1001 {path}", post_raw(client, path, data))
    details = envelope(response, 400, "invalid_request")["details"]
    assert details == {field: ["Length must be between 1 and 1000."]}
    assert (
        client.post("/cache/batch", json={"keys": ["k0", "k1000"]}).get_json()["total_found"] == 0
    )


# Invalidation that tries to leave its namespace


@pytest.fixture
def two_namespaces(client: FlaskClient) -> FlaskClient:
    for namespace in ("mine", "theirs"):
        items = [
            {"key": key, "value": 1, "tags": ["t"]}
            for key in ("a", "{x}", "b\\c", "*", "cs:{theirs:0}:e:a")
        ]
        body = {"entries": items, "namespace": namespace}
        assert client.post("/cache/batch-set", json=body).get_json()["total_failed"] == 0
    return client


def keys_of(client: FlaskClient, namespace: str) -> set[str]:
    probe = ["a", "{x}", "b\\c", "*", "cs:{theirs:0}:e:a"]
    body = client.post("/cache/batch", json={"keys": probe, "namespace": namespace}).get_json()
    return {entry["key"] for entry in body["entries"]}


@pytest.mark.parametrize(
    ("body", "field", "issue"),
    [
        ({"namespace": "*"}, "namespace", None),
        ({"namespace": "{theirs}"}, "namespace", None),
        ({"namespace": "theirs\\"}, "namespace", None),
        ({"namespace": "mine}:*"}, "namespace", None),
        ({"namespace": "mine", "pattern": "a\\"}, "pattern", "backslash"),
        ({"namespace": "mine", "pattern": "*\\"}, "pattern", "backslash"),
        ({"namespace": "mine", "pattern": "[a-"}, "pattern", "unterminated"),
        ({"namespace": "mine", "tags": ["*"]}, "tags", None),
        ({"namespace": "mine", "tags": ["t}"]}, "tags", None),
    ],
)
def test_namespace_escapes_are_400(
    two_namespaces: FlaskClient, body: dict[str, Any], field: str, issue: str | None
) -> None:
    client = two_namespaces
    response = fastest(
        f"invalidate escape {field} {json.dumps(body)[:30]}",
        lambda: client.post("/cache/invalidate", json=body),
    )
    details = envelope(response, 400, "invalid_request")["details"]
    assert field in details
    if issue is not None:
        assert issue in details["issue"].lower()
    assert (
        keys_of(client, "mine")
        == keys_of(client, "theirs")
        == {
            "a",
            "{x}",
            "b\\c",
            "*",
            "cs:{theirs:0}:e:a",
        }
    )


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("*", {"a", "{x}", "b\\c", "*", "cs:{theirs:0}:e:a"}),
        ("{*", {"{x}"}),
        ("\\*", {"*"}),
        ("b\\\\c", {"b\\c"}),
        ("cs:{theirs:*", {"cs:{theirs:0}:e:a"}),
    ],
)
def test_glob_characters_match_only_keys_of_the_namespace(
    two_namespaces: FlaskClient, pattern: str, matched: set[str]
) -> None:
    # A valid glob is a 200, but it is matched against the keys of the named namespace only:
    # braces or a Redis key prefix in it are literal characters of keys, never key names.
    client = two_namespaces
    response = client.post("/cache/invalidate", json={"namespace": "mine", "pattern": pattern})
    assert response.status_code == 200
    assert set(response.get_json()["invalidated_keys"]) == matched
    assert keys_of(client, "theirs") == {"a", "{x}", "b\\c", "*", "cs:{theirs:0}:e:a"}
