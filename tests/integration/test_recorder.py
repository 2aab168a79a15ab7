"""The metrics recorder with a real ``PendingStore`` on the test Redis.

``AggregatingMetrics`` sums counts and latencies per namespace and minute in memory and pushes
the deltas to Redis; a push is applied at most once per push id, and a push Redis did not take
is kept and sent again, with the same id, on the next try.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import redis

from cacheservice.metrics.recorder import (
    MAX_UNSENT_PUSHES,
    SERVICE,
    AggregatingMetrics,
    Metrics,
    NullMetrics,
)
from cacheservice.store.keys import KeySpace, MetricsKeys
from cacheservice.store.pending import PendingStore
from tests.support.redis_server import RedisServer

MINUTE = 1_700_000_040  # A minute's start (epoch seconds).
# Long enough that the background pusher never runs during a test.
NO_BACKGROUND_PUSH = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pending(redis_client: redis.Redis) -> PendingStore:
    return PendingStore(redis_client, KeySpace(4))


@pytest.fixture
def clock() -> Clock:
    return Clock(MINUTE + 5)


def recorder(pending: PendingStore, clock: Clock) -> AggregatingMetrics:
    return AggregatingMetrics(pending, clock=clock, interval=NO_BACKGROUND_PUSH)


def field(namespace: str, minute: int, metric: str) -> str:
    return f"{namespace}\t{minute}\t{metric}"


def pushed(pending: PendingStore) -> dict[str, float]:
    return pending.read_metrics(MetricsKeys.pending)


def test_counts_add_up_per_namespace_and_minute(pending: PendingStore, clock: Clock) -> None:
    metrics = recorder(pending, clock)
    metrics.count("users", "hits")
    metrics.count("users", "hits", 2)
    metrics.count("trips", "misses")
    clock.now = MINUTE + 59
    metrics.count("users", "hits")
    clock.now = MINUTE + 60
    metrics.count("users", "hits")
    metrics.count(SERVICE, "requests")

    metrics.push()

    assert pushed(pending) == {
        field("users", MINUTE, "hits"): 4,
        field("trips", MINUTE, "misses"): 1,
        field("users", MINUTE + 60, "hits"): 1,
        field(SERVICE, MINUTE + 60, "requests"): 1,
    }
    # The service pseudo-namespace is not a namespace of the cache.
    assert pending.namespaces() == ["trips", "users"]


def test_observe_adds_count_sum_and_bucket(pending: PendingStore, clock: Clock) -> None:
    metrics = recorder(pending, clock)
    metrics.observe("users", "get", 0.75)
    metrics.observe("users", "get", 0.5)
    metrics.observe("users", "get", 30)

    metrics.push()

    assert pushed(pending) == {
        field("users", MINUTE, "get_ms_count"): 3,
        field("users", MINUTE, "get_ms_sum"): 31.25,
        field("users", MINUTE, "get_ms_le_1"): 1,
        field("users", MINUTE, "get_ms_le_0.5"): 1,
        field("users", MINUTE, "get_ms_le_50"): 1,
    }


def test_pushes_add_to_what_is_pending(pending: PendingStore, clock: Clock) -> None:
    metrics = recorder(pending, clock)
    metrics.count("users", "hits", 2)
    metrics.push()
    metrics.push()  # Nothing new: nothing sent.
    metrics.count("users", "hits", 3)
    metrics.push()

    assert pushed(pending) == {field("users", MINUTE, "hits"): 5}


def test_a_push_id_is_applied_once(pending: PendingStore, redis_client: redis.Redis) -> None:
    deltas = {field("users", MINUTE, "hits"): 2.0, field("users", MINUTE, "get_ms_sum"): 0.5}

    first = pending.push_metrics("push-1", ["users"], deltas)
    again = pending.push_metrics("push-1", ["users"], deltas)
    other = pending.push_metrics("push-2", ["users"], deltas)

    assert (first, again, other) == (True, False, True)
    assert pushed(pending) == {
        field("users", MINUTE, "hits"): 4,
        field("users", MINUTE, "get_ms_sum"): 1,
    }
    # The marker is remembered for a while, not for ever.
    assert 0 < redis_client.ttl(MetricsKeys.push_marker("push-1")) <= 3600


class LostReplies(PendingStore):
    """Redis applies the push, but the reply is lost (a timeout) the first ``fail`` times."""

    def __init__(self, client: redis.Redis, fail: int) -> None:
        super().__init__(client, KeySpace(4))
        self.fail = fail
        self.push_ids: list[str] = []

    def push_metrics(
        self, push_id: str, namespaces: Iterable[str], deltas: dict[str, float], ttl: int = 3600
    ) -> bool:
        self.push_ids.append(push_id)
        applied = super().push_metrics(push_id, namespaces, deltas, ttl)
        if self.fail > 0:
            self.fail -= 1
            raise redis.TimeoutError("Timeout reading from socket")
        return applied


def test_a_push_whose_reply_was_lost_is_retried_with_its_id_and_counted_once(
    redis_client: redis.Redis, clock: Clock
) -> None:
    store = LostReplies(redis_client, fail=1)
    metrics = recorder(store, clock)
    metrics.count("users", "hits", 2)
    metrics.push()
    metrics.count("users", "hits", 5)
    metrics.push()

    first, retried, second = store.push_ids
    assert retried == first
    assert second != first
    assert pushed(store) == {field("users", MINUTE, "hits"): 7}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_a_push_while_redis_is_down_is_kept_and_sent_once_it_is_back(
    server: RedisServer, clock: Clock
) -> None:
    client = redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    pending = PendingStore(client, KeySpace(4))
    metrics = recorder(pending, clock)
    metrics.count("users", "hits", 2)
    metrics.push()
    server.kill()

    metrics.count("users", "hits", 3)
    metrics.push()  # Fails, logged, kept.
    metrics.count("users", "misses")
    metrics.push()  # Fails again; both deltas wait, oldest first.
    assert len(metrics._unsent) == 2
    server.start()  # Empty: the first push is gone with the old server.
    metrics.push()

    assert not metrics._unsent
    assert pushed(pending) == {
        field("users", MINUTE, "hits"): 3,
        field("users", MINUTE, "misses"): 1,
    }
    client.close()


class RedisAway(PendingStore):
    def push_metrics(self, *_: object, **__: object) -> bool:
        raise redis.ConnectionError("Connection refused")


def test_unsent_pushes_are_bounded(redis_client: redis.Redis, clock: Clock) -> None:
    metrics = recorder(RedisAway(redis_client, KeySpace(4)), clock)
    for _ in range(MAX_UNSENT_PUSHES + 2):
        metrics.count("users", "hits")
        metrics.push()

    assert len(metrics._unsent) == MAX_UNSENT_PUSHES
    assert metrics.dropped_pushes == 2


def test_concurrent_pushes_lose_nothing(pending: PendingStore, clock: Clock) -> None:
    metrics = recorder(pending, clock)
    rounds, threads = 200, 4

    def work() -> None:
        for _ in range(rounds):
            metrics.count("users", "hits")
            metrics.push()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    metrics.push()

    assert pushed(pending) == {field("users", MINUTE, "hits"): rounds * threads}


def test_null_metrics_records_nothing_and_fits_the_interface(redis_client: redis.Redis) -> None:
    null: Metrics = NullMetrics()
    null.count("users", "hits", 3)
    null.observe("users", "get", 1.0)

    assert redis_client.keys("*") == []
    # It stands in wherever the interface is expected (the cache's default, tests' fake).
    for method in ("count", "observe"):
        expected = inspect.signature(getattr(Metrics, method))
        assert inspect.signature(getattr(NullMetrics, method)) == expected
        assert inspect.signature(getattr(AggregatingMetrics, method)) == expected
