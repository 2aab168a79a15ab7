"""Request ids, the JSON request log and the service-wide request counts.

``X-Request-ID`` is honoured when it is a sane token, generated otherwise, and echoed; the
request log line, formatted by ``JsonFormatter``, carries the same id.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cacheservice.metrics.recorder import SERVICE
from cacheservice.services import Services
from tests.conftest import AppFactory

GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def app(make_app: AppFactory) -> Iterator[Flask]:
    app = make_app()
    services: Services = app.extensions["cacheservice"]
    # No background pushes during a test: it reads the recorder's own deltas.
    services.metrics.interval = 3600
    yield app
    services.database.close()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("given", ["abc-123", "0f8e.trace:span_1", "x" * 128])
def test_a_valid_request_id_is_echoed(client: FlaskClient, given: str) -> None:
    response = client.get("/cache/absent", headers={"X-Request-ID": given})

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == given


def test_a_request_id_is_generated_when_none_is_given(client: FlaskClient) -> None:
    first = client.get("/cache/absent").headers["X-Request-ID"]
    second = client.get("/cache/absent").headers["X-Request-ID"]

    assert GENERATED.match(first)
    assert GENERATED.match(second)
    assert first != second


@pytest.mark.parametrize(
    "given", ["has space", "x" * 129, "<script>", "line\tbreak", "ünïcode", ""]
)
def test_an_invalid_request_id_is_replaced(client: FlaskClient, given: str) -> None:
    response = client.get("/cache/absent", headers={"X-Request-ID": given})

    assert GENERATED.match(response.headers["X-Request-ID"])


@pytest.mark.parametrize(
    ("path", "authorized", "status"),
    [
        ("/cache/health", False, 200),
        ("/no/such/route", True, 404),
        ("/cache/statistics?top=-1", True, 400),
        ("/cache/key", False, 401),
    ],
)
def test_every_response_carries_the_request_id(
    app: Flask, client: FlaskClient, path: str, authorized: bool, status: int
) -> None:
    http = client if authorized else app.test_client()

    response = http.get(path, headers={"X-Request-ID": "rid-1"})

    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "rid-1"


def test_the_request_log_is_a_json_line_with_the_request_id(
    client: FlaskClient, request_log: io.StringIO
) -> None:
    response = client.get(
        "/cache/some%2Fkey", query_string={"namespace": "obs"}, headers={"X-Request-ID": "trace-7"}
    )
    generated = client.get("/cache/other").headers["X-Request-ID"]

    first, second = lines(request_log)
    assert response.status_code == 404
    assert first["request_id"] == "trace-7"
    assert first["method"] == "GET"
    assert first["path"] == "/cache/some/key"
    assert first["status"] == 404
    assert isinstance(first["duration_ms"], int | float)
    assert first["duration_ms"] >= 0
    assert first["level"] == "INFO"
    assert first["logger"] == "cacheservice.requests"
    assert second["request_id"] == generated


def test_the_request_log_can_be_switched_off(
    make_app: AppFactory, request_log: io.StringIO
) -> None:
    app = make_app(request_log=False)
    try:
        assert app.test_client().get("/cache/health").status_code == 200
    finally:
        app.extensions["cacheservice"].database.close()

    assert request_log.getvalue() == ""


def test_requests_and_errors_are_counted_for_the_service(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("statistics exploded")

    services: Services = app.extensions["cacheservice"]
    services.metrics.take()
    monkeypatch.setattr("cacheservice.api.stats.statistics", broken)
    failed = client.get("/cache/statistics")
    assert client.get("/cache/absent").status_code == 404
    taken = services.metrics.take()

    assert failed.status_code == 500
    assert failed.get_json()["error"] == "internal_error"
    assert "statistics exploded" not in failed.get_data(as_text=True)
    assert failed.headers["X-Request-ID"]
    assert taken is not None
    service: dict[str, float] = {}
    for field, value in taken.deltas.items():
        namespace, _minute, metric = field.split("\t")
        if namespace == SERVICE:
            service[metric] = service.get(metric, 0) + value
    assert service == {"requests": 2, "errors": 1}
