"""ARCHITECTURE invariants 1 and 2, proven by counting, not timing.

One Redis round trip for a GET (hit counting and the rate limit check included), a SET and a
DELETE; batch GET/SET of up to 1000 keys is one round trip of data plus one for the rate limit
check, which cannot ride in a multi-bucket pipeline without letting a refused request run part
of its work. No keyspace-wide command ever. Counting uses a connection that records each write
burst (see ``tests/support/roundtrips.py``), cross-checked with Redis's ``INFO commandstats``.

These tests run against a private ``redis-server``: its script cache and statistics are theirs
alone, so a parallel test flushing scripts or issuing commands cannot change the counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app
from cacheservice.store.keys import KeySpace
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.redis_server import RedisServer
from tests.support.roundtrips import RoundTrips, count_round_trips

# Starts its own Redis, whatever --redis-topology says: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent

NS = "rt"


@pytest.fixture
def counted_app(raw: redis.Redis, private_redis: RedisServer, database_url: str) -> Flask:
    # Authentication and rate limiting are on, as in production.
    app = create_app(app_settings(private_redis.url, database_url=database_url))
    # The once-a-second metrics push is background traffic, not the request's: keep it out of
    # the counted windows.
    app.extensions["cacheservice"].metrics.interval = 3600.0
    return app


@pytest.fixture
def round_trips(counted_app: Flask) -> RoundTrips:
    return count_round_trips(counted_app)


@pytest.fixture
def http(counted_app: Flask) -> FlaskClient:
    return authorized_client(counted_app)


def put(http: FlaskClient, key: str, value: Any = None, tags: list[str] | None = None) -> None:
    body = {"key": key, "value": value if value is not None else {"k": key}, "namespace": NS}
    if tags:
        body["tags"] = tags
    response = http.post("/cache", json=body)
    assert response.status_code in (200, 201), response.get_json()


def batch_set_body(keys: list[str]) -> dict[str, Any]:
    entries = [{"key": key, "value": {"n": n}, "tags": ["batch"]} for n, key in enumerate(keys)]
    return {"namespace": NS, "entries": entries}


def bucket_count(app: Flask, keys: list[str]) -> int:
    """How many buckets (hash slots) of the namespace ``keys`` fall in."""
    keyspace = KeySpace(app.extensions["cacheservice"].settings.namespace_buckets)
    return len({keyspace.bucket(NS, key) for key in keys})


def assert_one_round_trip(round_trips: RoundTrips) -> None:
    assert round_trips.count == 1, round_trips


def assert_limit_check_then_one_round_trip(round_trips: RoundTrips) -> None:
    """A batch: the rate limit check (one script call), then all the data in one burst."""
    assert round_trips.count == 2, round_trips
    assert round_trips.bursts[0] == ["EVALSHA"], round_trips


def command_stats(client: redis.Redis) -> Counter[str]:
    """Calls per command, as ``INFO commandstats`` reports them (lower-case names)."""
    stats = client.info("commandstats")
    return Counter(
        {name.removeprefix("cmdstat_"): int(fields["calls"]) for name, fields in stats.items()}
    )


def stats_delta(before: Counter[str], after: Counter[str]) -> Counter[str]:
    delta = after.copy()
    delta.subtract(before)
    # The INFO call that took the "after" reading counts itself.
    delta.pop("info", None)
    return +delta


# Counting connection: exactly one write burst per request.


def test_get_hit_is_one_round_trip(http: FlaskClient, round_trips: RoundTrips) -> None:
    put(http, "user:1")
    round_trips.reset()

    response = http.get(f"/cache/user:1?namespace={NS}&include_metadata=true")

    assert response.status_code == 200
    assert response.get_json()["hit_count"] == 1
    assert_one_round_trip(round_trips)
    assert round_trips.commands() == Counter({"EVALSHA": 1})


def test_get_miss_is_one_round_trip(http: FlaskClient, round_trips: RoundTrips) -> None:
    response = http.get(f"/cache/nobody?namespace={NS}")

    assert response.status_code == 404
    assert_one_round_trip(round_trips)
    assert round_trips.commands() == Counter({"EVALSHA": 1})


def test_set_with_two_tags_is_one_round_trip(http: FlaskClient, round_trips: RoundTrips) -> None:
    for expected_status in (201, 200):  # A create and a replace.
        round_trips.reset()
        response = http.post(
            "/cache",
            json={"key": "user:1", "value": {"a": 1}, "namespace": NS, "tags": ["user", "profile"]},
        )
        assert response.status_code == expected_status
        assert_one_round_trip(round_trips)
        assert round_trips.commands() == Counter({"EVALSHA": 1})


def test_delete_is_one_round_trip(http: FlaskClient, round_trips: RoundTrips) -> None:
    put(http, "user:1", tags=["user", "profile"])
    round_trips.reset()

    response = http.delete(f"/cache/user:1?namespace={NS}")

    assert response.status_code == 200
    assert_one_round_trip(round_trips)
    assert round_trips.commands() == Counter({"EVALSHA": 1})


@pytest.mark.parametrize("size", [500, 1000])
def test_batch_get_with_half_present_is_one_data_round_trip(
    counted_app: Flask, http: FlaskClient, round_trips: RoundTrips, size: int
) -> None:
    keys = [f"item:{n}" for n in range(size)]
    assert http.post("/cache/batch-set", json=batch_set_body(keys[::2])).status_code == 200
    round_trips.reset()

    response = http.post("/cache/batch", json={"namespace": NS, "keys": keys})

    assert response.status_code == 200
    body = response.get_json()
    assert body["total_found"] == size // 2
    assert body["missing_keys"] == keys[1::2]
    assert_limit_check_then_one_round_trip(round_trips)
    # One script call per bucket the keys fall in (16 by default), all in the one burst.
    assert round_trips.commands() == Counter({"EVALSHA": bucket_count(counted_app, keys) + 1})


@pytest.mark.parametrize("size", [500, 1000])
def test_batch_set_is_one_data_round_trip(
    http: FlaskClient, round_trips: RoundTrips, size: int
) -> None:
    keys = [f"item:{n}" for n in range(size)]

    response = http.post("/cache/batch-set", json=batch_set_body(keys))

    assert response.status_code == 200
    assert response.get_json()["total_created"] == size
    assert_limit_check_then_one_round_trip(round_trips)
    assert round_trips.commands() == Counter({"EVALSHA": size + 1})


# INFO commandstats: the server's own account agrees, and nothing scans the keyspace.


def test_commandstats_agree_and_no_keyspace_scans(
    counted_app: Flask, http: FlaskClient, raw: redis.Redis
) -> None:
    keys = [f"item:{n}" for n in range(500)]
    tagged = {"key": "user:1", "value": 1, "namespace": NS, "tags": ["a", "b"]}
    operations: list[tuple[str, str, str, Any, int]] = [
        # (name, method, path, json body, EVALSHA calls the server must see)
        ("set", "post", "/cache", tagged, 1),
        ("get hit", "get", f"/cache/user:1?namespace={NS}", None, 1),
        ("get miss", "get", f"/cache/nobody?namespace={NS}", None, 1),
        ("delete", "delete", f"/cache/user:1?namespace={NS}", None, 1),
        ("batch-set", "post", "/cache/batch-set", batch_set_body(keys[::2]), 250 + 1),
    ]
    for name, method, path, body, evalsha_calls in operations:
        before = command_stats(raw)
        response = getattr(http, method)(path, json=body)
        delta = stats_delta(before, command_stats(raw))
        assert response.status_code < 500, name
        assert delta["evalsha"] == evalsha_calls, (name, delta)
        assert "keys" not in delta
        assert "scan" not in delta

    before = command_stats(raw)
    response = http.post("/cache/batch", json={"namespace": NS, "keys": keys})
    delta = stats_delta(before, command_stats(raw))
    assert response.get_json()["total_found"] == 250
    # The limit check, then one script call per bucket, pipelined in one round trip.
    assert delta["evalsha"] == bucket_count(counted_app, keys) + 1, delta

    # Invalidation walks the namespace's own indexes (ZSCAN), never the keyspace.
    for body in (
        {"namespace": NS, "tags": ["batch"]},
        {"namespace": NS, "pattern": "item:1*"},
        {"namespace": NS},
    ):
        before = command_stats(raw)
        assert http.post("/cache/invalidate", json=body).status_code == 200
        delta = stats_delta(before, command_stats(raw))
        assert "keys" not in delta
        assert "scan" not in delta

    # Over the whole test, on a server nobody else uses.
    stats = command_stats(raw)
    assert stats["keys"] == 0
    assert stats["scan"] == 0


# After a Redis restart or SCRIPT FLUSH the scripts are reloaded, and nothing runs twice.


def test_get_after_script_flush_reloads_the_script(
    http: FlaskClient, raw: redis.Redis, round_trips: RoundTrips
) -> None:
    put(http, "user:1", value={"name": "Ada"})
    raw.script_flush()
    round_trips.reset()

    response = http.get(f"/cache/user:1?namespace={NS}&include_metadata=true")

    assert response.status_code == 200
    body = response.get_json()
    assert body["value"] == {"name": "Ada"}
    assert body["hit_count"] == 1
    # EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA.
    assert round_trips.count <= 3, round_trips


def test_pipelined_writes_after_script_flush_run_once(http: FlaskClient, raw: redis.Redis) -> None:
    keys = [f"item:{n}" for n in range(50)]
    raw.script_flush()

    response = http.post("/cache/batch-set", json=batch_set_body(keys))

    assert response.status_code == 200
    assert response.get_json()["total_created"] == 50
    raw.script_flush()
    response = http.post(
        "/cache/batch", json={"namespace": NS, "keys": keys, "include_metadata": True}
    )
    entries = response.get_json()["entries"]
    assert [entry["key"] for entry in entries] == keys
    # A batch retried after NOSCRIPT must not count its hits twice.
    assert {entry["hit_count"] for entry in entries} == {1}


# The read budget: a batch of large values is read in several short script calls.


def keys_in_one_bucket(app: Flask, count: int) -> list[str]:
    keyspace = KeySpace(app.extensions["cacheservice"].settings.namespace_buckets)
    first = keyspace.bucket(NS, "big:0")
    candidates = (f"big:{n}" for n in range(100_000))
    return [key for key in candidates if keyspace.bucket(NS, key) == first][:count]


@pytest.mark.parametrize("budget", [1, 0])
def test_a_batch_past_the_read_budget_reads_the_rest_in_more_calls(
    counted_app: Flask, http: FlaskClient, raw: redis.Redis, round_trips: RoundTrips, budget: int
) -> None:
    keys = [f"item:{n}" for n in range(40)]
    assert http.post("/cache/batch-set", json=batch_set_body(keys)).status_code == 200
    # One entry per call and bucket (the first is read whatever the budget, even none): every
    # bucket needs as many calls as it has keys.
    counted_app.extensions["cacheservice"].cache.entries.read_budget = budget
    keyspace = KeySpace(counted_app.extensions["cacheservice"].settings.namespace_buckets)
    per_bucket = Counter(keyspace.bucket(NS, key) for key in keys)
    round_trips.reset()

    response = http.post("/cache/batch", json={"namespace": NS, "keys": keys})

    body = response.get_json()
    assert body["total_found"] == 40
    assert {entry["key"]: entry["value"] for entry in body["entries"]} == {
        key: {"n": n} for n, key in enumerate(keys)
    }
    # The limit check, then pipelines that shrink as buckets run out of unread keys.
    assert round_trips.count == 1 + max(per_bucket.values()), round_trips
    pipelines = [len(burst) for burst in round_trips.bursts[1:]]
    assert pipelines == [
        sum(1 for count in per_bucket.values() if count > n) for n in range(len(pipelines))
    ]
    # Every entry was read, and its hit counted, exactly once.
    for key in keys:
        assert raw.hget(keyspace.bucket(NS, key).entry(key), "hc") == b"1"


def test_megabyte_values_in_one_bucket_take_a_call_per_four_mebibytes(
    counted_app: Flask, http: FlaskClient, round_trips: RoundTrips
) -> None:
    keys = keys_in_one_bucket(counted_app, 6)
    values = {key: key[-1] * 900_000 for key in keys}  # 5.4 MB in all, 4 MiB budget.
    for key, value in values.items():
        response = http.post("/cache", json={"key": key, "value": value, "namespace": NS})
        assert response.status_code == 201
    round_trips.reset()

    response = http.post("/cache/batch", json={"namespace": NS, "keys": keys})

    found = response.get_json()["entries"]
    assert {entry["key"]: entry["value"] for entry in found} == values
    # 4.5 MB come in the first call (the fifth value crosses 4 MiB), the sixth in a second.
    assert round_trips.count == 3, round_trips
    assert [len(burst) for burst in round_trips.bursts] == [1, 1, 1]
