"""Metric push markers: kept long while a push may be retried, briefly once it was answered.

A web process pushes its metric deltas about once a second. Each push leaves a marker so that
a retry after a lost reply is not counted twice; kept for an hour each, the markers of two
workers made the soak's Redis key count grow by 7,200 an hour (RELIABILITY.md). Now a marker
is cut to a minute by the next push once its own reply has arrived.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from cacheservice.store.keys import KeySpace, MetricsKeys
from cacheservice.store.pending import ANSWERED_MARKER_SECONDS, PendingStore
from cacheservice.store.scripts import ScriptCall, Scripts

DELTAS = {"users\t1700000040\thits": 1.0}


@pytest.fixture
def pending(redis_client: redis.Redis) -> PendingStore:
    return PendingStore(redis_client, KeySpace(4))


def ttl(client: redis.Redis, push_id: str) -> int:
    return int(client.ttl(MetricsKeys.push_marker(push_id)))


def test_answered_markers_are_cut_to_a_minute_by_the_next_push(
    pending: PendingStore, redis_client: redis.Redis
) -> None:
    for push_id in ("a", "b", "c"):
        assert pending.push_metrics(push_id, ["users"], DELTAS)

    assert 0 < ttl(redis_client, "a") <= ANSWERED_MARKER_SECONDS
    assert 0 < ttl(redis_client, "b") <= ANSWERED_MARKER_SECONDS
    # The last one is cut by the push after it; until then it keeps its full life.
    assert ttl(redis_client, "c") > ANSWERED_MARKER_SECONDS
    assert float(redis_client.hget(MetricsKeys.pending, "users\t1700000040\thits") or 0) == 3


class LostReply(Scripts):
    """Runs the script, then loses the reply (a timeout) once."""

    lose = True

    def run(self, call: ScriptCall) -> Any:
        result = super().run(call)
        if self.lose:
            self.lose = False
            raise redis.TimeoutError("Timeout reading from socket")
        return result


def test_a_push_whose_reply_was_lost_keeps_its_marker_until_its_retry_is_answered(
    pending: PendingStore, redis_client: redis.Redis
) -> None:
    pending.scripts = LostReply(redis_client)
    with pytest.raises(redis.TimeoutError):
        pending.push_metrics("lost", ["users"], DELTAS)
    pending.push_metrics("other", ["users"], DELTAS)

    # Still guarding the retry to come.
    assert ttl(redis_client, "lost") > ANSWERED_MARKER_SECONDS
    assert not pending.push_metrics("lost", ["users"], DELTAS)  # The retry: already applied.
    pending.push_metrics("later", ["users"], DELTAS)

    assert 0 < ttl(redis_client, "lost") <= ANSWERED_MARKER_SECONDS
    assert float(redis_client.hget(MetricsKeys.pending, "users\t1700000040\thits") or 0) == 3
