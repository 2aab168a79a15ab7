"""Writers and tag invalidations racing on the real Redis, and index pruning after expiry.

The contract: an invalidation never leaves an entry that a later tag invalidation cannot find,
replacing an entry replaces its tags atomically, and indexes never keep dead members once the
pruning task has run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import cast

import pytest
import redis
from flask import Flask

from cacheservice import create_app
from cacheservice.store.keys import KeySpace
from cacheservice.store.pruning import prune_namespace
from tests.conftest import app_settings
from tests.support.auth import authorized_client

NS = "race"
HOT = "hot"
OTHER_TAGS = ("a", "b", "c")
ALL_TAGS = (HOT, *OTHER_TAGS)
KEYS = [f"k:{n}" for n in range(80)]
WRITERS = 4
WRITES_PER_WRITER = 200
INVALIDATORS = 2
JOIN_TIMEOUT = 120.0


@pytest.fixture
def race_app(redis_client: redis.Redis, redis_url: str, database_url: str) -> Flask:
    # Generous socket timeouts: on a loaded machine a timed-out write is a 503 whose effect is
    # unknown, which would make the exact accounting below impossible. No rate limit: the
    # invalidators loop for as long as the writers run, however slow the machine.
    return create_app(
        app_settings(
            redis_url,
            database_url=database_url,
            redis_socket_timeout=10.0,
            redis_connect_timeout=10.0,
            rate_limit_cache="unlimited",
        )
    )


def keyspace(app: Flask) -> KeySpace:
    return KeySpace(app.extensions["cacheservice"].settings.namespace_buckets)


def entry_tags(client: redis.Redis, entry_key: str) -> set[str] | None:
    """The tags stored in an entry hash, or ``None`` when the entry does not exist."""
    raw = cast(bytes | None, client.hget(entry_key, "tg"))
    if raw is None:
        return None
    return set(raw.decode().split("\n")) if raw else set()


def index_members(client: redis.Redis, index: str) -> list[str]:
    return [member.decode() for member in cast(list[bytes], client.zrange(index, 0, -1))]


def run_threads(
    targets: list[Callable[[], None]], errors: list[BaseException]
) -> list[threading.Thread]:
    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # Reported by the test after join.
                errors.append(error)

        return run

    threads = [threading.Thread(target=guarded(target), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    return threads


def assert_indexes_consistent(
    client: redis.Redis, app: Flask, tags: tuple[str, ...]
) -> dict[str, set[str]]:
    """Every index member is a live entry that carries the index's tag; returns tag -> members."""
    members_by_tag: dict[str, set[str]] = {tag: set() for tag in tags}
    for bucket in keyspace(app).all_buckets(NS):
        for key in index_members(client, bucket.index):
            assert entry_tags(client, bucket.entry(key)) is not None, (
                f"{key} in {bucket.index} is dead"
            )
        for tag in tags:
            for key in index_members(client, bucket.tag(tag)):
                stored_tags = entry_tags(client, bucket.entry(key))
                assert stored_tags is not None, f"{key} in {bucket.tag(tag)} is dead"
                assert tag in stored_tags, f"{key} in {bucket.tag(tag)} no longer carries {tag}"
                members_by_tag[tag].add(key)
    return members_by_tag


def test_tag_invalidation_racing_writers_leaves_no_tagged_entry(
    race_app: Flask, redis_client: redis.Redis
) -> None:
    start = threading.Barrier(WRITERS + INVALIDATORS)
    writers_done = threading.Event()
    errors: list[BaseException] = []
    created_counts: list[int] = []
    invalidated_totals: list[int] = []
    lock = threading.Lock()

    def writer(seed: int) -> Callable[[], None]:
        def write() -> None:
            rng = random.Random(seed)
            http = authorized_client(race_app)
            created = 0
            start.wait()
            for n in range(WRITES_PER_WRITER):
                tags = rng.sample(OTHER_TAGS, rng.randint(0, 2))
                # Most writes carry the hot tag; the others overwrite an entry and drop it.
                if rng.random() < 0.6:
                    tags.append(HOT)
                body = {"key": rng.choice(KEYS), "value": [seed, n], "namespace": NS, "tags": tags}
                response = http.post("/cache", json=body)
                assert response.status_code in (200, 201), response.get_json()
                created += response.status_code == 201
            with lock:
                created_counts.append(created)

        return write

    def invalidator() -> None:
        http = authorized_client(race_app)
        start.wait()
        while not writers_done.is_set():
            response = http.post("/cache/invalidate", json={"namespace": NS, "tags": [HOT]})
            assert response.status_code == 200, response.get_json()
            with lock:
                invalidated_totals.append(response.get_json()["total_invalidated"])

    writer_threads = run_threads([writer(seed) for seed in range(WRITERS)], errors)
    invalidator_threads = run_threads([invalidator] * INVALIDATORS, errors)
    for thread in writer_threads:
        thread.join(JOIN_TIMEOUT)
    writers_done.set()
    for thread in invalidator_threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in writer_threads + invalidator_threads)
    assert not errors, errors
    assert len(created_counts) == WRITERS
    # The race really raced: invalidations ran while writes were going on.
    assert len(invalidated_totals) >= INVALIDATORS

    http = authorized_client(race_app)
    final = http.post("/cache/invalidate", json={"namespace": NS, "tags": [HOT]})
    assert final.status_code == 200
    invalidated_totals.append(final.get_json()["total_invalidated"])

    # No entry that carries the hot tag is readable, whichever key it was written under.
    alive: dict[str, set[str]] = {}
    for key in KEYS:
        response = http.get(f"/cache/{key}?namespace={NS}&include_metadata=true")
        assert response.status_code in (200, 404)
        if response.status_code == 200:
            tags = set(response.get_json()["tags"])
            assert HOT not in tags, key
            alive[key] = tags

    # Exact accounting: entries never expire here and nothing else deletes them, so every
    # entry created was either removed by exactly one invalidation (which counted it) or is
    # still alive.
    assert sum(created_counts) == sum(invalidated_totals) + len(alive)

    prune_namespace(redis_client, keyspace(race_app), NS)
    members_by_tag = assert_indexes_consistent(redis_client, race_app, ALL_TAGS)
    assert members_by_tag[HOT] == set()
    # And the indexes are complete: every live entry can still be found by each of its tags.
    for tag in OTHER_TAGS:
        assert members_by_tag[tag] == {key for key, tags in alive.items() if tag in tags}
    indexed = {
        key
        for bucket in keyspace(race_app).all_buckets(NS)
        for key in index_members(redis_client, bucket.index)
    }
    assert indexed == set(alive)


def test_expired_entries_are_pruned_from_indexes(
    race_app: Flask, redis_client: redis.Redis
) -> None:
    http = authorized_client(race_app)
    short_keys = [f"short:{n}" for n in range(5)]
    long_keys = ["long:0", "long:1"]
    for key in short_keys:
        body = {"key": key, "value": 1, "namespace": NS, "ttl": 1, "tags": ["short", "shared"]}
        assert http.post("/cache", json=body).status_code == 201
    for key in long_keys:
        body = {"key": key, "value": 1, "namespace": NS, "ttl": 3600, "tags": ["shared", "long"]}
        assert http.post("/cache", json=body).status_code == 201
    space = keyspace(race_app)

    time.sleep(1.2)
    deadline = time.monotonic() + 5
    while any(redis_client.exists(space.bucket(NS, key).entry(key)) for key in short_keys):
        assert time.monotonic() < deadline, "Redis did not expire the short-lived entries"
        time.sleep(0.05)

    removed = prune_namespace(redis_client, space, NS)

    # Each short entry had three memberships: the namespace index, "short" and "shared".
    assert removed == 3 * len(short_keys)
    members_by_tag = assert_indexes_consistent(redis_client, race_app, ("short", "shared", "long"))
    assert members_by_tag == {"short": set(), "shared": set(long_keys), "long": set(long_keys)}
    assert not any(redis_client.exists(bucket.tag("short")) for bucket in space.all_buckets(NS))
    assert prune_namespace(redis_client, space, NS) == 0
    for key in long_keys:
        assert http.get(f"/cache/{key}?namespace={NS}").status_code == 200
