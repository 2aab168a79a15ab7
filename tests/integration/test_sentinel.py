"""The service behind Redis Sentinel (one master, one replica, three sentinels, quorum 2).

The app finds the master through the sentinels; when the master is killed, the sentinels
promote the replica and the same app instance follows it without a restart. Writes the old
master acknowledged just before it died may be lost (replication is asynchronous); nothing
older, and nothing acknowledged after the promotion.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask

from cacheservice import create_app
from cacheservice.services import EXTENSION_NAME
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.redis_sentinel import RedisSentinel

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
    http = authorized_client(app, sub=f"writer-{uuid.uuid4().hex[:8]}")
    acknowledged: list[tuple[float, str]] = []
    errors: Counter[int] = Counter()
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            key = f"w{n}"
            n += 1
            response = http.post("/cache", json={"key": key, "value": n, "namespace": NS})
            if response.status_code in (200, 201):
                acknowledged.append((time.monotonic(), key))
            else:
                errors[response.status_code] += 1
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(2.0)
        killed_at = time.monotonic()
        old_master = sentinel.kill_master()
        sentinel.wait_for_promotion(old_master)
        promoted_at = time.monotonic()
        deadline = promoted_at + 10
        while time.monotonic() < deadline and (
            not acknowledged or acknowledged[-1][0] < promoted_at + 1
        ):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=30)

    assert acknowledged[-1][0] > promoted_at, "no write acknowledged after the failover"
    assert set(errors) <= {503}, errors  # Unavailable during the switch, never a 500.
    reader = authorized_client(app, sub=f"reader-{uuid.uuid4().hex[:8]}")
    keys = [key for _, key in acknowledged]
    missing: set[str] = set()
    for start in range(0, len(keys), 1000):
        response = reader.post(
            "/cache/batch", json={"namespace": NS, "keys": keys[start : start + 1000]}
        )
        assert response.status_code == 200, response.get_json()
        missing.update(response.get_json()["missing_keys"])
    when = {key: at for at, key in acknowledged}
    assert all(killed_at - 2.0 <= when[key] <= killed_at + 0.5 for key in missing), sorted(
        when[key] - killed_at for key in missing
    )
    assert len(missing) < len(keys) // 3
