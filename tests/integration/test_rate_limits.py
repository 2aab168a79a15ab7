"""Rate limits over the API, against the real Redis: headers, 429s, and who shares a quota.

The apps here allow 3 cache operations and 2 batch operations a minute per caller. Requests of
a test take milliseconds, and the sliding window carries the previous minute's count over a
minute boundary almost whole, so the limits hold exactly even when a test straddles one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import AppFactory
from tests.support.auth import authorized_client, bearer, claims, make_token
from tests.support.ports import free_port
from tests.support.topology import CLUSTER

NS = "limits"
CACHE_LIMIT = 3
BATCH_LIMIT = 2
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
OTHER_SECRET = "another-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture
def limited_app(make_app: AppFactory) -> Flask:
    return make_app(
        rate_limit_cache=f"{CACHE_LIMIT}/minute", rate_limit_batch=f"{BATCH_LIMIT}/minute"
    )


def put(http: FlaskClient, key: str, value: Any = 1) -> TestResponse:
    return http.post("/cache", json={"key": key, "value": value, "namespace": NS})


def get(http: FlaskClient, key: str, **query: str) -> TestResponse:
    return http.get(f"/cache/{key}", query_string={"namespace": NS, **query})


def batch_get(http: FlaskClient, *keys: str) -> TestResponse:
    return http.post("/cache/batch", json={"keys": list(keys), "namespace": NS})


def assert_limited(response: TestResponse, limit: int) -> dict[str, Any]:
    """The 429 of the contract: the seed body, Retry-After and the rate limit headers."""
    assert response.status_code == 429, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "rate_limit_exceeded"
    assert isinstance(body["message"], str)
    assert body["message"]
    details = body["details"]
    assert set(details) == {"limit", "remaining", "reset_time"}
    assert details["limit"] == limit
    assert details["remaining"] == 0
    assert RFC3339.match(details["reset_time"]), details
    reset = datetime.strptime(details["reset_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    now = time.time()
    assert now - 1 <= reset.timestamp() <= now + 60
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    # X-RateLimit-Reset is the same moment as reset_time, in epoch seconds.
    assert abs(int(response.headers["X-RateLimit-Reset"]) - reset.timestamp()) <= 1
    return body


def rate_headers(response: TestResponse) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response.headers[name]) for name in RATE_HEADERS)
    return limit, remaining, reset


def assert_no_rate_headers(response: TestResponse) -> None:
    for name in (*RATE_HEADERS, "Retry-After"):
        assert name not in response.headers, name


# Headers on every limited response.


def test_every_limited_response_carries_the_headers(make_app: AppFactory) -> None:
    app = make_app(rate_limit_cache="100/minute", rate_limit_batch="50/minute")
    http = authorized_client(app)
    cache_responses = [
        ("get miss", get(http, "k")),
        ("post", put(http, "k")),
        ("get hit", get(http, "k")),
        ("get 304", http.get(f"/cache/k?namespace={NS}", headers={"If-None-Match": "*"})),
        ("delete", http.delete(f"/cache/k?namespace={NS}")),
        ("delete miss", http.delete(f"/cache/k?namespace={NS}")),
    ]
    batch_responses = [
        ("batch", batch_get(http, "k", "j")),
        ("batch-set", http.post("/cache/batch-set", json={"entries": [{"key": "k", "value": 1}]})),
        ("invalidate", http.post("/cache/invalidate", json={"namespace": NS})),
    ]
    expected_status = [404, 201, 200, 304, 200, 404, 200, 200, 200]
    responses = cache_responses + batch_responses
    assert [response.status_code for _, response in responses] == expected_status

    now = time.time()
    for limit, named in ((100, cache_responses), (50, batch_responses)):
        remaining = []
        for name, response in named:
            got_limit, got_remaining, reset = rate_headers(response)
            assert got_limit == limit, name
            assert now - 1 <= reset <= now + 61, name
            remaining.append(got_remaining)
        assert remaining == [limit - n for n in range(1, len(named) + 1)]


# Over the limit.


def test_one_over_the_limit_is_429(limited_app: Flask) -> None:
    http = authorized_client(limited_app)
    allowed = [get(http, "k") for _ in range(CACHE_LIMIT)]
    refused = get(http, "k")

    assert [response.status_code for response in allowed] == [404] * CACHE_LIMIT
    assert [rate_headers(r)[1] for r in allowed] == list(range(CACHE_LIMIT - 1, -1, -1))
    assert_limited(refused, CACHE_LIMIT)
    # Every write is refused too: they share the cache category.
    assert_limited(put(http, "k"), CACHE_LIMIT)
    assert_limited(http.delete(f"/cache/k?namespace={NS}"), CACHE_LIMIT)


def test_a_refused_write_stores_nothing(limited_app: Flask) -> None:
    http = authorized_client(limited_app, sub="writer")
    for n in range(CACHE_LIMIT):
        assert put(http, f"k{n}").status_code == 201

    assert_limited(put(http, "refused"), CACHE_LIMIT)

    other = authorized_client(limited_app, sub="checker")
    assert get(other, "refused").status_code == 404


def test_a_refused_read_counts_no_hit(limited_app: Flask) -> None:
    http = authorized_client(limited_app, sub="reader")
    assert put(http, "k").status_code == 201
    assert get(http, "k").status_code == 200
    assert get(http, "k").status_code == 200

    assert_limited(get(http, "k"), CACHE_LIMIT)

    other = authorized_client(limited_app, sub="checker")
    # Two hits by the reader and this one; the refused read left no trace.
    assert get(other, "k", include_metadata="true").get_json()["hit_count"] == 3


def test_a_refused_delete_deletes_nothing(limited_app: Flask) -> None:
    http = authorized_client(limited_app, sub="deleter")
    for _ in range(CACHE_LIMIT):
        assert get(http, "k").status_code == 404
    owner = authorized_client(limited_app, sub="owner")
    assert put(owner, "k").status_code == 201

    assert_limited(http.delete(f"/cache/k?namespace={NS}"), CACHE_LIMIT)

    assert get(owner, "k").status_code == 200


def test_refused_batch_operations_do_nothing(limited_app: Flask) -> None:
    http = authorized_client(limited_app, sub="batcher")
    owner = authorized_client(limited_app, sub="owner")
    assert put(owner, "kept").status_code == 201
    for _ in range(BATCH_LIMIT):
        assert batch_get(http, "kept").status_code == 200

    assert_limited(batch_get(http, "kept"), BATCH_LIMIT)
    assert_limited(
        http.post(
            "/cache/batch-set", json={"entries": [{"key": "new", "value": 1}], "namespace": NS}
        ),
        BATCH_LIMIT,
    )
    assert_limited(http.post("/cache/invalidate", json={"namespace": NS}), BATCH_LIMIT)

    metadata = get(owner, "kept", include_metadata="true").get_json()
    assert metadata["hit_count"] == BATCH_LIMIT + 1
    assert get(owner, "new").status_code == 404


def test_denied_and_invalid_requests_are_refused_before_counting(limited_app: Flask) -> None:
    """A 403 is decided before the limiter runs; it spends none of the caller's quota."""
    narrow = authorized_client(limited_app, sub="narrow", scope=f"cache:read:{NS}")
    for _ in range(CACHE_LIMIT + 2):
        denied = narrow.get("/cache/k?namespace=elsewhere")
        assert denied.status_code == 403
        assert_no_rate_headers(denied)
    assert [get(narrow, "k").status_code for _ in range(CACHE_LIMIT)] == [404] * CACHE_LIMIT


# Whose quota is whose.


def test_subjects_have_their_own_quotas(limited_app: Flask) -> None:
    alice = authorized_client(limited_app, sub="alice")
    bob = authorized_client(limited_app, sub="bob")
    for _ in range(CACHE_LIMIT):
        assert get(alice, "k").status_code == 404
    assert_limited(get(alice, "k"), CACHE_LIMIT)

    assert [get(bob, "k").status_code for _ in range(CACHE_LIMIT)] == [404] * CACHE_LIMIT
    assert_limited(get(bob, "k"), CACHE_LIMIT)


def test_a_new_token_for_the_same_subject_shares_its_quota(limited_app: Flask) -> None:
    first = authorized_client(limited_app, sub="carol", scope="cache:read")
    for _ in range(CACHE_LIMIT):
        assert get(first, "k").status_code == 404
    second = limited_app.test_client()
    second.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(sub='carol', ttl=900)}"
    assert_limited(get(second, "k"), CACHE_LIMIT)


def test_anonymous_callers_are_limited_per_address(make_app: AppFactory) -> None:
    app = make_app(auth_mode="disabled", rate_limit_cache=f"{CACHE_LIMIT}/minute")
    http = app.test_client()

    def from_address(address: str) -> TestResponse:
        return http.get(f"/cache/k?namespace={NS}", environ_base={"REMOTE_ADDR": address})

    assert [from_address("10.0.0.1").status_code for _ in range(CACHE_LIMIT)] == [404] * 3
    assert_limited(from_address("10.0.0.1"), CACHE_LIMIT)
    assert [from_address("10.0.0.2").status_code for _ in range(CACHE_LIMIT)] == [404] * 3
    assert_limited(from_address("10.0.0.2"), CACHE_LIMIT)


def test_x_forwarded_for_is_ignored_without_a_proxy(make_app: AppFactory) -> None:
    """A client cannot buy a fresh quota per request by inventing X-Forwarded-For."""
    app = make_app(auth_mode="disabled", rate_limit_cache=f"{CACHE_LIMIT}/minute")
    http = app.test_client()
    statuses = [
        http.get(
            "/cache/k",
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        ).status_code
        for n in range(CACHE_LIMIT + 1)
    ]
    assert statuses == [404] * CACHE_LIMIT + [429]


def test_behind_a_proxy_the_forwarded_address_is_the_identity(make_app: AppFactory) -> None:
    app = make_app(auth_mode="disabled", rate_limit_cache=f"{CACHE_LIMIT}/minute", proxy_count=1)
    http = app.test_client()

    def via_proxy(forwarded_for: str) -> int:
        headers = {"X-Forwarded-For": forwarded_for}
        response = http.get("/cache/k", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        return response.status_code

    assert [via_proxy("203.0.113.1") for _ in range(CACHE_LIMIT)] == [404] * CACHE_LIMIT
    # The proxy appends the address it saw; what the client put before it is not trusted.
    assert via_proxy("192.0.2.77, 203.0.113.1") == 429
    assert via_proxy("203.0.113.2") == 404


def test_a_token_does_not_choose_the_anonymous_quota(make_app: AppFactory) -> None:
    """With auth disabled, a token naming someone is ignored: the address is the identity."""
    app = make_app(auth_mode="disabled", rate_limit_cache=f"{CACHE_LIMIT}/minute")
    http = app.test_client()
    address = {"REMOTE_ADDR": "10.0.0.3"}
    for n in range(CACHE_LIMIT + 1):
        token = make_token(sub=f"someone-{n}")
        response = http.get("/cache/k", headers=bearer(token), environ_base=address)
        assert response.status_code == (404 if n < CACHE_LIMIT else 429)


def test_a_forged_token_spends_nobody_s_quota(limited_app: Flask) -> None:
    forged = jwt.encode(claims(sub="victim"), OTHER_SECRET, "HS256")
    attacker = limited_app.test_client()
    for _ in range(CACHE_LIMIT + 2):
        response = attacker.get(f"/cache/k?namespace={NS}", headers=bearer(forged))
        assert response.status_code == 401
        assert_no_rate_headers(response)

    victim = authorized_client(limited_app, sub="victim")
    assert [get(victim, "k").status_code for _ in range(CACHE_LIMIT)] == [404] * CACHE_LIMIT


def test_categories_are_independent(limited_app: Flask) -> None:
    http = authorized_client(limited_app, sub="dana")
    for _ in range(CACHE_LIMIT):
        assert get(http, "k").status_code == 404
    assert_limited(get(http, "k"), CACHE_LIMIT)

    assert [batch_get(http, "k").status_code for _ in range(BATCH_LIMIT)] == [200] * BATCH_LIMIT
    assert_limited(batch_get(http, "k"), BATCH_LIMIT)

    other = authorized_client(limited_app, sub="erik")
    for _ in range(BATCH_LIMIT):
        assert batch_get(other, "k").status_code == 200
    assert get(other, "k").status_code == 404


def test_docs_are_not_limited(limited_app: Flask) -> None:
    http = limited_app.test_client()
    for _ in range(CACHE_LIMIT + BATCH_LIMIT + 2):
        response = http.get("/openapi.json")
        assert response.status_code == 200
        assert_no_rate_headers(response)


def test_an_unlimited_category_has_no_limit_and_no_headers(make_app: AppFactory) -> None:
    app = make_app(rate_limit_cache="unlimited", rate_limit_batch="1/minute")
    http = authorized_client(app)
    for _ in range(10):
        response = get(http, "k")
        assert response.status_code == 404
        assert_no_rate_headers(response)
    assert batch_get(http, "k").status_code == 200
    assert_limited(batch_get(http, "k"), 1)


# Where the limiter keeps its state.


def test_limit_checks_ride_in_the_cache_call_by_default(
    limited_app: Flask, redis_topology: str
) -> None:
    # On a cluster the limiter's key and the entry live in different slots: its own call.
    folds = limited_app.extensions["cacheservice"].access.limiter.folds_into_cache_calls
    assert folds == (redis_topology != CLUSTER)


def test_a_separate_limiter_redis_limits_exactly(make_app: AppFactory, redis_url: str) -> None:
    app = make_app(
        rate_limit_redis_url=redis_url,
        rate_limit_cache=f"{CACHE_LIMIT}/minute",
        rate_limit_batch=f"{BATCH_LIMIT}/minute",
    )
    limiter = app.extensions["cacheservice"].access.limiter
    assert not limiter.folds_into_cache_calls
    http = authorized_client(app, sub="separate")

    statuses = [put(http, f"k{n}").status_code for n in range(CACHE_LIMIT)]
    refused_put = put(http, "refused")
    batch = [batch_get(http, "k0").status_code for _ in range(BATCH_LIMIT)]
    refused_batch = batch_get(http, "k0")

    assert statuses == [201] * CACHE_LIMIT
    assert_limited(refused_put, CACHE_LIMIT)
    assert batch == [200] * BATCH_LIMIT
    assert_limited(refused_batch, BATCH_LIMIT)
    checker = authorized_client(app, sub="checker")
    assert get(checker, "refused").status_code == 404
    assert get(checker, "k0", include_metadata="true").get_json()["hit_count"] == BATCH_LIMIT + 1
    assert limiter.store_failures == 0


Operation = Callable[[FlaskClient], TestResponse]
# Each operation and its status on the state the ones before it leave.
SINGLE_ENTRY_OPERATIONS: dict[str, tuple[Operation, int]] = {
    "post": (lambda http: put(http, "k"), 201),
    "get": (lambda http: get(http, "k"), 200),
    "delete": (lambda http: http.delete(f"/cache/k?namespace={NS}"), 200),
}
BATCH_OPERATIONS: dict[str, tuple[Operation, int]] = {
    "batch": (lambda http: batch_get(http, "k"), 200),
    "batch-set": (
        lambda http: http.post(
            "/cache/batch-set", json={"entries": [{"key": "j", "value": 1}], "namespace": NS}
        ),
        200,
    ),
    "invalidate": (
        lambda http: http.post("/cache/invalidate", json={"namespace": NS, "tags": ["t"]}),
        200,
    ),
}


def assert_fails_open(
    make_app: AppFactory,
    caplog: pytest.LogCaptureFixture,
    operations: dict[str, tuple[Operation, int]],
) -> None:
    app = make_app(
        rate_limit_redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_cache="1/minute",
        rate_limit_batch="1/minute",
    )
    limiter = app.extensions["cacheservice"].access.limiter
    http = authorized_client(app)

    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        for round_number in range(3):
            for name, (operation, status) in operations.items():
                response = operation(http)
                # Far over the limit of 1, and still served: the limiter fails open.
                assert response.status_code == status, (round_number, name, response.get_json())
                assert_no_rate_headers(response)
        elapsed = time.monotonic() - started

    assert limiter.store_failures == 3 * len(operations)
    assert "rate limiter store unavailable" in caplog.text
    # A refused connection fails at once; no request waits for a timeout.
    assert elapsed < 2, elapsed


def test_a_dead_limiter_store_lets_batch_operations_through(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    assert_fails_open(make_app, caplog, BATCH_OPERATIONS)


def test_a_dead_limiter_store_lets_single_entry_operations_through(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    assert_fails_open(make_app, caplog, SINGLE_ENTRY_OPERATIONS)
