"""The metrics pipeline end to end: gunicorn, a real ``celery worker`` and ``celery beat``.

The module runs its own stack (``tests/support/stack.py``), isolated from every other test: a
private ``redis-server`` (cache in database 0, Celery broker in database 1; on the cluster and
sentinel runs the cache lives in a private three-master Redis Cluster or behind a private
Sentinel instead), a private Postgres cluster (so a test can take it away), the repository's
gunicorn configuration with two workers and JWT on, and one worker plus beat with short
intervals (flush every 0.5 s, probe every second, a task lock of 2 s so a killed holder's lock
soon expires). No eager mode: tasks go through the broker.

Every test works in a namespace of its own and compares exact figures (per-key hit counts in
``cache_entries``, hits and misses in ``GET /cache/statistics`` and in ``cache_metrics``) with
what its own requests produced, so the tests do not depend on each other's order. Waiting is
always polling with a deadline.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from cacheservice.store.keys import TaskKeys
from tests.support.gunicorn_server import GunicornServer
from tests.support.redis_server import RedisServer
from tests.support.stack import (
    FLUSH_TASK,
    TIMEOUT,
    UNLIMITED,
    Stack,
    public_get,
    start_stack,
    wait_until,
)

pytestmark = pytest.mark.e2e

KILLS = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_topology: str) -> Iterator[Stack]:
    """The module's deployment; ``client`` and ``logs_on_failure`` (tests/e2e/conftest.py)
    build on it."""
    with start_stack(tmp_path_factory.mktemp("pipeline"), topology=redis_topology) as started:
        yield started


def test_every_hit_and_miss_reaches_postgres_and_statistics_exactly(
    logs_on_failure: Stack,
) -> None:
    pipeline = logs_on_failure
    ns = "e2e-exact"
    hits = Counter({"alpha": 100, "beta": 70, "gamma": 50, "delta": 20, "epsilon": 10})
    pipeline.store(ns, list(hits))
    pipeline.read_all(ns, hits, misses=40)
    assert hits.total() == 250

    wait_until(lambda: pipeline.hit_counts(ns) == hits, what="hit counts in cache_entries")
    wait_until(lambda: pipeline.reads_counted(ns) == (250, 40), what="exact statistics")
    wait_until(
        lambda: (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (250, 40),
        what="hits and misses in cache_metrics",
    )
    pipeline.wait_for_flushes()
    assert pipeline.hit_counts(ns) == hits
    assert (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (250, 40)

    body = pipeline.statistics(namespace=ns, top="2").json()
    figures = body["namespace_stats"][ns]
    assert (figures["hits"], figures["misses"], figures["sets"], figures["keys"]) == (
        250,
        40,
        5,
        5,
    )
    assert figures["hit_rate"] == round(250 / 290, 4)
    assert [(item["key"], item["namespace"], item["hit_count"]) for item in body["top_keys"]] == [
        ("alpha", ns, 100),
        ("beta", ns, 70),
    ]
    assert body["top_keys"][0]["last_accessed"] is not None


def test_killing_the_worker_mid_flush_neither_loses_nor_doubles(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    """SIGKILL the worker's process group whenever a batch has just been claimed, restart it.

    Hits keep arriving over HTTP the whole time. Every other kill follows the claim at once
    (before the Postgres commit: the transaction rolls back, the batch is applied by a later
    run); the others wait for the commit to show and kill then (the later run finds the batch
    applied, skips it and only drops it), unless the flush finished first. The in-process
    tests of ``test_flush_exactly_once.py`` hit each of these moments deterministically.
    """
    pipeline = logs_on_failure
    ns = "e2e-kill"
    keys = [f"key-{n}" for n in range(1200)]
    pipeline.store(ns, keys)
    expected: Counter[str] = Counter()
    misses = 0
    stop = threading.Event()
    load_errors: list[BaseException] = []

    def load() -> None:
        nonlocal misses
        try:
            n = 0
            while not stop.is_set():
                chunk = random.sample(keys, 300) + [f"gone-{n}-{m}" for m in range(5)]
                found = pipeline.batch_get(ns, chunk)
                expected.update(found)
                misses += len(chunk) - len(found)
                n += 1
                time.sleep(0.01)
        except BaseException as error:  # Reported by the test thread.
            load_errors.append(error)

    loader = threading.Thread(target=load)
    loader.start()
    kills: list[str] = []
    try:
        with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
            seen = pipeline.batches_in_flight(client, ns)
            for number in range(KILLS):
                # A batch id not seen before: a flush has just claimed it and is running now.
                fresh = wait_until(
                    lambda seen=seen: pipeline.batches_in_flight(client, ns) - seen,
                    interval=0.002,
                    what="a newly claimed batch",
                )
                if number % 2:
                    # Aim at the few milliseconds between the commit and dropping the batch.
                    wait_until(
                        lambda fresh=fresh: (
                            applied(conn, fresh)
                            or not fresh & pipeline.batches_in_flight(client, ns)
                        ),
                        interval=0.0005,
                        what="the batch's commit",
                    )
                pipeline.worker.kill()
                target = fresh & pipeline.batches_in_flight(client, ns)
                if not target:
                    kills.append("after the flush")
                else:
                    kills.append("after commit" if applied(conn, target) else "before commit")
                seen |= fresh | pipeline.batches_in_flight(client, ns)
                pipeline.worker.start()
    finally:
        stop.set()
        loader.join(timeout=TIMEOUT)
        if not pipeline.worker.is_running():  # The other tests need it.
            pipeline.worker.start()
    assert load_errors == []
    print(f"kills: {Counter(kills)}; hits {expected.total()}, misses {misses}")

    everything = {key: expected[key] for key in keys}
    wait_until(lambda: pipeline.hit_counts(ns) == everything, what="exact hit counts")
    wait_until(lambda: pipeline.batches_in_flight(client, ns) == set(), what="every batch finished")
    total = expected.total()
    wait_until(lambda: pipeline.reads_counted(ns) == (total, misses), what="exact statistics")
    wait_until(
        lambda: (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (total, misses),
        what="hits and misses in cache_metrics",
    )
    pipeline.wait_for_flushes()
    assert pipeline.hit_counts(ns) == everything
    assert (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (total, misses)
    assert pipeline.worker.is_running()


def applied(conn: psycopg.Connection[Any], batch_ids: set[str]) -> bool:
    """Whether any of the batches is committed in Postgres."""
    row = conn.execute(
        "SELECT count(*) FROM flush_batches WHERE id = ANY(%s)", (list(batch_ids),)
    ).fetchone()
    return bool(row and row[0])


def failed_runs(log: str) -> int:
    return len(re.findall(r"cacheservice\.flush_entry_stats\[[^]]+\] raised unexpected", log))


def test_a_postgres_outage_delays_the_counts_and_loses_none(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    pipeline = logs_on_failure
    ns = "e2e-outage"
    keys = [f"k{n}" for n in range(20)]
    pipeline.store(ns, keys)
    before = Counter({key: 1 + n % 3 for n, key in enumerate(keys)})
    pipeline.read_all(ns, before, misses=5)
    wait_until(lambda: pipeline.hit_counts(ns) == before, what="the first hits in Postgres")
    worker_pid = pipeline.worker.pid
    log_offset = len(pipeline.worker.log_text())

    pipeline.postgres.stop(mode="immediate")
    try:
        during = Counter(dict.fromkeys(keys[::2], 2))
        pipeline.read_all(ns, during, misses=7)

        status, body = wait_until(
            lambda: (lambda found: found if found[1]["status"] == "degraded" else None)(
                pipeline.health()
            ),
            what="degraded health",
        )
        assert status == 200
        assert body["postgres"]["status"] == "disconnected"
        response = pipeline.statistics(namespace=ns)
        assert response.status_code == 503
        assert response.json()["error"] == "service_unavailable"

        # The worker keeps trying on schedule; each run fails and leaves the batches in Redis.
        wait_until(
            lambda: failed_runs(pipeline.worker.log_text()[log_offset:]) >= 2,
            what="failing flushes",
        )
        assert pipeline.batches_in_flight(client, ns)
        assert pipeline.worker.is_running()
    finally:
        pipeline.postgres.start()

    expected = before + during
    wait_until(lambda: pipeline.hit_counts(ns) == expected, what="every hit after the outage")
    hits, misses = expected.total(), 12
    wait_until(lambda: pipeline.reads_counted(ns) == (hits, misses), what="exact statistics")
    wait_until(
        lambda: (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (hits, misses),
        what="hits and misses in cache_metrics",
    )
    pipeline.wait_for_flushes()
    assert pipeline.hit_counts(ns) == expected
    assert pipeline.worker.pid == worker_pid  # Never crashed or restarted.
    wait_until(lambda: pipeline.health()[1]["status"] == "healthy", what="healthy again")


def minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_statistics_windows_take_whole_minutes(logs_on_failure: Stack) -> None:
    pipeline = logs_on_failure
    ns = "e2e-windows"
    # Every request of this test (well under a second of them) must fall in one minute: wait
    # for the next one when this one is nearly over.
    now = datetime.now(UTC)
    if now.second >= 55:
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
    minute = minute_start(datetime.now(UTC))
    hits = Counter({"x": 20, "y": 10})
    pipeline.store(ns, list(hits))
    pipeline.read_all(ns, hits, misses=12)
    assert minute_start(datetime.now(UTC)) == minute, "the requests crossed a minute"
    wait_until(
        lambda: (pipeline.flushed(ns, "hits"), pipeline.flushed(ns, "misses")) == (30, 12),
        what="the minute's samples in cache_metrics",
    )

    def counted(start: datetime | None, end: datetime | None) -> tuple[int, int]:
        params = {}
        if start is not None:
            params["date_from"] = rfc3339(start)
        if end is not None:
            params["date_to"] = rfc3339(end)
        return pipeline.reads_counted(ns, **params)

    second = timedelta(seconds=1)
    assert counted(None, None) == (30, 12)
    assert counted(None, minute - second) == (0, 0)  # Ends before the minute.
    assert counted(minute - timedelta(hours=1), minute) == (30, 12)  # Ends as it starts.
    assert counted(minute + 30 * second, minute + 30 * second) == (30, 12)  # Inside it.
    assert counted(minute + 59 * second, minute + 90 * second) == (30, 12)  # Its last second.
    assert counted(minute + 60 * second, minute + 120 * second) == (0, 0)  # Starts after it.
    assert counted(minute - timedelta(days=2), minute - timedelta(days=1)) == (0, 0)


def test_health_follows_the_workers(logs_on_failure: Stack, client: redis.Redis) -> None:
    pipeline = logs_on_failure

    def healthy() -> dict[str, Any] | None:
        status, body = pipeline.health()
        ready = status == 200 and body["status"] == "healthy" and body["uptime"] is not None
        return body if ready else None

    body = wait_until(healthy, what="healthy with an uptime figure")
    assert re.fullmatch(r"\d{1,3}\.\d%", body["uptime"])
    assert body["uptime_probes"] >= 1
    assert body["workers"]["status"] == "up"
    assert body["workers"]["flush_lag_seconds"] < 10
    assert body["postgres"]["status"] == "connected"
    assert body["redis"]["status"] == "connected"

    pipeline.beat.stop()
    pipeline.worker.stop()
    try:
        # With no worker the lag only grows; jump two minutes ahead instead of waiting them.
        stale = int(time.time() * 1000) - 120_000
        client.set(TaskKeys.last_run(FLUSH_TASK), stale)
        status, body = pipeline.health()
        assert status == 200
        assert body["status"] == "degraded"
        assert body["workers"]["status"] == "down"
        assert body["workers"]["flush_lag_seconds"] >= 120
        assert body["redis"]["status"] == "connected"
    finally:
        pipeline.start_celery()
    body = wait_until(healthy, what="healthy once the workers are back")
    assert body["workers"]["flush_lag_seconds"] < 10


def test_health_is_unhealthy_while_redis_is_down_and_recovers(
    tmp_path: Path, database_url: str
) -> None:
    """A web process whose Redis dies answers 503 quickly, and recovers when Redis returns."""
    redis_server = RedisServer(tmp_path).start()
    env = {
        "CACHE_REDIS_URL": redis_server.url,
        "CACHE_DATABASE_URL": database_url,
        "CACHE_WEB_WORKERS": "1",
        "CACHE_AUTH_MODE": "disabled",
        "CACHE_RATE_LIMIT_HEALTH": UNLIMITED,
    }
    web = GunicornServer(env, tmp_path / "gunicorn.log").start()
    try:
        health = f"{web.base_url}/cache/health"
        response = public_get(health)
        assert response.status_code == 200
        # No worker has ever flushed for this Redis.
        assert response.json()["status"] == "degraded"
        assert response.json()["workers"]["status"] == "down"

        redis_server.kill()
        started = time.monotonic()
        response = public_get(health)
        assert time.monotonic() - started < 5
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["redis"]["status"] == "disconnected"

        redis_server.start()
        wait_until(
            lambda: public_get(health).status_code == 200,
            what="health back to 200",
        )
    finally:
        web.stop()
        redis_server.stop()
