"""``GET /cache/statistics`` against the real Redis and Postgres: shape, exact counts, window.

The flush runs by calling its functions directly (no Celery). Every test works in namespaces of
its own and reads them with the ``namespace`` filter where it checks exact counts: a web process
of an earlier test may still push its last second of counts into the same Redis database.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app
from cacheservice.metrics.flush import FlushReport, flush_entry_stats, flush_metrics
from cacheservice.metrics.maintenance import sample_memory
from cacheservice.services import Services
from cacheservice.store.keys import MetricsKeys
from cacheservice.timefmt import now_ms
from tests.conftest import AppFactory, app_settings
from tests.support.auth import authorized_client
from tests.support.ports import free_port

NS = "stats"
OTHER_NS = "stats-other"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MS_TEXT = re.compile(r"^\d+(\.\d+)?(e[+-]?\d+)?ms$")
SEED_OVERVIEW = {"total_keys", "total_memory_mb", "hit_rate", "miss_rate", "average_ttl"}
OVERVIEW_ADDITIONS = {"hits", "misses", "sets", "deletes", "compression_ratio"}
SEED_NAMESPACE_STATS = {"keys", "memory_mb", "hit_rate", "miss_rate"}
SEED_PERFORMANCE = {
    "average_get_time",
    "average_set_time",
    "average_delete_time",
    "p95_get_time",
    "p99_get_time",
}
SEED_TOP_KEY = {"key", "hit_count", "last_accessed"}
UNAVAILABLE_BOUND_SECONDS = 2.0


@pytest.fixture
def app(make_app: AppFactory, database: psycopg.Connection[Any]) -> Iterator[Flask]:
    """An app on emptied tables; its Postgres pool is closed afterwards.

    Four buckets per namespace: the memory sampler then looks into every bucket, so a test
    with a single entry gets a memory figure every time.
    """
    app = make_app(namespace_buckets=4)
    yield app
    found(app).database.close()


def unused_database() -> str:
    """A Postgres URL nothing listens on."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/x"


def found(app: Flask) -> Services:
    services: Services = app.extensions["cacheservice"]
    return services


def statistics(http: FlaskClient, **query: Any) -> dict[str, Any]:
    response = http.get("/cache/statistics", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def put(http: FlaskClient, key: str, value: Any = "v", namespace: str = NS, **extra: Any) -> None:
    body = {"key": key, "value": value, "namespace": namespace, **extra}
    response = http.post("/cache", json=body)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def read(http: FlaskClient, key: str, namespace: str = NS, times: int = 1) -> None:
    for _ in range(times):
        assert http.get(f"/cache/{key}", query_string={"namespace": namespace}).status_code in (
            200,
            404,
        )


def flush(services: Services) -> tuple[FlushReport, FlushReport]:
    """Push this process's counts, then run both flushes as the workers would."""
    # The flush of entry statistics finds namespaces through the metric pushes.
    services.metrics.push()
    metrics = flush_metrics(services.pending, services.database, services.queries, now_ms())
    entries = flush_entry_stats(services.pending, services.database, services.queries)
    return metrics, entries


def counts(body: dict[str, Any], namespace: str = NS) -> dict[str, int]:
    """The exact figures of one namespace, as the overview and its namespace_stats say."""
    overview, per = body["overview"], body["namespace_stats"][namespace]
    figures = {name: overview[name] for name in ("hits", "misses", "sets", "deletes")}
    assert figures == {name: per[name] for name in figures}
    return figures


def minute_start(moment: float) -> int:
    return int(moment) // 60 * 60


# Shape


def test_body_has_every_seed_field_and_the_contract_additions(
    app: Flask, client: FlaskClient
) -> None:
    # Big enough, and random enough to stay big if compressed, for a memory figure above 0.001 MB.
    put(client, "user:1", {"name": "Ada", "blob": secrets.token_hex(10_000)}, ttl=600)
    put(client, "user:2", "x" * 2000, ttl=1200)
    read(client, "user:1", times=3)
    read(client, "user:2")
    read(client, "nobody")
    assert client.delete("/cache/user:2", query_string={"namespace": NS}).status_code == 200
    services = found(app)
    flush(services)
    sample_memory(services.redis, services.keyspace, services.pending, now_ms())

    body = statistics(client, namespace=NS)

    assert set(body) >= {"overview", "namespace_stats", "performance", "top_keys", "generated_at"}
    assert set(body["window"]) == {"from", "to"}
    assert RFC3339.match(body["generated_at"])

    overview = body["overview"]
    assert set(overview) >= SEED_OVERVIEW | OVERVIEW_ADDITIONS | {"memory_sampled_at"}
    assert overview["total_keys"] == 1
    assert overview["hit_rate"] == 0.8
    assert overview["miss_rate"] == 0.2
    assert overview["average_ttl"] == 600
    assert counts(body) == {"hits": 4, "misses": 1, "sets": 2, "deletes": 1}
    # Raw bytes over stored bytes; whether it is above 1 depends on the namespace's compression.
    assert 0.5 < overview["compression_ratio"] < 100
    assert overview["total_memory_mb"] > 0
    assert RFC3339.match(overview["memory_sampled_at"])

    assert set(body["namespace_stats"]) == {NS}
    per = body["namespace_stats"][NS]
    assert set(per) >= SEED_NAMESPACE_STATS | {"memory_sampled_at"}
    assert per["keys"] == 1
    assert per["memory_mb"] == overview["total_memory_mb"]
    assert (per["hit_rate"], per["miss_rate"]) == (0.8, 0.2)
    assert per["memory_sampled_at"] == overview["memory_sampled_at"]

    performance = body["performance"]
    assert set(performance) == SEED_PERFORMANCE | {f"{name}_ms" for name in SEED_PERFORMANCE}
    for name in SEED_PERFORMANCE:
        text, number = performance[name], performance[f"{name}_ms"]
        assert MS_TEXT.match(text), (name, text)
        assert isinstance(number, int | float)
        assert number > 0
        assert float(text.removesuffix("ms")) == pytest.approx(number, rel=0.01)
    assert performance["p95_get_time_ms"] <= performance["p99_get_time_ms"]

    assert body["top_keys"] == [
        {
            "key": "user:1",
            "namespace": NS,
            "hit_count": 3,
            "last_accessed": body["top_keys"][0]["last_accessed"],
        }
    ]
    assert set(body["top_keys"][0]) >= SEED_TOP_KEY | {"namespace"}
    assert RFC3339.match(body["top_keys"][0]["last_accessed"])


def test_without_reads_the_rates_are_zero_and_nothing_was_timed(client: FlaskClient) -> None:
    put(client, "only-written")

    body = statistics(client, namespace=NS)

    assert counts(body) == {"hits": 0, "misses": 0, "sets": 1, "deletes": 0}
    for section in (body["overview"], body["namespace_stats"][NS]):
        assert (section["hit_rate"], section["miss_rate"]) == (0, 0)
    assert body["performance"]["average_get_time"] is None
    assert body["performance"]["p99_get_time_ms"] is None
    assert body["performance"]["average_set_time_ms"] > 0


def test_an_unknown_namespace_reports_zeros(client: FlaskClient) -> None:
    body = statistics(client, namespace="never-used")

    assert body["namespace_stats"]["never-used"]["keys"] == 0
    assert counts(body, "never-used") == {"hits": 0, "misses": 0, "sets": 0, "deletes": 0}
    assert body["overview"]["total_keys"] == 0
    assert body["overview"]["compression_ratio"] is None
    assert body["top_keys"] == []


# Exact counts through the pipeline


def test_counts_are_exact_at_every_stage_of_the_pipeline(
    app: Flask, client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    put(client, "k1")
    put(client, "k2")
    read(client, "k1", times=3)
    read(client, "missing", times=2)
    batch = {"keys": ["k2", "absent"], "namespace": NS}
    assert client.post("/cache/batch", json=batch).status_code == 200
    assert client.delete("/cache/k2", query_string={"namespace": NS}).status_code == 200
    expected = {"hits": 4, "misses": 3, "sets": 2, "deletes": 1}
    services = found(app)

    # Counted, not pushed yet: the statistics request brings its own process's counts along.
    assert counts(statistics(client, namespace=NS)) == expected

    services.metrics.push()
    assert counts(statistics(client, namespace=NS)) == expected

    report, _ = flush(services)
    assert report.batches == 1
    assert report.skipped_batches == 0
    assert counts(statistics(client, namespace=NS)) == expected
    flushed = database.execute(
        "SELECT metric_name, sum(metric_value) FROM cache_metrics WHERE namespace = %s "
        "AND metric_name IN ('hits', 'misses', 'sets', 'deletes') GROUP BY metric_name",
        (NS,),
    ).fetchall()
    assert {name: int(value) for name, value in flushed} == expected

    services.metrics.push()
    flush(services)
    assert counts(statistics(client, namespace=NS)) == expected

    # New traffic after a flush adds to the flushed figures, once.
    read(client, "k1")
    assert counts(statistics(client, namespace=NS)) == {**expected, "hits": 5}
    services.metrics.push()
    flush(services)
    assert counts(statistics(client, namespace=NS)) == {**expected, "hits": 5}


def test_namespace_filter(client: FlaskClient) -> None:
    put(client, "a", namespace=NS)
    put(client, "b", namespace=OTHER_NS)
    put(client, "c", namespace=OTHER_NS)
    read(client, "a", namespace=NS, times=2)
    read(client, "b", namespace=OTHER_NS)
    read(client, "zzz", namespace=OTHER_NS, times=3)

    mine = statistics(client, namespace=NS)
    other = statistics(client, namespace=OTHER_NS)
    everything = statistics(client)

    assert set(mine["namespace_stats"]) == {NS}
    assert counts(mine) == {"hits": 2, "misses": 0, "sets": 1, "deletes": 0}
    assert mine["overview"]["total_keys"] == 1
    assert set(other["namespace_stats"]) == {OTHER_NS}
    assert counts(other, OTHER_NS) == {"hits": 1, "misses": 3, "sets": 2, "deletes": 0}
    assert other["overview"]["total_keys"] == 2
    assert other["overview"]["hit_rate"] == 0.25
    assert {NS, OTHER_NS} <= set(everything["namespace_stats"])
    assert everything["namespace_stats"][NS] == mine["namespace_stats"][NS]
    assert everything["namespace_stats"][OTHER_NS] == other["namespace_stats"][OTHER_NS]


def test_an_invalid_namespace_is_400(client: FlaskClient) -> None:
    response = client.get("/cache/statistics", query_string={"namespace": "Not Valid"})

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert "namespace" in body["details"]


# The window


def test_the_default_window_is_the_last_24_hours(client: FlaskClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    body = statistics(client)
    after = datetime.now(UTC)

    start = datetime.fromisoformat(body["window"]["from"])
    end = datetime.fromisoformat(body["window"]["to"])
    assert before <= end <= after
    assert end - start == timedelta(hours=24)


def test_only_date_to_given_ends_the_window_there(client: FlaskClient) -> None:
    body = statistics(client, date_to="2024-01-15T14:30:00Z")

    assert body["window"] == {"from": "2024-01-14T14:30:00Z", "to": "2024-01-15T14:30:00Z"}


def test_a_past_window_counts_nothing_of_today(client: FlaskClient) -> None:
    put(client, "k")
    read(client, "k", times=2)

    body = statistics(
        client, namespace=NS, date_from="2024-01-01T00:00:00Z", date_to="2024-01-31T23:59:59Z"
    )

    assert body["window"] == {"from": "2024-01-01T00:00:00Z", "to": "2024-01-31T23:59:59Z"}
    assert counts(body) == {"hits": 0, "misses": 0, "sets": 0, "deletes": 0}
    assert body["overview"]["hit_rate"] == 0
    # Keys are a present-tense figure: the entry exists now, whatever the window.
    assert body["overview"]["total_keys"] == 1


def test_samples_in_postgres_count_in_their_window_only(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    database.execute(
        "INSERT INTO cache_metrics (metric_name, metric_value, namespace, timestamp) VALUES "
        "('hits', 7, %(ns)s, '2024-01-15T14:30:00Z'),"
        " ('misses', 1, %(ns)s, '2024-01-15T14:30:00Z'),"
        " ('hits', 100, %(ns)s, '2024-02-15T00:00:00Z')",
        {"ns": NS},
    )

    january = statistics(
        client, namespace=NS, date_from="2024-01-15T00:00:00Z", date_to="2024-01-16T00:00:00Z"
    )
    # A sample covers its minute: a window starting inside that minute still holds it.
    inside_the_minute = statistics(
        client, namespace=NS, date_from="2024-01-15T14:30:30Z", date_to="2024-01-15T14:40:00Z"
    )
    before_it = statistics(
        client, namespace=NS, date_from="2024-01-15T14:00:00Z", date_to="2024-01-15T14:29:59Z"
    )
    today = statistics(client, namespace=NS)

    assert counts(january)["hits"] == 7
    assert january["overview"]["hit_rate"] == 0.875
    assert counts(inside_the_minute)["hits"] == 7
    assert counts(before_it)["hits"] == 0
    assert counts(today)["hits"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"date_from": "2024-02-01T00:00:00Z", "date_to": "2024-01-01T00:00:00Z"}, "date_from"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2024-01-01T00:00:00"}, "date_to"),  # No offset: ambiguous.
        ({"top": "-1"}, "top"),
        ({"top": "1001"}, "top"),
        ({"top": "many"}, "top"),
    ],
)
def test_invalid_query_is_400(client: FlaskClient, query: dict[str, str], field: str) -> None:
    response = client.get("/cache/statistics", query_string=query)

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert field in body["details"], body


# top_keys


def test_top_keys_are_the_most_read_flushed_entries(app: Flask, client: FlaskClient) -> None:
    for key, reads in (("k1", 3), ("k2", 2), ("k3", 1)):
        put(client, key)
        read(client, key, times=reads)
    put(client, "other", namespace=OTHER_NS)
    read(client, "other", namespace=OTHER_NS, times=5)
    flush(found(app))

    two = statistics(client, namespace=NS, top=2)["top_keys"]
    default = statistics(client, namespace=NS)["top_keys"]
    none = statistics(client, namespace=NS, top=0)["top_keys"]
    everything = statistics(client, top=1)["top_keys"]

    assert [(item["key"], item["hit_count"]) for item in two] == [("k1", 3), ("k2", 2)]
    assert [item["key"] for item in default] == ["k1", "k2", "k3"]
    assert all(item["namespace"] == NS for item in default)
    assert none == []
    assert [(item["key"], item["namespace"], item["hit_count"]) for item in everything] == [
        ("other", OTHER_NS, 5)
    ]


# Access and limits


def test_requires_the_stats_read_scope(app: Flask) -> None:
    anonymous = app.test_client().get("/cache/statistics")
    reader = authorized_client(app, scope="cache:read cache:write").get("/cache/statistics")

    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"] == "unauthorized"
    assert reader.status_code == 403
    assert reader.get_json()["error"] == "forbidden"
    assert reader.get_json()["details"]["required_scope"] == "stats:read"
    assert authorized_client(app, scope="stats:read").get("/cache/statistics").status_code == 200


def test_counts_against_the_statistics_rate_limit(
    make_app: AppFactory, database: psycopg.Connection[Any]
) -> None:
    app = make_app(rate_limit_statistics="2/minute", rate_limit_cache="5/minute")
    try:
        http = authorized_client(app)
        first = http.get("/cache/statistics")
        second = http.get("/cache/statistics")
        third = http.get("/cache/statistics")

        assert first.status_code == 200
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert second.headers["X-RateLimit-Remaining"] == "0"
        assert third.status_code == 429
        assert third.get_json()["error"] == "rate_limit_exceeded"
        # Its own category: cache operations keep their quota, another subject has its own.
        cache_read = http.get("/cache/anything", query_string={"namespace": NS})
        assert cache_read.status_code == 404
        assert cache_read.headers["X-RateLimit-Limit"] == "5"
        assert (
            authorized_client(app, sub="someone-else").get("/cache/statistics").status_code == 200
        )
    finally:
        found(app).database.close()


def test_postgres_down_is_a_quick_503(redis_client: redis.Redis, redis_url: str) -> None:
    app = create_app(app_settings(redis_url, database_url=unused_database(), database_timeout=0.5))
    try:
        http = authorized_client(app)
        started = time.monotonic()
        response = http.get("/cache/statistics")
        elapsed = time.monotonic() - started
    finally:
        found(app).database.close()

    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "service_unavailable"
    assert elapsed < UNAVAILABLE_BOUND_SECONDS


# The snapshot race: one metrics batch, counted exactly once in every state of its flush.


def push_samples(services: Services, hits: int, misses: int) -> None:
    minute = minute_start(time.time())
    deltas = {f"{NS}\t{minute}\thits": float(hits), f"{NS}\t{minute}\tmisses": float(misses)}
    assert services.pending.push_metrics(f"test-{time.time_ns()}", [NS], deltas)


def apply_batch(conn: psycopg.Connection[Any], services: Services, batch_id: str) -> None:
    """What the flush does inside its transaction, in the caller's transaction."""
    queries = services.queries
    samples = services.pending.read_metrics(services.pending.metrics_batch_key(batch_id))
    claimed = conn.execute(
        queries["claim_batch"], {"batch_id": batch_id, "kind": "metrics", "items": len(samples)}
    ).fetchone()
    assert claimed is not None
    conn.execute(queries["create_metric_stage"])
    with conn.cursor().copy(queries["copy_metric_stage"]) as copy:
        for field, value in samples.items():
            namespace, minute, metric = field.split("\t")
            copy.write_row((metric, namespace, datetime.fromtimestamp(int(minute), UTC), value))
    conn.execute(queries["upsert_metrics"])


def hits_and_misses(http: FlaskClient) -> tuple[int, int]:
    figures = counts(statistics(http, namespace=NS))
    return figures["hits"], figures["misses"]


def test_a_metrics_batch_counts_once_in_every_state(
    app: Flask, client: FlaskClient, database_url: str
) -> None:
    services = found(app)
    redis_client = services.redis
    push_samples(services, hits=5, misses=2)
    assert hits_and_misses(client) == (5, 2)  # Pending.

    batch_id = services.pending.claim_metrics_batch()
    assert batch_id is not None
    assert redis_client.get(MetricsKeys.inflight) == batch_id.encode()
    assert hits_and_misses(client) == (5, 2)  # In flight, Postgres untouched.

    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            apply_batch(conn, services, batch_id)
            assert hits_and_misses(client) == (5, 2)  # Applied, not committed.
        assert hits_and_misses(client) == (5, 2)  # Committed, not finished in Redis.

    services.pending.finish_metrics_batch(batch_id, now_ms())
    assert redis_client.get(MetricsKeys.inflight) is None
    assert redis_client.zscore(MetricsKeys.done, batch_id) is not None
    assert redis_client.exists(services.pending.metrics_batch_key(batch_id))
    assert hits_and_misses(client) == (5, 2)  # Done, kept a while for late snapshots.

    # Another flush (of what the statistics requests themselves counted) changes nothing here.
    report = flush_metrics(services.pending, services.database, services.queries, now_ms())
    assert report.skipped_batches == 0
    assert hits_and_misses(client) == (5, 2)

    # The next batch, finished far enough in the future, retires the first one from Redis.
    push_samples(services, hits=1, misses=0)
    later = now_ms() + 120_000
    report = flush_metrics(services.pending, services.database, services.queries, later)
    assert report.batches == 1
    assert not redis_client.exists(services.pending.metrics_batch_key(batch_id))
    assert redis_client.zscore(MetricsKeys.done, batch_id) is None
    assert hits_and_misses(client) == (6, 2)  # From Postgres alone.


def test_a_batch_applied_between_the_postgres_snapshot_and_the_redis_read_counts_once(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = found(app)
    push_samples(services, hits=3, misses=1)
    real_snapshot = services.pending.metrics_snapshot
    flushed: list[FlushReport] = []

    def flush_then_snapshot() -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        # The statistics request holds its Postgres snapshot by now: the whole flush, commit
        # and finish included, happens after it and before the Redis read.
        flushed.append(
            flush_metrics(services.pending, services.database, services.queries, now_ms())
        )
        return real_snapshot()

    monkeypatch.setattr(services.pending, "metrics_snapshot", flush_then_snapshot)
    during = hits_and_misses(client)
    monkeypatch.undo()

    assert flushed[0].batches == 1
    assert flushed[0].rows > 0
    assert during == (3, 1)
    assert hits_and_misses(client) == (3, 1)


def test_a_batch_committed_after_the_redis_read_counts_once(
    app: Flask, client: FlaskClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = found(app)
    push_samples(services, hits=4, misses=4)
    batch_id = services.pending.claim_metrics_batch()
    assert batch_id is not None
    real_snapshot = services.pending.metrics_snapshot

    def snapshot_then_commit() -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        taken = real_snapshot()
        with psycopg.connect(database_url) as conn, conn.transaction():
            apply_batch(conn, services, batch_id)
        services.pending.finish_metrics_batch(batch_id, now_ms())
        return taken

    monkeypatch.setattr(services.pending, "metrics_snapshot", snapshot_then_commit)
    during = hits_and_misses(client)
    monkeypatch.undo()

    assert during == (4, 4)
    assert hits_and_misses(client) == (4, 4)
