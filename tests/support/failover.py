"""A stream of writes through a failover, and what it may lose.

Redis replicates asynchronously: writes a master acknowledged in its last moments may never
reach the replica that takes over. Nothing older may be lost, nor anything written after the
promotion, and the service must answer 503 (never 500) while the topology changes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask

from tests.support.auth import authorized_client

# Acknowledged writes that may be missing: from this long before the kill ...
LOSABLE_BEFORE_KILL = 2.0
# ... to this long after it (a write in flight when the master died).
LOSABLE_AFTER_KILL = 0.5


@dataclass
class FailoverRun:
    acknowledged: list[tuple[float, str]] = field(default_factory=list)
    errors: Counter[int] = field(default_factory=Counter)
    killed_at: float = 0.0
    promoted_at: float = 0.0


def write_through_failover(
    app: Flask, namespace: str, fail_over: Callable[[], None], settle: float = 1.0
) -> FailoverRun:
    """Write keys ``w0, w1, ...`` from a thread while ``fail_over`` kills a master and waits
    for its replica to take over; keep writing until writes succeed again."""
    http = authorized_client(app, sub=f"writer-{uuid.uuid4().hex[:8]}")
    run = FailoverRun()
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            key = f"w{n}"
            n += 1
            response = http.post("/cache", json={"key": key, "value": n, "namespace": namespace})
            if response.status_code in (200, 201):
                run.acknowledged.append((time.monotonic(), key))
            else:
                run.errors[response.status_code] += 1
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(2.0)
        run.killed_at = time.monotonic()
        fail_over()
        run.promoted_at = time.monotonic()
        # The same app serves writes again, without a restart.
        deadline = run.promoted_at + 10
        while time.monotonic() < deadline and (
            not run.acknowledged or run.acknowledged[-1][0] < run.promoted_at + 1
        ):
            time.sleep(0.1)
        time.sleep(settle)
    finally:
        stop.set()
        writer.join(timeout=30)
    return run


def assert_only_the_last_moments_lost(app: Flask, namespace: str, run: FailoverRun) -> None:
    assert run.acknowledged[-1][0] > run.promoted_at, "no write acknowledged after the failover"
    assert set(run.errors) <= {503}, run.errors  # Unavailable during the switch, never a 500.
    reader = authorized_client(app, sub=f"reader-{uuid.uuid4().hex[:8]}")
    keys = [key for _, key in run.acknowledged]
    missing: set[str] = set()
    for start in range(0, len(keys), 1000):
        response = reader.post(
            "/cache/batch", json={"namespace": namespace, "keys": keys[start : start + 1000]}
        )
        assert response.status_code == 200, response.get_json()
        missing.update(response.get_json()["missing_keys"])
    when = {key: at for at, key in run.acknowledged}
    window = (run.killed_at - LOSABLE_BEFORE_KILL, run.killed_at + LOSABLE_AFTER_KILL)
    assert all(window[0] <= when[key] <= window[1] for key in missing), sorted(
        when[key] - run.killed_at for key in missing
    )
    assert len(missing) < len(keys) // 3
