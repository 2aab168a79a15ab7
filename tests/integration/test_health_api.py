"""``GET /cache/health`` against the real Redis and Postgres, and a throwaway Redis to kill.

Health is public and rate limited per client address; it reports ``unhealthy`` (503) when Redis
is down, ``degraded`` when Postgres or the workers are, and counts probes for its uptime.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice import create_app
from cacheservice.metrics.health import FLUSH_TASK, record_probe
from cacheservice.metrics.recorder import SERVICE
from cacheservice.services import Services
from cacheservice.store.keys import TaskKeys
from cacheservice.store.locks import mark_completed
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.topology import CLUSTER

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MS_TEXT = re.compile(r"^\d+(\.\d+)?(e[+-]?\d+)?ms$")
ANSWER_BOUND_SECONDS = 2.0
SEED_FIELDS = {
    "status",
    "version",
    "uptime",
    "memory_usage",
    "connections",
    "performance",
    "redis",
    "last_updated",
}
SEED_SECTIONS = {
    "memory_usage": {"used_mb", "total_mb", "usage_percentage"},
    "connections": {"active", "max", "usage_percentage"},
    "performance": {
        "average_response_time",
        "p95_response_time",
        "p99_response_time",
        "error_rate",
    },
    "redis": {"status", "version", "memory_usage", "connected_clients", "maxmemory_policy"},
    "postgres": {"status", "latency_ms"},
    "workers": {"status", "last_flush_at", "flush_lag_seconds"},
}


def unused_database() -> str:
    """A Postgres URL nothing listens on."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/x"


def found(app: Flask) -> Services:
    services: Services = app.extensions["cacheservice"]
    return services


@pytest.fixture
def build(redis_client: redis.Redis, redis_url: str, database_url: str) -> Iterator[Any]:
    """Build apps on the test databases (or others); shut down (pools closed) afterwards."""
    apps: list[Flask] = []

    def make(redis_url: str = redis_url, **overrides: Any) -> Flask:
        overrides.setdefault("database_url", database_url)
        app = create_app(app_settings(redis_url, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        found(app).shutdown()


@pytest.fixture
def app(build: Any) -> Flask:
    app: Flask = build()
    return app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def health(http: FlaskClient, address: str = "127.0.0.1") -> TestResponse:
    return http.get("/cache/health", environ_base={"REMOTE_ADDR": address})


def assert_shape(body: dict[str, Any]) -> None:
    """Every seed field and every contract addition, also when their source is down."""
    assert set(body) >= SEED_FIELDS | {"postgres", "workers", "uptime_seconds"}
    for section, names in SEED_SECTIONS.items():
        assert isinstance(body[section], dict), section
        assert set(body[section]) >= names, section
    assert body["status"] in ("healthy", "degraded", "unhealthy")
    assert isinstance(body["version"], str)
    assert body["version"]
    assert RFC3339.match(body["last_updated"])
    assert isinstance(body["uptime_seconds"], int | float)
    assert body["uptime_seconds"] >= 0


def test_health_is_public_and_has_every_seed_field(app: Flask) -> None:
    mark_completed(found(app).redis, FLUSH_TASK)
    # Some timed traffic for the performance figures.
    http = authorized_client(app)
    assert http.post("/cache", json={"key": "k", "value": 1}).status_code == 201
    assert http.get("/cache/k").status_code == 200
    found(app).metrics.push()

    response = health(app.test_client())

    assert response.status_code == 200
    body = response.get_json()
    assert_shape(body)
    assert body["status"] == "healthy"
    assert body["redis"]["status"] == "connected"
    assert re.match(r"^\d+\.\d+\.\d+", body["redis"]["version"])
    assert re.match(r"^\d+MB$", body["redis"]["memory_usage"])
    assert body["redis"]["connected_clients"] >= 1
    assert body["redis"]["maxmemory_policy"] == "noeviction"
    memory = body["memory_usage"]
    assert 0 < memory["used_mb"] <= memory["total_mb"]
    assert 0 <= memory["usage_percentage"] <= 100
    connections = body["connections"]
    assert 1 <= connections["active"] <= connections["max"]
    assert 0 <= connections["usage_percentage"] <= 100
    performance = body["performance"]
    for name in ("average_response_time", "p95_response_time", "p99_response_time"):
        assert MS_TEXT.match(performance[name]), (name, performance[name])
    # Service-wide: web processes of earlier tests may have pushed their last second here.
    assert 0 <= performance["error_rate"] < 1
    assert body["postgres"]["status"] == "connected"
    assert body["postgres"]["latency_ms"] >= 0
    workers = body["workers"]
    assert workers["status"] == "up"
    assert RFC3339.match(workers["last_flush_at"])
    assert 0 <= workers["flush_lag_seconds"] < 5


def test_a_bad_token_on_health_is_ignored(app: Flask) -> None:
    response = app.test_client().get(
        "/cache/health", headers={"Authorization": "Bearer not-a-token"}
    )

    assert response.status_code == 200


def test_no_flush_ever_is_degraded(app: Flask) -> None:
    response = health(app.test_client())

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["workers"] == {"status": "down", "last_flush_at": None, "flush_lag_seconds": None}
    assert body["postgres"]["status"] == "connected"


def test_a_flush_long_ago_is_degraded(app: Flask) -> None:
    ten_minutes_ago_ms = int((time.time() - 600) * 1000)
    found(app).redis.set(TaskKeys.last_run(FLUSH_TASK), ten_minutes_ago_ms)

    body = health(app.test_client()).get_json()

    assert body["status"] == "degraded"
    assert body["workers"]["status"] == "down"
    assert body["workers"]["flush_lag_seconds"] == pytest.approx(600, abs=5)


def test_postgres_down_is_degraded_and_answers_quickly(build: Any) -> None:
    app = build(database_url=unused_database(), database_timeout=0.5)
    mark_completed(found(app).redis, FLUSH_TASK)

    started = time.monotonic()
    response = health(app.test_client())
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    body = response.get_json()
    assert_shape(body)
    assert body["status"] == "degraded"
    assert body["postgres"]["status"] == "disconnected"
    assert body["postgres"]["latency_ms"] is None
    assert body["redis"]["status"] == "connected"
    assert body["workers"]["status"] == "up"
    assert elapsed < ANSWER_BOUND_SECONDS


def test_redis_down_is_unhealthy_503_with_a_body(build: Any, server: RedisServer) -> None:
    # A limit of one: the second request would be refused if the (dead) limiter were obeyed.
    app = build(server.url, rate_limit_health="1/minute")
    http = app.test_client()
    assert health(http).status_code == 200
    server.kill()

    for _ in range(2):
        started = time.monotonic()
        response = health(http)
        elapsed = time.monotonic() - started

        assert response.status_code == 503, response.get_data(as_text=True)
        body = response.get_json()
        assert_shape(body)
        assert body["status"] == "unhealthy"
        assert body["redis"]["status"] == "disconnected"
        assert body["redis"]["version"] is None
        assert body["postgres"]["status"] == "connected"
        assert body["memory_usage"]["used_mb"] is None
        assert body["workers"]["status"] == "unknown"
        assert elapsed < ANSWER_BOUND_SECONDS


def test_an_evicting_redis_is_degraded(build: Any, server: RedisServer) -> None:
    client = server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    mark_completed(client, FLUSH_TASK)
    client.close()
    app = build(server.url)

    body = health(app.test_client()).get_json()

    assert body["status"] == "degraded"
    assert body["redis"]["maxmemory_policy"] == "allkeys-lru"
    assert body["workers"]["status"] == "up"


def test_health_is_rate_limited_per_client_address(build: Any) -> None:
    app = build(rate_limit_health="2/minute")
    http = app.test_client()

    first, second, third = (health(http, "10.0.0.1") for _ in range(3))
    elsewhere = health(http, "10.0.0.2")

    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert second.headers["X-RateLimit-Remaining"] == "0"
    assert third.status_code == 429
    assert third.get_json()["error"] == "rate_limit_exceeded"
    assert elsewhere.status_code == 200


def test_health_answers_when_a_separate_limiter_store_is_down(build: Any) -> None:
    app = build(
        rate_limit_health="1/minute", rate_limit_redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    mark_completed(found(app).redis, FLUSH_TASK)
    http = app.test_client()

    responses = [health(http) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[-1].get_json()["status"] == "healthy"
    assert "X-RateLimit-Limit" not in responses[-1].headers


def test_uptime_is_the_share_of_successful_probes(app: Flask) -> None:
    client = found(app).redis
    now = time.time()
    for ok in (True, True, True, False):
        record_probe(client, ok, now)
    # A day and more ago: outside the window.
    record_probe(client, False, now - 25 * 3600)

    body = health(app.test_client()).get_json()

    assert body["uptime"] == "75.0%"
    assert body["uptime_probes"] == 4


def test_uptime_counts_the_last_24_hours(app: Flask) -> None:
    client = found(app).redis
    now = time.time()
    record_probe(client, True, now - 23 * 3600)
    record_probe(client, False, now - 3600)
    record_probe(client, True, now)

    body = health(app.test_client()).get_json()

    assert body["uptime"] == "66.7%"
    assert body["uptime_probes"] == 3


def test_without_probes_uptime_is_unknown(app: Flask) -> None:
    body = health(app.test_client()).get_json()

    assert body["uptime"] is None
    assert body["uptime_probes"] == 0


def test_uptime_seconds_is_the_processes(app: Flask) -> None:
    found(app)  # The app was built just now.

    body = health(app.test_client()).get_json()

    assert 0 <= body["uptime_seconds"] < 30


def test_error_rate_is_errors_per_request(app: Flask) -> None:
    minute = int(time.time()) // 60 * 60
    # Large figures: web processes of earlier tests may push a last second of their own.
    deltas = {
        f"{SERVICE}\t{minute}\trequests": 1_000_000.0,
        f"{SERVICE}\t{minute}\terrors": 10_000.0,
    }
    assert found(app).pending.push_metrics("health-test", [], deltas)

    body = health(app.test_client()).get_json()

    assert body["performance"]["error_rate"] == pytest.approx(0.01, abs=0.0005)


def test_redis_figures_cover_every_master(
    client: FlaskClient, redis_client: redis.Redis, redis_topology: str
) -> None:
    body = client.get("/cache/health").get_json()
    section = body["redis"]
    if redis_topology != CLUSTER:
        # One master (Sentinel's is found anew after a failover): nothing to list.
        assert "nodes" not in section
        return
    masters: Any = redis_client.get_primaries()  # type: ignore[attr-defined]  # cluster only
    nodes = section["nodes"]
    assert sorted(node["address"] for node in nodes) == sorted(master.name for master in masters)
    assert len(nodes) == 3
    assert all(node["status"] == "connected" for node in nodes)
    # The service's own connections alone put clients on every master it talks to.
    assert section["connected_clients"] == sum(node["connected_clients"] for node in nodes)
    assert section["connected_clients"] > 3
    # The fullest master's share is the one that matters: it refuses writes first.
    fullest = max(node["memory_usage_percentage"] for node in nodes)
    assert body["memory_usage"]["usage_percentage"] == pytest.approx(fullest, abs=0.2)
