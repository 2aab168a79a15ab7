"""Background request streams for fault tests: every answer is kept so a test can judge it.

:class:`HitLoad` makes batch GETs of random samples of a key set and counts every hit, so that
the totals in Postgres can be compared exactly; :class:`WriteStream` writes unique keys, reads
each acknowledged one back, and keeps each answer with the moments its request started and
ended, so that it can be judged against what the test did to the servers meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.support.stack import TIMEOUT, Stack


@dataclass
class HitLoad:
    """Batch GETs of random samples of ``keys`` from two threads, every hit counted."""

    stack: Stack
    namespace: str
    keys: list[str]
    per_call: int = 300
    hits: Counter[str] = field(default_factory=Counter)
    errors: list[BaseException] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                found = self.stack.batch_get(
                    self.namespace, random.sample(self.keys, self.per_call)
                )
                with self._lock:
                    self.hits.update(found)
        except BaseException as error:  # Reported by the test thread.
            self.errors.append(error)

    def total(self) -> int:
        with self._lock:
            return self.hits.total()


@contextmanager
def hit_load(
    stack: Stack, namespace: str, keys: list[str], per_call: int = 300
) -> Iterator[HitLoad]:
    load = HitLoad(stack, namespace, keys, per_call)
    threads = [threading.Thread(target=load.run) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stopping.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT)
    assert load.errors == []


@dataclass
class WriteStream:
    """Writers POST unique keys and read each acknowledged one back; every answer is kept with
    the moments its request started and ended (``time.monotonic``), so that each can be judged
    against what Redis was doing over the whole request."""

    stack: Stack
    namespace: str
    # Bumped when Redis is killed: a key acknowledged before it may be gone after it.
    restarts: int = 0
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    unavailable_bodies: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def outcomes(self, start: float = 0.0, end: float = float("inf")) -> Counter[str]:
        """Outcomes of the requests that started at or after ``start`` and ended by ``end``."""
        with self._lock:
            return Counter(o for began, ended, o in self.answers if began >= start and ended <= end)

    def run(self, writer: int) -> None:
        http = self.stack.http
        n = 0
        try:
            while not self.stopping.is_set():
                key, value = f"w{writer}-{n}", {"writer": writer, "n": n}
                n += 1
                restarts, began = self.restarts, time.monotonic()
                written = http.post(
                    self.stack.url("/cache"),
                    json={"namespace": self.namespace, "key": key, "value": value, "ttl": 600},
                    timeout=TIMEOUT,
                )
                self.record(began, written)
                if written.status_code != 201:
                    continue
                began = time.monotonic()
                read = http.get(
                    self.stack.url(f"/cache/{key}"),
                    params={"namespace": self.namespace},
                    timeout=TIMEOUT,
                )
                if read.status_code == 404 and self.restarts != restarts:
                    self.add(began, "lost with the restarted Redis")
                    continue
                self.record(began, read)
                if read.status_code == 200:
                    assert read.json()["value"] == value
        except BaseException as error:  # Reported by the test thread.
            self.errors.append(error)

    def add(self, began: float, outcome: str) -> None:
        with self._lock:
            self.answers.append((began, time.monotonic(), outcome))

    def record(self, began: float, response: requests.Response) -> None:
        status = response.status_code
        if status == 503:
            with self._lock:
                self.unavailable_bodies.append(response.json())
        self.add(began, "2xx" if 200 <= status < 300 else str(status))
