"""One metrics interface for the web process (STYLE 7): counts and latencies per namespace.

``AggregatingMetrics`` adds everything up in memory, per minute, and pushes the deltas to
Redis at most once a second per process in one call (so requests pay no extra round trip).
A push that fails is retried with the same id, which the push script applies at most once.
``NullMetrics`` does nothing and doubles as the fake for tests that don't look at metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from cacheservice.metrics import histogram, prometheus
from cacheservice.metrics.flush import FIELD_SEPARATOR
from cacheservice.store.pending import PendingStore

log = logging.getLogger(__name__)

# The pseudo-namespace of service-wide figures (requests, errors): it cannot be a real
# namespace, whose names start with a letter or digit.
SERVICE = "_service"
PUSH_INTERVAL_SECONDS = 1.0
# Pushes kept for retry while Redis is away (one a second at most): about ten minutes.
MAX_UNSENT_PUSHES = 600


def _push_forever(metrics: weakref.ref[AggregatingMetrics], interval: float) -> None:
    """Push once a second for as long as the recorder exists (an app may be discarded)."""
    while True:
        time.sleep(interval)
        recorder = metrics()
        if recorder is None or recorder.stopped:
            return
        try:
            recorder.push()
        except Exception:  # The pusher must outlive any single failure; it logs and goes on.
            log.exception("metrics push failed")
        del recorder


class Metrics(Protocol):
    def count(self, namespace: str, name: str, value: float = 1) -> None: ...

    def observe(self, namespace: str, op: str, ms: float) -> None: ...


class NullMetrics:
    def count(self, namespace: str, name: str, value: float = 1) -> None:
        pass

    def observe(self, namespace: str, op: str, ms: float) -> None:
        pass


@dataclass
class _Push:
    push_id: str
    namespaces: set[str]
    deltas: dict[str, float]


@dataclass
class AggregatingMetrics:
    pending: PendingStore
    clock: Callable[[], float] = time.time
    interval: float = PUSH_INTERVAL_SECONDS
    _deltas: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    _namespaces: set[str] = field(default_factory=set)
    _unsent: deque[_Push] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Serialises pushes: the pusher thread, a request (statistics) and shutdown may push at
    # once, and two loops over ``_unsent`` would each pop an item, one of them never sent.
    _push_lock: threading.Lock = field(default_factory=threading.Lock)
    _pusher_pid: int = 0
    dropped_pushes: int = 0
    stopped: bool = False

    def count(self, namespace: str, name: str, value: float = 1) -> None:
        self._add(namespace, ((name, value),))
        prometheus.count(namespace, name, value)

    def observe(self, namespace: str, op: str, ms: float) -> None:
        count_name, sum_name, bucket_name = histogram.sample_names(op, ms)
        self._add(namespace, ((count_name, 1), (sum_name, ms), (bucket_name, 1)))

    def _add(self, namespace: str, samples: tuple[tuple[str, float], ...]) -> None:
        prefix = f"{namespace}{FIELD_SEPARATOR}{int(self.clock()) // 60 * 60}{FIELD_SEPARATOR}"
        with self._lock:
            for name, value in samples:
                self._deltas[prefix + name] += value
            if namespace != SERVICE:
                self._namespaces.add(namespace)
        self._ensure_pusher()

    def _ensure_pusher(self) -> None:
        # One pusher per process, started after gunicorn forked the worker.
        if self._pusher_pid == os.getpid():
            return
        with self._lock:
            if self._pusher_pid == os.getpid():
                return
            self._pusher_pid = os.getpid()
        thread = threading.Thread(
            target=_push_forever, args=(weakref.ref(self), self.interval), daemon=True
        )
        thread.start()

    def take(self) -> _Push | None:
        with self._lock:
            if not self._deltas:
                return None
            push = _Push(uuid.uuid4().hex, self._namespaces, dict(self._deltas))
            self._deltas = defaultdict(float)
            self._namespaces = set()
        return push

    def push(self) -> None:
        """Send what accumulated, oldest unsent first; keep whatever fails for the next try."""
        with self._push_lock:
            fresh = self.take()
            if fresh is not None:
                self._unsent.append(fresh)
            while self._unsent:
                push = self._unsent[0]
                try:
                    self.pending.push_metrics(push.push_id, push.namespaces, push.deltas)
                except redis.RedisError as error:
                    log.warning("metrics push deferred, Redis unavailable: %s", error)
                    break
                self._unsent.popleft()
            while len(self._unsent) > MAX_UNSENT_PUSHES:
                self._unsent.popleft()
                self.dropped_pushes += 1
