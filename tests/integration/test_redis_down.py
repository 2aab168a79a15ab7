"""ARCHITECTURE invariant 4: Redis down means a 503 within a bounded time, and recovery by itself.

Each test runs its own ``redis-server`` so that killing or freezing it harms nobody else. The
2-second bound is part of the contract (pinned socket timeouts of 0.5 s, no retries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice import create_app
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

# Starts its own Redis, whatever --redis-topology says: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent

NS = "down"
UNAVAILABLE_BOUND_SECONDS = 2.0
RECOVERY_TIMEOUT_SECONDS = 10.0

Request = Callable[[FlaskClient], TestResponse]

REQUESTS: dict[str, Request] = {
    "get": lambda http: http.get(f"/cache/user:1?namespace={NS}"),
    "set": lambda http: http.post("/cache", json={"key": "user:2", "value": 2, "namespace": NS}),
    "delete": lambda http: http.delete(f"/cache/user:1?namespace={NS}"),
    "batch": lambda http: http.post(
        "/cache/batch", json={"keys": ["user:1", "user:2"], "namespace": NS}
    ),
    "batch-set": lambda http: http.post(
        "/cache/batch-set", json={"entries": [{"key": "user:3", "value": 3}], "namespace": NS}
    ),
    "invalidate": lambda http: http.post(
        "/cache/invalidate", json={"tags": ["t"], "namespace": NS}
    ),
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def app(server: RedisServer) -> Flask:
    return create_app(app_settings(server.url))


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    return authorized_client(app)


def store_user(http: FlaskClient) -> None:
    body = {"key": "user:1", "value": {"name": "Ada"}, "namespace": NS, "tags": ["t"]}
    assert http.post("/cache", json=body).status_code in (200, 201)
    response = http.get(f"/cache/user:1?namespace={NS}")
    assert response.status_code == 200
    assert response.get_json()["value"] == {"name": "Ada"}


def assert_unavailable_quickly(http: FlaskClient, name: str) -> None:
    started = time.monotonic()
    response = REQUESTS[name](http)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, (name, response.get_json())
    body = response.get_json()
    assert body["error"] == "service_unavailable"
    assert set(body) == {"error", "message", "details"}
    assert elapsed < UNAVAILABLE_BOUND_SECONDS, f"{name} took {elapsed:.2f} s"


def wait_for_recovery(http: FlaskClient) -> None:
    """Poll until a write and a read succeed again, on the same app and client."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while True:
        written = http.post("/cache", json={"key": "back", "value": True, "namespace": NS})
        if written.status_code in (200, 201):
            break
        assert written.status_code == 503, written.get_json()
        assert time.monotonic() < deadline, "the service did not recover after Redis came back"
        time.sleep(0.1)
    response = http.get(f"/cache/back?namespace={NS}")
    assert response.status_code == 200
    assert response.get_json() == {"key": "back", "value": True, "namespace": NS}


def test_killed_redis_gives_503_then_recovers_after_restart(
    http: FlaskClient, server: RedisServer
) -> None:
    store_user(http)

    server.kill()

    # Twice each: the first request finds a dead pooled connection, later ones a refused connect.
    for name in ("get", "set", "get", "set", "delete", "batch", "batch-set", "invalidate"):
        assert_unavailable_quickly(http, name)

    server.start()  # Same port, empty: nothing was persisted.

    wait_for_recovery(http)
    assert http.get(f"/cache/user:1?namespace={NS}").status_code == 404
    store_user(http)


def test_frozen_redis_gives_503_within_the_socket_timeout(
    http: FlaskClient, server: RedisServer
) -> None:
    store_user(http)

    server.freeze()
    try:
        # A frozen server accepts connections but never answers: only timeouts end the wait.
        for name in ("get", "set", "batch", "invalidate"):
            assert_unavailable_quickly(http, name)
    finally:
        server.thaw()

    wait_for_recovery(http)
    # A reply that arrived after its request timed out must not be read as another's answer.
    for _ in range(5):
        response = http.get(f"/cache/user:1?namespace={NS}")
        assert response.status_code == 200
        assert response.get_json() == {"key": "user:1", "value": {"name": "Ada"}, "namespace": NS}


def test_redis_never_up_gives_503(database_url: str) -> None:
    # With a real database, so that only Redis is missing (a missing database costs the first
    # request of a process its connection timeout, not what this test measures).
    app = create_app(app_settings(f"redis://127.0.0.1:{free_port()}/0", database_url=database_url))
    http = authorized_client(app)
    for name in REQUESTS:
        assert_unavailable_quickly(http, name)


def test_redis_out_of_memory_is_a_503_that_says_so(server: RedisServer, http: FlaskClient) -> None:
    store_user(http)
    client = server.client()
    # Below what the server already uses: every write, and every read (it counts its hit),
    # is refused with OOM.
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        for name in ("get", "set"):
            response = REQUESTS[name](http)
            assert response.status_code == 503, (name, response.get_json())
            assert response.get_json() == {
                "error": "service_unavailable",
                "message": "Redis is out of memory",
                "details": {"store": "redis", "reason": "out_of_memory"},
            }
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert http.get(f"/cache/user:1?namespace={NS}").status_code == 200
