"""The service behind Redis Sentinel (one master, one replica, three sentinels, quorum 2).

The app finds the master through the sentinels; when the master is killed, the sentinels
promote the replica and the same app instance follows it without a restart. Writes the old
master acknowledged just before it died may be lost (replication is asynchronous); nothing
older, and nothing acknowledged after the promotion.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from cacheservice import create_app
from cacheservice.services import EXTENSION_NAME
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.failover import assert_only_the_last_moments_lost, write_through_failover
from tests.support.redis_sentinel import RedisSentinel

# Starts its own Redis, whatever --redis-topology says: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent

NS = "sen"


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RedisSentinel]:
    started = RedisSentinel().start()
    yield started
    started.stop()


@pytest.fixture
def app(sentinel: RedisSentinel, database_url: str) -> Iterator[Flask]:
    sentinel.flush_all()
    made = create_app(app_settings(sentinel.url, database_url=database_url))
    yield made
    made.extensions[EXTENSION_NAME].shutdown()


def test_entries_and_batches_through_sentinel(app: Flask) -> None:
    http = authorized_client(app, sub=f"tester-{uuid.uuid4().hex[:8]}")
    assert http.post("/cache", json={"key": "a", "value": 1, "namespace": NS}).status_code == 201
    assert http.get(f"/cache/a?namespace={NS}").get_json()["value"] == 1
    entries = [{"key": f"k{n}", "value": n, "tags": ["t"]} for n in range(200)]
    response = http.post("/cache/batch-set", json={"namespace": NS, "entries": entries})
    assert response.status_code == 200
    assert response.get_json()["total_created"] == 200
    invalidated = http.post("/cache/invalidate", json={"namespace": NS, "tags": ["t"]})
    assert invalidated.get_json()["total_invalidated"] == 200


def test_failover_during_writes_loses_only_the_last_moments(
    sentinel: RedisSentinel, app: Flask
) -> None:
    def fail_over() -> None:
        sentinel.wait_for_promotion(sentinel.kill_master())

    run = write_through_failover(app, NS, fail_over, settle=0.5)
    assert_only_the_last_moments_lost(app, NS, run)
