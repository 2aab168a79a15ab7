"""A whole private deployment for e2e tests and reliability scripts.

``start_stack`` runs a private ``redis-server`` (cache in database 0, Celery broker in database
1; optionally a private Redis Cluster for the cache instead), a private Postgres cluster (so a
test can take it away), the repository's gunicorn configuration with two workers and JWT on,
and one Celery worker plus beat. No eager mode: tasks go through the broker. Optionally the
rate limiter keeps its state in a second private ``redis-server``
(``CACHE_RATE_LIMIT_REDIS_URL``), so a test can take the limiter's store away alone.

:class:`Stack` is the handle: HTTP helpers (a keep-alive session per thread), direct reads of
Postgres and Redis, and waits for flushes. Waiting is always polling with a deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from cacheservice.migrations import upgrade
from cacheservice.store.keys import KeySpace, MetricsKeys, TaskKeys
from tests.support.auth import TEST_JWT_SECRET, bearer, make_token
from tests.support.celery_processes import CeleryProcess, celery_env
from tests.support.gunicorn_server import GunicornServer
from tests.support.postgres_server import PostgresServer
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_sentinel import RedisSentinel
from tests.support.redis_server import RedisServer
from tests.support.topology import CLUSTER, SENTINEL, SINGLE, raw_client

TIMEOUT = 30
BUCKETS = 16  # The deployment default, which the stack runs with.
UNLIMITED = "100000000/hour"
FLUSH_TASK = "flush_entry_stats"
RATE_LIMIT_CATEGORIES = ("CACHE", "BATCH", "STATISTICS", "HEALTH", "SESSIONS")


class WaitTimeout(AssertionError):
    """A condition polled by :func:`wait_until` did not hold in time (a failed assertion)."""


def wait_until(
    check: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value at the end."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout} s waiting for {what or check}: last {value!r}")


def public_get(url: str) -> requests.Response:
    """A request without a token on a connection of its own, closed after the response.

    A keep-alive connection left open would hold gunicorn's graceful stop for its whole
    ``graceful_timeout``.
    """
    return requests.get(url, headers={"Connection": "close"}, timeout=TIMEOUT)


@dataclass
class Stack:
    directory: Path
    redis_server: RedisServer
    cache_url: str
    broker_url: str
    postgres: PostgresServer
    database_url: str
    web: GunicornServer
    worker: CeleryProcess
    beat: CeleryProcess
    # The variables the worker and beat run with (the web process adds its own to them).
    celery_env: dict[str, str]
    limiter_server: RedisServer | None = None
    token: str = field(default_factory=lambda: make_token(sub="e2e-pipeline", ttl=3600))
    _local: threading.local = field(default_factory=threading.local)
    _sessions: list[requests.Session] = field(default_factory=list)

    # HTTP

    @property
    def http(self) -> requests.Session:
        """A keep-alive session per thread (sessions are not thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(bearer(self.token))
            self._local.session = session
            self._sessions.append(session)
        return session

    def close_sessions(self) -> None:
        """Close every keep-alive connection: gunicorn's graceful stop waits for open ones."""
        for session in self._sessions:
            session.close()

    def url(self, path: str) -> str:
        return f"{self.web.base_url}{path}"

    def store(self, namespace: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            entries = [{"key": key, "value": key, "ttl": 3600} for key in keys[start:][:1000]]
            response = self.http.post(
                self.url("/cache/batch-set"),
                json={"entries": entries, "namespace": namespace},
                timeout=TIMEOUT,
            )
            assert response.status_code == 200, response.text
            assert response.json()["total_failed"] == 0

    def get(self, namespace: str, key: str) -> int:
        response = self.http.get(
            self.url(f"/cache/{key}"), params={"namespace": namespace}, timeout=TIMEOUT
        )
        assert response.status_code in (200, 404), response.text
        return response.status_code

    def batch_get(self, namespace: str, keys: list[str]) -> list[str]:
        response = self.http.post(
            self.url("/cache/batch"), json={"keys": keys, "namespace": namespace}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        return [entry["key"] for entry in response.json()["entries"]]

    def read_all(self, namespace: str, hits: Counter[str], misses: int) -> None:
        """One GET per hit and per miss, in a shuffled order, from eight threads."""
        reads = list(hits.elements()) + [f"absent-{n}" for n in range(misses)]
        random.shuffle(reads)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = Counter(pool.map(lambda key: self.get(namespace, key), reads))
        assert statuses == Counter({200: hits.total(), 404: misses})

    def statistics(self, **params: str) -> requests.Response:
        return self.http.get(self.url("/cache/statistics"), params=params, timeout=TIMEOUT)

    def reads_counted(self, namespace: str, **params: str) -> tuple[int, int] | None:
        """(hits, misses) of the namespace; None while Postgres is unavailable (503)."""
        response = self.statistics(namespace=namespace, **params)
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.text
        figures = response.json()["namespace_stats"][namespace]
        return figures["hits"], figures["misses"]

    def health(self) -> tuple[int, dict[str, Any]]:
        response = public_get(self.url("/cache/health"))
        return response.status_code, response.json()

    # Postgres and Redis, read directly

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def hit_counts(self, namespace: str) -> dict[str, int]:
        rows = self.query(
            "SELECT key, hit_count FROM cache_entries WHERE namespace = %s", namespace
        )
        return dict(rows)

    def flushed(self, namespace: str, metric: str) -> int:
        rows = self.query(
            "SELECT coalesce(sum(metric_value), 0) FROM cache_metrics"
            " WHERE namespace = %s AND metric_name = %s",
            namespace,
            metric,
        )
        return int(rows[0][0])

    def redis(self) -> redis.Redis:
        return raw_client(self.cache_url)

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url, socket_timeout=5)

    def batches_in_flight(self, client: redis.Redis, namespace: str) -> set[str]:
        """Ids of the namespace's entry batches and the metrics batch, claimed, not finished."""
        pointers = [b.flush_pointer for b in KeySpace(BUCKETS).all_buckets(namespace)]
        values = client.mget([*pointers, MetricsKeys.inflight])
        return {value.decode() for value in values if value}

    def last_flush_ms(self, client: redis.Redis) -> int:
        value = client.get(TaskKeys.last_run(FLUSH_TASK))
        return int(value) if value else 0

    def wait_for_flushes(self, count: int = 2) -> None:
        """Until ``count`` more runs of the entry flush completed (so nothing more is coming)."""
        client = self.redis()
        try:
            for _ in range(count):
                before = self.last_flush_ms(client)
                wait_until(
                    lambda before=before: self.last_flush_ms(client) > before,
                    what="a completed flush",
                )
        finally:
            client.close()

    def web_worker_pids(self) -> set[int]:
        """The gunicorn workers' pids: a crashed and replaced worker changes them."""
        assert self.web.process is not None
        pid = self.web.process.pid
        return {
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        }

    def start_celery(self) -> None:
        self.worker.start()
        self.beat.start()


def web_environment(celery_variables: Mapping[str, str]) -> dict[str, str]:
    """The web process's variables: the workers' ones, JWT on, every rate limit very high."""
    web_env = {
        **celery_variables,
        "CACHE_WEB_WORKERS": "2",
        "CACHE_AUTH_MODE": "jwt",
        "CACHE_JWT_SECRET": TEST_JWT_SECRET,
    }
    for category in RATE_LIMIT_CATEGORIES:
        web_env[f"CACHE_RATE_LIMIT_{category}"] = UNLIMITED
    return web_env


@contextmanager
def start_stack(
    directory: Path,
    *,
    topology: str = SINGLE,
    separate_limiter: bool = False,
    flush_interval: float = 0.5,
    probe_interval: float = 1.0,
    task_lock_seconds: int = 2,
    database_timeout: float = 1.0,
    web_overrides: Mapping[str, str] | None = None,
    worker_class: type[CeleryProcess] = CeleryProcess,
) -> Iterator[Stack]:
    """Start everything, yield the handle, stop everything (also on failure).

    The defaults suit tests: a flush every 0.5 s, a probe every second, a task lock of 2 s so
    a killed holder's lock soon expires, and Postgres attempts that give up after a second.
    """
    redis_server = RedisServer(directory).start()
    limiter_server: RedisServer | None = None
    # The cache's own Redis on the cluster and sentinel passes; the broker stays a plain one.
    redis_cluster = RedisCluster(masters=3, replicas=0) if topology == CLUSTER else None
    watched = RedisSentinel(sentinels=1, quorum=1) if topology == SENTINEL else None
    postgres = PostgresServer()
    started: list[Any] = []
    try:
        if separate_limiter:
            limiter_dir = directory / "limiter"
            limiter_dir.mkdir(exist_ok=True)
            limiter_server = RedisServer(limiter_dir).start()
        postgres.start()
        database_url = postgres.url("cacheservice")
        upgrade(database_url)
        base = f"redis://127.0.0.1:{redis_server.port}"
        cache_url = f"{base}/0"
        if redis_cluster:
            cache_url = redis_cluster.start().url
        elif watched:
            cache_url = watched.start().url
        broker_url = f"{base}/1"
        env = celery_env(
            redis_url=cache_url,
            broker_url=broker_url,
            database_url=database_url,
            schedule_file=directory / "beat-schedule",
            flush_interval=flush_interval,
            probe_interval=probe_interval,
            task_lock_seconds=task_lock_seconds,
        )
        env["CACHE_DATABASE_TIMEOUT"] = str(database_timeout)
        web_env = web_environment(env)
        if limiter_server is not None:
            web_env["CACHE_RATE_LIMIT_REDIS_URL"] = limiter_server.url
        web_env.update(web_overrides or {})
        web = GunicornServer(web_env, directory / "gunicorn.log").start()
        started.append(web)
        worker = worker_class("worker", env, directory / "worker.log")
        beat = CeleryProcess("beat", env, directory / "beat.log")
        started += [worker, beat]
        stack = Stack(
            directory,
            redis_server,
            cache_url,
            broker_url,
            postgres,
            database_url,
            web,
            worker,
            beat,
            env,
            limiter_server,
        )
        stack.start_celery()
        try:
            yield stack
        finally:
            stack.close_sessions()
    finally:
        for process in reversed(started):
            process.stop()
        redis_server.stop()
        if limiter_server is not None:
            limiter_server.stop()
        for topology_servers in (redis_cluster, watched):
            if topology_servers:
                topology_servers.stop()
        postgres.destroy()
