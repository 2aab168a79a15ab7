"""``/metrics``: Prometheus text of the web process, behind the ``stats:read`` scope.

Without ``PROMETHEUS_MULTIPROC_DIR`` the process-wide default registry is used, which tests of
this process share; counters are therefore compared before and after, never absolutely.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AppFactory
from tests.support.auth import authorized_client

NS = "prom"


@pytest.fixture
def app(make_app: AppFactory) -> Iterator[Flask]:
    app = make_app()
    yield app
    app.extensions["cacheservice"].database.close()


def scrape(http: FlaskClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels."""
    response = http.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requires_the_stats_read_scope(app: Flask) -> None:
    anonymous = app.test_client().get("/metrics")
    reader = authorized_client(app, scope="cache:read").get("/metrics")

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert reader.status_code == 403
    assert reader.get_json()["details"]["required_scope"] == "stats:read"
    assert authorized_client(app, scope="stats:read").get("/metrics").status_code == 200


def test_exposition_declares_the_service_metrics(client: FlaskClient) -> None:
    # One request first, so the labelled series exist.
    client.get("/cache/statistics")
    text = client.get("/metrics").get_data(as_text=True)

    assert "# TYPE cacheservice_requests_total counter" in text
    assert "# TYPE cacheservice_request_duration_seconds histogram" in text
    assert "# TYPE cacheservice_cache_events_total counter" in text
    assert "# TYPE cacheservice_rate_limiter_store_failures_total counter" in text
    assert 'cacheservice_requests_total{endpoint="stats.Statistics",method="GET",status="200"}' in (
        text
    )


def test_counts_increase_with_requests(client: FlaskClient) -> None:
    before = scrape(client)
    assert client.post("/cache", json={"key": "k", "value": 1, "namespace": NS}).status_code == 201
    for _ in range(3):
        assert client.get("/cache/k", query_string={"namespace": NS}).status_code == 200
    assert client.get("/cache/nope", query_string={"namespace": NS}).status_code == 404
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    entry_get = {"endpoint": "entries.Entry", "method": "GET"}
    assert grew("cacheservice_requests_total", **entry_get, status="200") == 3
    assert grew("cacheservice_requests_total", **entry_get, status="404") == 1
    assert (
        grew("cacheservice_requests_total", endpoint="entries.Entries", method="POST", status="201")
        == 1
    )
    # The first scrape is counted by the time of the second.
    assert (
        grew(
            "cacheservice_requests_total", endpoint="monitoring.metrics", method="GET", status="200"
        )
        == 1
    )
    assert grew("cacheservice_request_duration_seconds_count", endpoint="entries.Entry") == 4
    assert grew("cacheservice_request_duration_seconds_sum", endpoint="entries.Entry") > 0
    assert grew("cacheservice_cache_events_total", namespace=NS, event="hits") == 3
    assert grew("cacheservice_cache_events_total", namespace=NS, event="misses") == 1
    assert grew("cacheservice_cache_events_total", namespace=NS, event="sets") == 1


def test_metrics_are_not_rate_limited(make_app: AppFactory) -> None:
    app = make_app(rate_limit_statistics="1/minute")
    try:
        http = authorized_client(app)
        statuses = [http.get("/metrics").status_code for _ in range(3)]
    finally:
        app.extensions["cacheservice"].database.close()

    assert statuses == [200, 200, 200]
