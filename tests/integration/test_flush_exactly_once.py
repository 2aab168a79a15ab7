"""The flush to Postgres has an exactly-once effect, whatever moment a worker dies at.

The dangerous moments are made to happen on demand, in process, instead of hoping a SIGKILL
lands in them (the e2e pipeline tests do that too): a ``SimulatedCrash`` raised right after the
Postgres commit (before the batch is dropped from Redis), or in the middle of the transaction,
or a Postgres that cannot be reached. The next run must then resume the batch: skip it when it
was committed, apply it when it was not, and never lose the hits that kept arriving meanwhile.

Hits are made the service's way: over the Flask app, which runs the entry scripts and pushes
its metric deltas with the same call the gunicorn workers use.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice.config import Settings
from cacheservice.db import Database
from cacheservice.metrics import flush
from cacheservice.metrics.statistics import Window, metric_totals
from cacheservice.services import EXTENSION_NAME, Services
from cacheservice.store.keys import MetricsKeys
from cacheservice.store.pending import PendingStore
from cacheservice.timefmt import now_ms
from tests.support.ports import free_port

NS = "flush-once"
OTHER_NS = "flush-other"


class SimulatedCrash(Exception):
    """The worker process dies at this point (nothing after it runs)."""


def crash(*_: Any, **__: Any) -> None:
    raise SimulatedCrash


@pytest.fixture
def services(app: Flask) -> Services:
    """The app's services; its metrics are pushed by the test alone, at known moments."""
    found: Services = app.extensions[EXTENSION_NAME]
    # The background pusher would send deltas whenever its second is up; the test calls
    # ``push()`` itself after every group of requests instead.
    found.metrics.interval = 24 * 3600
    return found


@pytest.fixture
def db(database_url: str, database: psycopg.Connection[Any]) -> Iterator[Database]:
    """The flush's own pool on the (emptied) test database, closed after the test."""
    pool = Database(Settings(database_url=database_url))
    yield pool
    pool.close()


def store(client: FlaskClient, namespace: str, keys: list[str]) -> None:
    entries = [{"key": key, "value": {"k": key}, "ttl": 3600} for key in keys]
    response = client.post("/cache/batch-set", json={"entries": entries, "namespace": namespace})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total_failed"] == 0


def hit(client: FlaskClient, namespace: str, hits: Counter[str], misses: int = 0) -> None:
    """GET every key as often as ``hits`` says, plus ``misses`` reads of absent keys."""
    for key, times in hits.items():
        for _ in range(times):
            assert client.get(f"/cache/{key}?namespace={namespace}").status_code == 200
    for n in range(misses):
        assert client.get(f"/cache/absent-{n}?namespace={namespace}").status_code == 404


def hit_counts(conn: psycopg.Connection[Any], namespace: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT key, hit_count FROM cache_entries WHERE namespace = %s", (namespace,)
    ).fetchall()
    return dict(rows)


def flushed_metric(conn: psycopg.Connection[Any], namespace: str, metric: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(metric_value), 0) FROM cache_metrics"
        " WHERE namespace = %s AND metric_name = %s",
        (namespace, metric),
    ).fetchone()
    assert row is not None
    return int(row[0])


def batches_in_flight(services: Services, namespace: str) -> list[bytes]:
    """Ids of the namespace's entry batches handed over but not yet dropped from Redis."""
    pointers = [bucket.flush_pointer for bucket in services.keyspace.all_buckets(namespace)]
    # One GET per bucket: on a cluster the pointers live in different slots.
    values = [services.redis.get(pointer) for pointer in pointers]
    return [value for value in values if value]


def exact_totals(services: Services, db: Database, namespace: str) -> dict[str, float]:
    totals = metric_totals(
        services.pending, db, services.queries, Window.ending_now(None, None), namespace
    )
    return dict(totals.get(namespace, {}))


def flush_entries(services: Services, db: Database) -> flush.FlushReport:
    return flush.flush_entry_stats(services.pending, db, services.queries)


def flush_metrics(services: Services, db: Database) -> flush.FlushReport:
    return flush.flush_metrics(services.pending, db, services.queries, now_ms())


def test_a_batch_committed_but_not_dropped_is_skipped_then_finished(
    client: FlaskClient,
    services: Services,
    db: Database,
    database: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [f"k{n}" for n in range(40)]
    store(client, NS, keys)
    first = Counter({key: 1 + n % 4 for n, key in enumerate(keys)})
    hit(client, NS, first)
    services.metrics.push()  # Registers the namespace, as a web process does within a second.

    # The worker dies after the commit, before the batches leave Redis.
    with monkeypatch.context() as patch:
        patch.setattr(PendingStore, "finish_entry_batches", crash)
        with pytest.raises(SimulatedCrash):
            flush_entries(services, db)
    assert hit_counts(database, NS) == first
    in_flight = batches_in_flight(services, NS)
    assert in_flight
    applied = {row[0] for row in database.execute("SELECT id FROM flush_batches")}
    assert {batch.decode() for batch in in_flight} <= applied

    # Hits keep arriving while the batches wait.
    second = Counter({"k0": 3, "k7": 1})
    hit(client, NS, second)

    # The next run resumes the committed batches: skipped (not applied twice) and finished.
    report = flush_entries(services, db)
    assert report.skipped_batches == len(in_flight)
    assert report.batches == len(in_flight)
    assert report.rows == 0
    assert batches_in_flight(services, NS) == []
    assert hit_counts(database, NS) == first

    # The run after that takes the hits that arrived meanwhile.
    report = flush_entries(services, db)
    assert report.skipped_batches == 0
    assert report.rows == 2
    assert hit_counts(database, NS) == first + second
    assert flush_entries(services, db).batches == 0
    assert hit_counts(database, NS) == first + second


def test_a_run_that_dies_inside_the_transaction_leaves_the_batch_to_be_applied(
    client: FlaskClient,
    services: Services,
    db: Database,
    database: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [f"k{n}" for n in range(10)]
    store(client, NS, keys)
    hits = Counter(dict.fromkeys(keys, 2))
    hit(client, NS, hits)
    services.metrics.push()

    # The batch id is inserted first in the transaction; dying after it must roll it back.
    with monkeypatch.context() as patch:
        patch.setattr(PendingStore, "entry_metadata", crash)
        with pytest.raises(SimulatedCrash):
            flush_entries(services, db)
    assert hit_counts(database, NS) == {}
    assert database.execute("SELECT count(*) FROM flush_batches").fetchone() == (0,)
    assert batches_in_flight(services, NS)

    report = flush_entries(services, db)
    assert report.skipped_batches == 0
    assert hit_counts(database, NS) == hits
    assert batches_in_flight(services, NS) == []


def test_a_metrics_batch_is_applied_once_and_counted_once_meanwhile(
    client: FlaskClient,
    services: Services,
    db: Database,
    database: psycopg.Connection[Any],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store(client, NS, ["a", "b"])
    hit(client, NS, Counter({"a": 7, "b": 5}), misses=4)
    services.metrics.push()

    with monkeypatch.context() as patch:
        patch.setattr(PendingStore, "finish_metrics_batch", crash)
        with pytest.raises(SimulatedCrash):
            flush_metrics(services, db)
    assert flushed_metric(database, NS, "hits") == 12
    assert flushed_metric(database, NS, "misses") == 4
    assert redis_client.get(MetricsKeys.inflight) is not None
    # The batch is both in Postgres and still in Redis: statistics count it once.
    totals = exact_totals(services, db, NS)
    assert (totals["hits"], totals["misses"]) == (12, 4)

    hit(client, NS, Counter({"a": 1}), misses=1)
    services.metrics.push()
    totals = exact_totals(services, db, NS)
    assert (totals["hits"], totals["misses"]) == (13, 5)

    report = flush_metrics(services, db)
    assert (report.batches, report.skipped_batches, report.rows) == (1, 1, 0)
    assert redis_client.get(MetricsKeys.inflight) is None
    assert flushed_metric(database, NS, "hits") == 12
    totals = exact_totals(services, db, NS)
    assert (totals["hits"], totals["misses"]) == (13, 5)

    report = flush_metrics(services, db)
    assert (report.batches, report.skipped_batches) == (1, 0)
    assert flushed_metric(database, NS, "hits") == 13
    assert flushed_metric(database, NS, "misses") == 5
    totals = exact_totals(services, db, NS)
    assert (totals["hits"], totals["misses"]) == (13, 5)
    assert flush_metrics(services, db).batches == 0


def test_nothing_is_lost_while_postgres_is_unreachable(
    client: FlaskClient,
    services: Services,
    db: Database,
    database: psycopg.Connection[Any],
) -> None:
    store(client, NS, ["a", "b"])
    store(client, OTHER_NS, ["c"])
    before = Counter({"a": 3, "b": 1})
    hit(client, NS, before)
    hit(client, OTHER_NS, Counter({"c": 2}))
    services.metrics.push()

    nowhere = Database(
        Settings(
            database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
            database_timeout=0.5,
        )
    )
    try:
        for _ in range(2):  # Every scheduled run fails; the batches wait in Redis.
            with pytest.raises((psycopg.OperationalError, psycopg_pool.PoolTimeout)):
                flush_entries(services, nowhere)
            with pytest.raises((psycopg.OperationalError, psycopg_pool.PoolTimeout)):
                flush_metrics(services, nowhere)
            hit(client, NS, Counter({"a": 1}), misses=1)
            services.metrics.push()
    finally:
        nowhere.close()
    assert batches_in_flight(services, NS)

    for _ in range(3):  # Postgres is back: the batch in flight, then what came meanwhile.
        flush_entries(services, db)
        flush_metrics(services, db)
    assert hit_counts(database, NS) == before + Counter({"a": 2})
    assert hit_counts(database, OTHER_NS) == {"c": 2}
    assert flushed_metric(database, NS, "hits") == 6
    assert flushed_metric(database, NS, "misses") == 2
    assert flushed_metric(database, OTHER_NS, "hits") == 2


def test_overlapping_runs_apply_every_batch_once(
    client: FlaskClient,
    services: Services,
    db: Database,
    database: psycopg.Connection[Any],
) -> None:
    """A redelivered task running beside the original (no lock) still counts each hit once."""
    keys = [f"k{n}" for n in range(30)]
    store(client, NS, keys)
    services.metrics.push()
    expected: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()

    def run_flushes() -> None:
        try:
            while not stop.is_set():
                flush_entries(services, db)
                flush_metrics(services, db)
        except BaseException as error:  # Reported by the main thread.
            errors.append(error)

    runners = [threading.Thread(target=run_flushes) for _ in range(3)]
    for runner in runners:
        runner.start()
    try:
        for round_number in range(8):
            burst = Counter({key: 1 + (n + round_number) % 3 for n, key in enumerate(keys[::3])})
            hit(client, NS, burst)
            services.metrics.push()
            expected += burst
    finally:
        stop.set()
        for runner in runners:
            runner.join(timeout=60)
    assert errors == []
    for _ in range(2):
        flush_entries(services, db)
        flush_metrics(services, db)
    assert hit_counts(database, NS) == {key: expected.get(key, 0) for key in keys}
    assert flushed_metric(database, NS, "hits") == expected.total()
