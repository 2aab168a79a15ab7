"""A session read that hits Redis is one round trip, authentication and rate limiting included.

The rate limit check rides in the session's own script call (``guarded_session_get``), and the
slide of the expiry happens in the same call. Counted as in ``test_roundtrips.py``: a
connection that records each write burst, cross-checked with ``INFO commandstats``, on a
private ``redis-server`` whose statistics and script cache belong to this module alone.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app
from cacheservice.services import Services
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.redis_server import RedisServer
from tests.support.roundtrips import RoundTrips, count_round_trips

# Starts its own Redis, whatever --redis-topology says: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent


@pytest.fixture
def counted_app(
    raw: redis.Redis,
    private_redis: RedisServer,
    database_url: str,
    database: psycopg.Connection[Any],
) -> Iterator[Flask]:
    # Authentication and rate limiting are on, as in production.
    app = create_app(app_settings(private_redis.url, database_url=database_url))
    yield app
    services: Services = app.extensions["cacheservice"]
    services.shutdown()


@pytest.fixture
def http(counted_app: Flask) -> FlaskClient:
    return authorized_client(counted_app)


@pytest.fixture
def round_trips(counted_app: Flask) -> RoundTrips:
    return count_round_trips(counted_app)


def create_session(http: FlaskClient) -> str:
    response = http.post("/sessions", json={"user_id": str(uuid.uuid4()), "data": {"a": 1}})
    assert response.status_code == 201, response.get_json()
    session_id: str = response.get_json()["session_id"]
    return session_id


def command_stats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter(
        {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}
    )


@pytest.mark.parametrize("query", ["", "?touch=false", "?touch=true"])
def test_a_session_read_hit_is_one_round_trip(
    http: FlaskClient, round_trips: RoundTrips, query: str
) -> None:
    session_id = create_session(http)
    round_trips.reset()

    response = http.get(f"/sessions/{session_id}{query}")

    assert response.status_code == 200
    assert response.get_json()["data"] == {"a": 1}
    # The limit check happened (in the same call): its headers are there.
    assert response.headers["X-RateLimit-Limit"] == "10000"
    assert round_trips.count == 1, round_trips
    assert round_trips.commands() == Counter({"EVALSHA": 1})


def test_the_server_counts_one_script_call_per_session_read(
    http: FlaskClient, raw: redis.Redis
) -> None:
    session_id = create_session(http)
    assert http.get(f"/sessions/{session_id}").status_code == 200  # Connections are warm.
    before = command_stats(raw)

    for _ in range(5):
        assert http.get(f"/sessions/{session_id}").status_code == 200

    delta = command_stats(raw)
    delta.subtract(before)
    delta.pop("info", None)  # The INFO that took the reading counts itself.
    assert delta["evalsha"] == 5, delta
    # Everything else the server counted ran inside those scripts (commandstats counts the
    # commands a script calls): the rate limit hash, the session hash, the index, the slide.
    inside_scripts = {"hgetall", "hset", "hmget", "pexpire", "pexpireat", "zadd"}
    assert set(+delta) - {"evalsha"} <= inside_scripts, delta
