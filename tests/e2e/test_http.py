"""The entry API over real HTTP: gunicorn with gevent workers, keep-alive, body limits, docs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

NS = "e2e-http"
TIMEOUT = 30
MIB = 1024 * 1024


class Api:
    """A keep-alive session on the e2e server; paths are relative to its base URL."""

    def __init__(self, session: requests.Session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=TIMEOUT, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def store(self, body: dict[str, Any]) -> None:
        response = self.post("/cache", json=body)
        assert response.status_code in (200, 201), response.text[:500]


@pytest.fixture
def api(base_url: str) -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(session, base_url)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    return body


def test_set_get_delete(api: Api) -> None:
    key = "user:550e8400"
    body = {"key": key, "value": {"name": "Ada"}, "namespace": NS, "ttl": 600, "tags": ["user"]}

    created = api.post("/cache", json=body)
    replaced = api.post("/cache", json=body)
    read = api.get(f"/cache/{key}", params={"namespace": NS, "include_metadata": "true"})
    deleted = api.delete(f"/cache/{key}", params={"namespace": NS})
    gone = api.get(f"/cache/{key}", params={"namespace": NS})
    deleted_again = api.delete(f"/cache/{key}", params={"namespace": NS})

    assert created.status_code == 201
    assert created.json()["created"] is True
    assert replaced.status_code == 200
    assert replaced.json()["created"] is False
    assert read.status_code == 200
    assert read.json()["value"] == {"name": "Ada"}
    assert read.json()["ttl"] == 600
    assert read.json()["tags"] == ["user"]
    assert read.headers["ETag"]
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert_error(gone, 404, "key_not_found")
    assert_error(deleted_again, 404, "key_not_found")


def test_key_with_slash_travels_url_encoded(api: Api) -> None:
    body = {"key": "a/b:c", "value": 1, "namespace": NS}
    api.store(body)

    response = api.get("/cache/a%2Fb%3Ac", params={"namespace": NS})

    assert response.status_code == 200
    assert response.json()["key"] == "a/b:c"


def test_batch_set_then_batch_get(api: Api) -> None:
    keys = [f"batch:{n}" for n in range(3)]
    entries = [{"key": key, "value": {"n": n}, "ttl": 600} for n, key in enumerate(keys)]

    stored = api.post("/cache/batch-set", json={"entries": entries, "namespace": NS})
    read = api.post(
        "/cache/batch",
        json={"keys": [*keys, "batch:missing"], "namespace": NS},
    )

    assert stored.status_code == 200
    assert stored.json()["total_failed"] == 0
    assert stored.json()["total_created"] + stored.json()["total_updated"] == 3
    assert read.status_code == 200
    body = read.json()
    assert [entry["key"] for entry in body["entries"]] == keys
    assert [entry["value"] for entry in body["entries"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert body["missing_keys"] == ["batch:missing"]
    assert (body["total_requested"], body["total_found"]) == (4, 3)


def test_invalidate_by_tag(api: Api) -> None:
    namespace = "e2e-invalidate"
    for key, tags in (("inv:1", ["grp"]), ("inv:2", ["grp", "other"]), ("inv:3", ["other"])):
        body = {"key": key, "value": key, "namespace": namespace, "tags": tags}
        api.store(body)

    response = api.post("/cache/invalidate", json={"tags": ["grp"], "namespace": namespace})

    assert response.status_code == 200
    assert response.json()["total_invalidated"] == 2
    assert sorted(response.json()["invalidated_keys"]) == ["inv:1", "inv:2"]
    statuses = {
        key: api.get(f"/cache/{key}", params={"namespace": namespace}).status_code
        for key in ("inv:1", "inv:2", "inv:3")
    }
    assert statuses == {"inv:1": 404, "inv:2": 404, "inv:3": 200}


def test_keep_alive_session_reuses_one_connection(api: Api) -> None:
    body = {"key": "keepalive", "value": 0, "namespace": NS}
    api.store(body)
    for _ in range(20):
        response = api.get("/cache/keepalive", params={"namespace": NS})
        assert response.status_code == 200
        assert response.headers.get("Connection", "").lower() != "close"

    adapter = api.session.get_adapter(api.base_url)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    manager = adapter.poolmanager
    # urllib3's pool container refuses iteration; keys() is its thread-safe snapshot.
    pools = [manager.pools[key] for key in manager.pools.keys()]  # noqa: SIM118
    assert sum(pool.num_requests for pool in pools) == 21
    assert sum(pool.num_connections for pool in pools) == 1


def test_etag_answers_304_until_the_value_changes(api: Api) -> None:
    url = "/cache/etagged"
    body = {"key": "etagged", "value": {"v": 1}, "namespace": NS}
    api.store(body)
    etag = api.get(url, params={"namespace": NS}).headers["ETag"]

    not_modified = api.get(url, params={"namespace": NS}, headers={"If-None-Match": etag})
    body["value"] = {"v": 2}
    assert api.post("/cache", json=body).status_code == 200
    modified = api.get(url, params={"namespace": NS}, headers={"If-None-Match": etag})

    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    assert modified.status_code == 200
    assert modified.json()["value"] == {"v": 2}
    assert modified.headers["ETag"] != etag


def big_json_body(payload_bytes: int) -> bytes:
    prefix = json.dumps({"key": "big", "namespace": NS, "value": ""}).encode()[:-2]
    return prefix + b"x" * payload_bytes + b'"}'


def test_body_over_the_limit_is_413(api: Api) -> None:
    response = api.post(
        "/cache",
        data=big_json_body(9 * MIB),
        headers={"Content-Type": "application/json"},
    )

    body = assert_error(response, 413, "payload_too_large")
    assert body["details"]["max_bytes"] == 8 * MIB


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_body_is_read(api: Api) -> None:
    value = {"chunked": True, "items": list(range(5000))}
    data = json.dumps({"key": "chunked", "value": value, "namespace": NS}).encode()

    # A generator body makes requests send Transfer-Encoding: chunked, with no Content-Length.
    response = api.post(
        "/cache", data=chunks(data, 4096), headers={"Content-Type": "application/json"}
    )

    assert response.status_code in (200, 201), response.text[:500]
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    read = api.get("/cache/chunked", params={"namespace": NS})
    assert read.json()["value"] == value


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(big_json_body(9 * MIB), id="long-value"),
        # Cut at the limit, this body is still valid JSON: it must not be stored.
        pytest.param(
            json.dumps({"key": "cut", "value": 1, "namespace": NS}).encode() + b" " * 9 * MIB,
            id="padded",
        ),
    ],
)
def test_chunked_body_over_the_limit_is_413(api: Api, data: bytes) -> None:
    response = api.post("/cache", data=chunks(data), headers={"Content-Type": "application/json"})

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    assert api.get("/cache/cut", params={"namespace": NS}).status_code == 404


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.get("/openapi.json")
    docs = api.get("/docs")

    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Cache Service"
    documented = {"/cache", "/cache/{key}", "/cache/batch", "/cache/batch-set", "/cache/invalidate"}
    assert documented <= set(spec.json()["paths"])
    assert docs.status_code == 200
    assert docs.headers["Content-Type"].startswith("text/html")
    assert "swagger" in docs.text.lower()


def test_framework_errors_use_the_envelope(api: Api) -> None:
    assert_error(api.get("/no/such/route"), 404, "not_found")
    assert_error(api.put("/cache", json={}), 405, "method_not_allowed")
    invalid = api.post("/cache", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(invalid, 400, "invalid_request")
