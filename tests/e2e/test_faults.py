"""Faults injected into a running deployment: Redis, Postgres, the Celery worker and beat, and
the rate limiter's store, each taken away while requests keep arriving.

The module runs one private stack (``tests/support/stack.py``: gunicorn with two workers, a
Celery worker and beat, private ``redis-server`` and Postgres), with the limiter's state in a
second private ``redis-server`` so that it can fail alone. Every test works in a namespace of
its own and compares exact figures with what its own requests produced.

Covered elsewhere, not repeated here: Redis killed, frozen or never up for each operation in
process (``tests/integration/test_redis_down.py``), NOSCRIPT after ``SCRIPT FLUSH`` for single
and pipelined calls (``test_roundtrips.py``), the worker killed at chosen moments of a flush and
a long Postgres outage (``test_metrics_pipeline.py``), each flush step crashed in process
(``tests/integration/test_flush_exactly_once.py``), a limiter store that never answers
(``tests/integration/test_rate_limits.py``).
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.support.celery_processes import CeleryProcess
from tests.support.stack import TIMEOUT, Stack, start_stack, wait_until
from tests.support.traffic import HitLoad, WriteStream, hit_load

# Starts its own servers whatever --redis-topology says: run once, on the single-node pass.
pytestmark = [pytest.mark.e2e, pytest.mark.topology_independent]

WRITERS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The module's deployment; ``client`` and ``logs_on_failure`` (tests/e2e/conftest.py)
    build on it."""
    with start_stack(tmp_path_factory.mktemp("faults"), separate_limiter=True) as started:
        yield started


def assert_exact_hits(stack: Stack, client: redis.Redis, namespace: str, load: HitLoad) -> None:
    """Postgres ends with every key's hits, once: nothing lost, nothing counted twice."""
    everything = {key: load.hits[key] for key in load.keys}
    wait_until(lambda: stack.hit_counts(namespace) == everything, timeout=60, what="exact hits")
    wait_until(lambda: stack.batches_in_flight(client, namespace) == set(), what="batches done")
    stack.wait_for_flushes()
    assert stack.hit_counts(namespace) == everything


def failed_flushes(log: str) -> int:
    return len(re.findall(r"cacheservice\.flush_entry_stats\[[^]]+\] raised unexpected", log))


# The worker killed again and again


def test_a_worker_killed_every_few_seconds_during_100k_hits_counts_each_once(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    """SIGKILL the worker's process group at random moments 1-3 s apart, five times, while
    batch GETs make well over 100,000 hits; Postgres ends with each key's exact count.

    ``test_metrics_pipeline.py`` aims its kills at the moments around a flush's commit; these
    land wherever they land (inside a flush, between flushes, while a task is queued or in the
    worker's prefetch), many times over a large volume.
    """
    stack = logs_on_failure
    ns = "faults-kill"
    keys = [f"key-{n}" for n in range(2000)]
    stack.store(ns, keys)
    rng = random.Random(9)
    kills = 0
    with hit_load(stack, ns, keys, per_call=500) as load:
        try:
            for _ in range(5):
                # The fault schedule itself, not a wait for something to happen.
                time.sleep(rng.uniform(1.0, 3.0))
                stack.worker.kill()
                kills += 1
                stack.worker.start()
            wait_until(lambda: load.total() >= 100_000, timeout=60, what="100k hits")
        finally:
            if not stack.worker.is_running():  # The other tests need it.
                stack.worker.start()
    print(f"{kills} kills during {load.hits.total()} hits")
    assert kills == 5
    assert load.hits.total() >= 100_000
    assert_exact_hits(stack, client, ns, load)


# Postgres restarted while flushes run


def test_postgres_restarted_during_flushes_loses_and_doubles_nothing(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    """Crash Postgres (``pg_ctl stop -m immediate``) just after a flush claimed a batch and
    start it again, three times, under a steady hit load: the cache keeps answering, and the
    counts in Postgres come out exact, without restarting the worker."""
    stack = logs_on_failure
    ns = "faults-postgres"
    keys = [f"k{n}" for n in range(500)]
    stack.store(ns, keys)
    worker_pid = stack.worker.pid
    log_offset = len(stack.worker.log_text())
    with hit_load(stack, ns, keys, per_call=100) as load:
        seen = stack.batches_in_flight(client, ns)
        for _ in range(3):
            fresh = wait_until(
                lambda seen=seen: stack.batches_in_flight(client, ns) - seen,
                interval=0.002,
                what="a newly claimed batch",
            )
            seen |= fresh
            stack.postgres.stop(mode="immediate")
            stack.postgres.start()
            # The next restart waits for a flush that succeeded after this one.
            stack.wait_for_flushes(1)
            seen |= stack.batches_in_flight(client, ns)
    # Each crash hit a claimed batch (waited for above). Whether the flush holding it failed
    # depends on timing: a flush that reaches Postgres after the restart gets a checked, fresh
    # connection and succeeds. Either way the totals must be exact.
    failed = failed_flushes(stack.worker.log_text()[log_offset:])
    print(f"{failed} flush runs failed; {load.hits.total()} hits")
    assert_exact_hits(stack, client, ns, load)
    assert stack.worker.pid == worker_pid  # Never crashed or restarted.


def create_sessions(stack: Stack, count: int) -> Counter[int]:
    """``count`` session creations from eight threads at once; their statuses."""

    def create(n: int) -> int:
        body = {"user_id": str(uuid.UUID(int=n)), "data": {"n": n}, "ttl": 600}
        response = stack.http.post(stack.url("/sessions"), json=body, timeout=TIMEOUT)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(create, range(count)))


def test_sessions_are_written_at_once_after_a_postgres_restart(logs_on_failure: Stack) -> None:
    """Connections pooled before a Postgres restart are dead after it; no request may be the
    one that finds out (sessions are written to Postgres in the request)."""
    stack = logs_on_failure
    # Parallel creations open several pooled connections in each web worker.
    assert create_sessions(stack, 32) == Counter({201: 32})
    stack.postgres.stop(mode="immediate")
    stack.postgres.start()
    assert create_sessions(stack, 32) == Counter({201: 32})


# Two beat processes by mistake


def test_two_beat_processes_still_count_exactly(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    """A second beat (as if started on a second host) doubles every periodic task; the task
    locks and the batch ids keep the effect single."""
    stack = logs_on_failure
    ns = "faults-beats"
    keys = [f"k{n}" for n in range(300)]
    stack.store(ns, keys)
    second = CeleryProcess(
        "beat",
        {**stack.celery_env, "CACHE_BEAT_SCHEDULE_FILE": str(stack.directory / "beat2-schedule")},
        stack.directory / "beat2.log",
    )
    first_offset = len(stack.beat.log_text())
    second.start()
    try:
        with hit_load(stack, ns, keys, per_call=100) as load:
            wait_until(lambda: flushes_sent(second.log_text()) >= 10, what="the second beat")
        assert flushes_sent(stack.beat.log_text()[first_offset:]) >= 5
    finally:
        second.stop()
    assert_exact_hits(stack, client, ns, load)
    assert stack.beat.is_running()


def flushes_sent(log: str) -> int:
    return log.count("Sending due task flush-entry-stats")


# The limiter's store down


def rate_limited_get(stack: Stack, namespace: str, key: str) -> requests.Response:
    return stack.http.get(
        stack.url(f"/cache/{key}"), params={"namespace": namespace}, timeout=TIMEOUT
    )


def limiter_failures(stack: Stack) -> float:
    text = stack.http.get(stack.url("/metrics"), timeout=TIMEOUT).text
    found = re.search(r"^cacheservice_rate_limiter_store_failures_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_the_cache_is_served_while_the_limiters_store_is_down(logs_on_failure: Stack) -> None:
    stack = logs_on_failure
    assert stack.limiter_server is not None
    ns = "faults-limiter"
    stack.store(ns, ["k"])
    response = rate_limited_get(stack, ns, "k")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" in response.headers
    failures_before = limiter_failures(stack)

    stack.limiter_server.kill()
    try:
        operations: dict[str, Callable[[], requests.Response]] = {
            "get": lambda: rate_limited_get(stack, ns, "k"),
            "post": lambda: stack.http.post(
                stack.url("/cache"), json={"namespace": ns, "key": "p", "value": 1}, timeout=TIMEOUT
            ),
            "batch": lambda: stack.http.post(
                stack.url("/cache/batch"),
                json={"namespace": ns, "keys": ["k", "p"]},
                timeout=TIMEOUT,
            ),
            "session": lambda: stack.http.post(
                stack.url("/sessions"),
                json={"user_id": "7d8a1f0e-1111-4222-8333-444455556666", "data": {}},
                timeout=TIMEOUT,
            ),
        }
        statuses = Counter()
        for _ in range(20):
            for name, operation in operations.items():
                answered = operation()
                statuses[(name, answered.status_code)] += 1
                # Served without the limiter: no limit headers, since no count was taken.
                assert "X-RateLimit-Limit" not in answered.headers, name
        assert statuses == Counter(
            {
                ("get", 200): 20,
                ("post", 201): 1,
                ("post", 200): 19,
                ("batch", 200): 20,
                ("session", 201): 20,
            }
        )
        assert limiter_failures(stack) - failures_before >= 80
    finally:
        stack.limiter_server.start()

    # Back by itself: the next requests are counted again.
    wait_until(
        lambda: "X-RateLimit-Limit" in rate_limited_get(stack, ns, "k").headers,
        what="limit headers again",
    )

    # A store that hangs instead of refusing: each check ends at the socket timeout, and the
    # request is still served.
    stack.limiter_server.freeze()
    try:
        for _ in range(4):
            answered = rate_limited_get(stack, ns, "k")
            assert answered.status_code == 200
            assert "X-RateLimit-Limit" not in answered.headers
    finally:
        stack.limiter_server.thaw()
    wait_until(
        lambda: "X-RateLimit-Limit" in rate_limited_get(stack, ns, "k").headers,
        what="limit headers after the freeze",
    )


# Redis killed and restarted under writes; its script cache flushed


def test_redis_killed_restarted_and_script_flushed_under_writes(
    logs_on_failure: Stack, client: redis.Redis
) -> None:
    """Writes keep coming while Redis is killed (503 each, never a 500 or a hang), restarted
    empty (2xx again without restarting anything) and has its script cache flushed (not one
    error). The worker and beat reconnect by themselves and flush again."""
    stack = logs_on_failure
    assert stack.limiter_server is not None
    ns = "faults-redis"
    web_workers = stack.web_worker_pids()
    worker_pid, beat_pid = stack.worker.pid, stack.beat.pid
    stream = WriteStream(stack, ns)
    threads = [threading.Thread(target=stream.run, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: stream.outcomes()["2xx"] >= 200, what="writes before")
        stream.restarts += 1
        killing = time.monotonic()
        stack.redis_server.kill()
        killed = time.monotonic()
        wait_until(lambda: stream.outcomes(killed)["503"] >= 40, what="503s while down")
        restarting = time.monotonic()
        stack.redis_server.start()  # Same port, empty.
        wait_until(lambda: stream.outcomes(restarting)["2xx"] >= 200, what="writes again")
        client.script_flush()
        stack.limiter_server.client().script_flush()
        flushed = time.monotonic()
        wait_until(lambda: stream.outcomes(flushed)["2xx"] >= 200, what="writes after")
    finally:
        stream.stopping.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
    print(
        f"before {stream.outcomes(end=killing)}, down {stream.outcomes(killed, restarting)}, "
        f"everything {stream.outcomes()}"
    )
    assert stream.errors == []
    assert set(stream.outcomes()) <= {"2xx", "503", "lost with the restarted Redis"}
    # Judged by requests that lay wholly inside each period.
    assert set(stream.outcomes(end=killing)) == {"2xx"}
    assert set(stream.outcomes(killed, restarting)) == {"503"}
    assert set(stream.outcomes(flushed)) == {"2xx"}
    assert {body["error"] for body in stream.unavailable_bodies} == {"service_unavailable"}

    # Nothing was restarted: the same gunicorn workers, Celery worker and beat answer.
    assert stack.web_worker_pids() == web_workers
    assert (stack.worker.pid, stack.beat.pid) == (worker_pid, beat_pid)
    assert stack.worker.is_running()
    assert stack.beat.is_running()
    # And the pipeline works again: new hits reach Postgres.
    stack.store(ns, ["after"])
    for _ in range(3):
        assert stack.get(ns, "after") == 200
    wait_until(lambda: stack.hit_counts(ns).get("after") == 3, what="hits flushed after")
