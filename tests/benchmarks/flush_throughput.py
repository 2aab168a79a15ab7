"""How fast the entry-statistics flush moves pending hits to Postgres, and how late they arrive.

1. Throughput. A private ``redis-server`` is filled with ``--entries`` pending hit records
   spread over ``--namespaces`` namespaces, the service's way: batch-set and batch GET calls
   (1000 keys each) into the Flask app in process, which run the entry scripts that count
   hits. Then ``flush_entry_stats`` runs once into a scratch Postgres database (every row an
   insert) and, after one more GET of every entry, once more (every row an update).
2. Delay. gunicorn, ``celery worker`` and ``celery beat`` run with the default intervals
   (flush every 5 s); single GETs over HTTP at random moments, each timed until its hit shows
   in ``cache_entries.hit_count``.

    python -m tests.benchmarks.flush_throughput [--entries 100000] [--namespaces 10]
        [--samples 8] [--database-url postgresql://postgres@127.0.0.1:5432/cacheservice_bench]

Needs ``redis-server`` on PATH and a Postgres it may create and drop the scratch database in.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cacheservice import create_app
from cacheservice.config import Settings
from cacheservice.db import Database
from cacheservice.metrics import flush
from cacheservice.migrations import upgrade
from cacheservice.services import EXTENSION_NAME, Services
from tests.support.celery_processes import CeleryProcess, celery_env
from tests.support.gunicorn_server import GunicornServer
from tests.support.redis_server import RedisServer

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cacheservice_bench_flush"
BATCH = 1000
UNLIMITED = "1000000000/hour"


def recreate_database(url: str) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    upgrade(url)


def drop_database(url: str) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def fill(app: Any, entries: int, namespaces: int) -> dict[str, list[str]]:
    """Store the entries and GET each once (batch calls): one pending hit record per entry."""
    client = app.test_client()
    keys: dict[str, list[str]] = {}
    per_namespace = entries // namespaces
    for n in range(namespaces):
        namespace = f"bench-{n}"
        keys[namespace] = [f"user:{n}:{i}" for i in range(per_namespace)]
        for start in range(0, per_namespace, BATCH):
            chunk = keys[namespace][start : start + BATCH]
            body = {
                "namespace": namespace,
                "entries": [{"key": key, "value": {"id": key}, "ttl": 3600} for key in chunk],
            }
            response = client.post("/cache/batch-set", json=body)
            assert response.status_code == 200, response.get_json()
    hit_all(app, keys)
    return keys


def hit_all(app: Any, keys: dict[str, list[str]]) -> None:
    client = app.test_client()
    for namespace, names in keys.items():
        for start in range(0, len(names), BATCH):
            chunk = names[start : start + BATCH]
            response = client.post("/cache/batch", json={"namespace": namespace, "keys": chunk})
            assert response.status_code == 200
            assert response.get_json()["total_found"] == len(chunk)
    services: Services = app.extensions[EXTENSION_NAME]
    services.metrics.push()  # Registers the namespaces, as the web processes do each second.


def timed_flush(services: Services, database: Database) -> tuple[float, flush.FlushReport]:
    started = time.perf_counter()
    report = flush.flush_entry_stats(services.pending, database, services.queries)
    return time.perf_counter() - started, report


def throughput(args: argparse.Namespace, workdir: Path) -> None:
    (workdir / "throughput").mkdir()
    redis_server = RedisServer(workdir / "throughput").start()
    try:
        app = create_app(
            {
                "redis_url": redis_server.url,
                "database_url": args.database_url,
                "auth_mode": "disabled",
                "rate_limit_cache": UNLIMITED,
                "rate_limit_batch": UNLIMITED,
            }
        )
        services: Services = app.extensions[EXTENSION_NAME]
        started = time.perf_counter()
        keys = fill(app, args.entries, args.namespaces)
        total = sum(len(names) for names in keys.values())
        print(
            f"filled {total} entries in {len(keys)} namespaces "
            f"in {time.perf_counter() - started:.1f} s"
        )
        database = Database(Settings(database_url=args.database_url, database_timeout=30))
        try:
            for label in ("insert", "update"):
                elapsed, report = timed_flush(services, database)
                assert report.rows == total, report
                print(
                    f"flush_entry_stats ({label}s): {report.rows} entries, "
                    f"{report.batches} batches in {elapsed:.2f} s "
                    f"= {report.rows / elapsed:,.0f} entries/s"
                )
                if label == "insert":
                    hit_all(app, keys)
            with psycopg.connect(args.database_url) as conn:
                row = conn.execute("SELECT count(*), sum(hit_count) FROM cache_entries").fetchone()
            assert row == (total, 2 * total), row
        finally:
            database.close()
            services.shutdown()
    finally:
        redis_server.stop()


def delay(args: argparse.Namespace, workdir: Path) -> None:
    directory = workdir / "delay"
    directory.mkdir()
    redis_server = RedisServer(directory).start()
    base = f"redis://127.0.0.1:{redis_server.port}"
    env = celery_env(
        redis_url=f"{base}/0",
        broker_url=f"{base}/1",
        database_url=args.database_url,
        schedule_file=directory / "beat-schedule",
    )
    # The deployment defaults: only the connection settings are given.
    for name in ("CACHE_FLUSH_INTERVAL", "CACHE_PROBE_INTERVAL", "CACHE_TASK_LOCK_SECONDS"):
        env.pop(name)
    web_env = {
        **env,
        "CACHE_WEB_WORKERS": "2",
        "CACHE_AUTH_MODE": "disabled",
        "CACHE_RATE_LIMIT_CACHE": UNLIMITED,
        "CACHE_LOG_LEVEL": "WARNING",
    }
    web = GunicornServer(web_env, directory / "gunicorn.log").start()
    worker = CeleryProcess("worker", env, directory / "worker.log")
    beat = CeleryProcess("beat", env, directory / "beat.log")
    try:
        worker.start()
        beat.start()
        namespace, key = "bench-delay", "probe"
        session = requests.Session()
        response = session.post(
            f"{web.base_url}/cache", json={"key": key, "value": 1, "namespace": namespace}
        )
        assert response.status_code in (200, 201), response.text
        samples: list[float] = []
        with psycopg.connect(args.database_url, autocommit=True) as conn:

            def flushed_hits() -> int:
                row = conn.execute(
                    "SELECT hit_count FROM cache_entries WHERE namespace = %s AND key = %s",
                    (namespace, key),
                ).fetchone()
                return int(row[0]) if row else -1

            for sample in range(args.samples + 1):
                before = flushed_hits()
                target = max(before, 0) + 1
                started = time.monotonic()
                response = session.get(f"{web.base_url}/cache/{key}?namespace={namespace}")
                assert response.status_code == 200
                while flushed_hits() < target:
                    if time.monotonic() - started > 120:
                        raise SystemExit(f"no flush within 120 s:\n{worker.log_tail()}")
                    time.sleep(0.01)
                took = time.monotonic() - started
                if sample:  # The first one waits for the namespace to be registered too.
                    samples.append(took)
                time.sleep(random.uniform(0, 5))
        session.close()
        print(
            f"hit -> Postgres delay over {len(samples)} GETs (flush every "
            f"{Settings().flush_interval:g} s): min {min(samples):.2f} s, "
            f"median {statistics.median(samples):.2f} s, max {max(samples):.2f} s"
        )
    finally:
        beat.stop()
        worker.stop()
        web.stop()
        redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    recreate_database(args.database_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            throughput(args, Path(tmp))
            recreate_database(args.database_url)
            delay(args, Path(tmp))
    finally:
        drop_database(args.database_url)


if __name__ == "__main__":
    main()
