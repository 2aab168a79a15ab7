"""What the soak samples while it runs, and the checks it makes of the samples at the end."""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.suite import descendants
from tests.reliability.paced_load import LoadResult
from tests.support.stack import TIMEOUT, Stack

# BENCHMARKS.md, "Service vs bare Flask": GET p99 with 8 wrk connections at full throughput,
# 7.34 ms in the 10k run and 14.94 ms in the 100k run (before each invalidation).
BENCHMARK_GET_P99_MS = 15.0
GROWTH_LIMIT = 0.10
WARMUP_SECONDS = 60.0
WINDOW_SECONDS = 60.0


# Sampling


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Sample:
    elapsed: float
    web_rss_kb: dict[int, int]
    worker_rss_kb: dict[int, int]
    redis_used_memory: int
    # The data alone, and the client connections (whose buffers count in used_memory).
    redis_dataset_memory: int
    redis_clients: int
    redis_keys: int
    queue_length: int
    requests: int
    error_responses: int
    # Keys by shape (ids and numbers replaced by #), to tell what grows when the count does.
    key_classes: dict[str, int] = field(default_factory=dict)


def metrics_counts(stack: Stack) -> tuple[int, int]:
    """(requests, responses that were not 2xx/3xx) from the service's own ``/metrics``."""
    text = stack.http.get(stack.url("/metrics"), timeout=TIMEOUT).text
    total = bad = 0
    for status, value in re.findall(
        r'^cacheservice_requests_total\{[^}]*status="(\d+)"[^}]*\} (\S+)$', text, re.MULTILINE
    ):
        total += int(float(value))
        if status[0] not in "23":
            bad += int(float(value))
    return total, bad


def take_sample(stack: Stack, started: float) -> Sample:
    assert stack.web.process is not None
    assert stack.worker.pid is not None
    web = {pid: rss_kb(pid) for pid in descendants(stack.web.process.pid)}
    worker_pids = [stack.worker.pid, *descendants(stack.worker.pid)]
    cache, broker = stack.redis(), stack.broker()
    try:
        memory = cache.info("memory")
        clients = int(cache.info("clients")["connected_clients"])
        keys = int(cache.dbsize())
        queue = int(broker.llen("celery"))
        classes = Counter(key_class(key) for key in cache.scan_iter(count=1000))
    finally:
        cache.close()
        broker.close()
    total, bad = metrics_counts(stack)
    return Sample(
        elapsed=round(time.monotonic() - started, 1),
        web_rss_kb=web,
        worker_rss_kb={pid: rss_kb(pid) for pid in worker_pids},
        redis_used_memory=int(memory["used_memory"]),
        redis_dataset_memory=int(memory["used_memory_dataset"]),
        redis_clients=clients,
        redis_keys=keys,
        queue_length=queue,
        requests=total,
        error_responses=bad,
        key_classes=dict(classes),
    )


def key_class(key: bytes) -> str:
    """``cs:{soak:3}:e:g17`` -> ``cs:{soak:#}:e:#``: the shape of a key, without its ids."""
    parts = re.split(r"([:{}])", key.decode(errors="replace"))
    return "".join(
        "#" if len(part) > 12 or any(c.isdigit() for c in part) else part for part in parts
    )


class Sampler(threading.Thread):
    def __init__(self, stack: Stack, interval: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.interval = stack, interval
        self.samples: list[Sample] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.samples.append(take_sample(self.stack, started))
            except Exception as error:  # Reported at the end, sampling goes on.
                self.failures.append(repr(error))
            self.stopping.wait(self.interval)


# Checks


@dataclass
class Check:
    name: str
    value: str
    limit: str
    passed: bool


def window_median(samples: Sequence[Sample], start: float, end: float, value: Any) -> float:
    chosen = [value(s) for s in samples if start <= s.elapsed < end]
    return float(statistics.median(chosen)) if chosen else float("nan")


def growth_check(name: str, samples: Sequence[Sample], value: Any, warmup: float) -> Check:
    """Growth from the median of the first minute after the warm-up to that of the last one."""
    last = samples[-1].elapsed
    before = window_median(samples, warmup, warmup + WINDOW_SECONDS, value)
    after = window_median(samples, last - WINDOW_SECONDS + 0.01, last + 1, value)
    change = after / before - 1 if before else float("inf")
    text = f"{before:,.0f} -> {after:,.0f} ({change:+.1%})"
    return Check(name, text, f"< {GROWTH_LIMIT:.0%}", change < GROWTH_LIMIT)


def evaluate(
    load: LoadResult, samples: Sequence[Sample], p99_limit: float, warmup: float
) -> list[Check]:
    checks = [
        Check("error responses and socket errors", str(load.errors), "0", load.errors == 0),
    ]
    get_p99 = load.latency_ms.get("get", {}).get("p99", float("inf"))
    checks.append(Check("GET p99 (ms)", f"{get_p99:.2f}", f"<= {p99_limit}", get_p99 <= p99_limit))
    checks.append(growth_check("web RSS, all workers (kB)", samples, _web_rss, warmup))
    checks.append(
        growth_check("Celery worker RSS, all processes (kB)", samples, _worker_rss, warmup)
    )
    checks.append(growth_check("Redis used_memory (bytes)", samples, _redis_memory, warmup))
    checks.append(growth_check("Redis keys (cache database)", samples, _redis_keys, warmup))
    dataset = growth_check("Redis used_memory_dataset (bytes)", samples, _redis_dataset, warmup)
    checks.append(dataset)
    queue = [s.queue_length for s in samples if s.elapsed >= warmup]
    tail = [s.queue_length for s in samples if s.elapsed >= samples[-1].elapsed - WINDOW_SECONDS]
    flat = bool(queue) and max(tail) <= max(queue[: max(1, len(queue) // 3)]) + 5
    checks.append(
        Check("Celery queue length (max over run; last minute)", f"{max(queue or [0])}; "
              f"{max(tail or [0])}", "last minute <= first third + 5", flat)
    )  # fmt: skip
    web_pids = {tuple(sorted(s.web_rss_kb)) for s in samples}
    checks.append(
        Check("gunicorn workers replaced", str(len(web_pids) - 1), "0", len(web_pids) == 1)
    )
    return checks


def _web_rss(sample: Sample) -> int:
    return sum(sample.web_rss_kb.values())


def _worker_rss(sample: Sample) -> int:
    return sum(sample.worker_rss_kb.values())


def _redis_memory(sample: Sample) -> int:
    return sample.redis_used_memory


def _redis_dataset(sample: Sample) -> int:
    return sample.redis_dataset_memory


def _redis_keys(sample: Sample) -> int:
    return sample.redis_keys
