"""Prometheus metrics of the web process, safe under gunicorn's several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the gunicorn configuration does it), each worker
writes its samples to files there and ``/metrics`` merges them; without it (tests, the
Flask development server) the default in-process registry is used.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "cacheservice_requests_total",
    "HTTP requests served, by route, method and status.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "cacheservice_request_duration_seconds",
    "Time to serve an HTTP request, by route.",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CACHE_EVENTS = Counter(
    "cacheservice_cache_events_total",
    "Cache events (hits, misses, sets, deletes, invalidations), by namespace.",
    ["namespace", "event"],
)
LIMITER_FAILURES = Counter(
    "cacheservice_rate_limiter_store_failures_total",
    "Requests let through because the separate rate limiter store failed.",
)

_EVENTS = frozenset({"hits", "misses", "sets", "deletes", "invalidations"})


def count(namespace: str, name: str, value: float) -> None:
    if name in _EVENTS:
        CACHE_EVENTS.labels(namespace, name).inc(value)


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(endpoint, method, str(status)).inc()
    REQUEST_SECONDS.labels(endpoint).observe(seconds)


def exposition(multiprocess_dir: str | None) -> tuple[bytes, str]:
    """The text exposition format of every worker's metrics."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
