"""Authentication and rate limits over real HTTP, with the limit shared by two gunicorn workers.

This module runs its own server (the shared e2e server has authentication switched off): JWT
on, 40 cache operations an hour, and an access log that names the worker pid of each request.
It uses the e2e Redis of this xdist worker, with its own namespace and a fresh subject
per burst, so it cannot touch the quotas or entries of the other e2e tests.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.support.auth import TEST_JWT_SECRET, bearer, claims, make_token
from tests.support.gunicorn_server import GunicornServer

pytestmark = pytest.mark.e2e

NS = "e2e-auth-limits"
LIMIT = 40
EXTRA = 24
THREADS = 16
BURST_ATTEMPTS = 5
TIMEOUT = 30
OTHER_SECRET = "another-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only
# gunicorn_conf's access_log_format: '... "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s', %(p)s = <pid>.
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) .* pid=<?(?P<pid>\d+)>?$'
)


@dataclass(frozen=True)
class LimitedServer:
    server: GunicornServer
    access_log: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def limited_server(
    e2e_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LimitedServer]:
    directory = tmp_path_factory.mktemp("gunicorn-auth-limits")
    access_log = directory / "access.log"
    env = {
        "CACHE_REDIS_URL": e2e_redis_url,
        "CACHE_WEB_WORKERS": "2",
        "CACHE_AUTH_MODE": "jwt",
        "CACHE_JWT_SECRET": TEST_JWT_SECRET,
        "CACHE_RATE_LIMIT_CACHE": f"{LIMIT}/hour",
        "CACHE_WEB_ACCESS_LOG": str(access_log),
        "CACHE_LOG_LEVEL": "INFO",
    }
    server = GunicornServer(env, directory / "gunicorn.log").start()
    try:
        yield LimitedServer(server, access_log)
        assert server.is_running(), f"gunicorn died during the tests:\n{server.log_tail()}"
    finally:
        server.stop()


def fresh_get(url: str, token: str) -> requests.Response:
    """One request on a connection of its own, so the workers' accept loops share them out."""
    return requests.get(url, headers={**bearer(token), "Connection": "close"}, timeout=TIMEOUT)


@dataclass(frozen=True)
class Burst:
    statuses: Counter[int]
    # (status, pid) of every request of the burst, read from the access log.
    served: list[tuple[int, int]]

    @property
    def pids(self) -> set[int]:
        return {pid for _, pid in self.served}


def access_lines(access_log: Path, marker: str) -> list[tuple[int, int]]:
    lines = access_log.read_text(errors="replace").splitlines() if access_log.exists() else []
    found = []
    for line in lines:
        parsed = ACCESS_LINE.search(line)
        if parsed and f"/cache/{marker}-" in parsed["path"]:
            found.append((int(parsed["status"]), int(parsed["pid"])))
    return found


def burst(limited: LimitedServer, total: int) -> Burst:
    """``total`` GETs by one fresh subject, fired at once from ``THREADS`` threads."""
    marker = f"burst-{uuid.uuid4().hex[:12]}"
    token = make_token(sub=f"e2e-limits-{marker}", scope=f"cache:read:{NS}")
    start = threading.Barrier(THREADS)

    def worker(thread: int) -> list[int]:
        start.wait(timeout=TIMEOUT)
        return [
            fresh_get(f"{limited.base_url}/cache/{marker}-{n}?namespace={NS}", token).status_code
            for n in range(thread, total, THREADS)
        ]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        statuses = Counter(
            status for result in pool.map(worker, range(THREADS)) for status in result
        )

    # gunicorn writes the access line after the response; wait for the last ones.
    deadline = time.monotonic() + 10
    served = access_lines(limited.access_log, marker)
    while len(served) < total and time.monotonic() < deadline:
        time.sleep(0.05)
        served = access_lines(limited.access_log, marker)
    assert len(served) == total, limited.server.log_tail()
    return Burst(statuses, served)


def test_the_limit_holds_exactly_across_both_workers(limited_server: LimitedServer) -> None:
    """Concurrent requests of one subject on two workers: exactly the limit gets through.

    Each burst is a fresh subject with a fresh quota. Bursts repeat (a few times at most) until
    one is served by both workers; every burst must be exact.
    """
    assert limited_server.server.process is not None
    master_pid = limited_server.server.process.pid
    bursts = []
    for _ in range(BURST_ATTEMPTS):
        result = burst(limited_server, LIMIT + EXTRA)
        bursts.append(result)
        # A miss is the allowed answer (no entries exist); a refusal is 429. Nothing else.
        assert result.statuses == Counter({404: LIMIT, 429: EXTRA}), result.statuses
        assert Counter(status for status, _ in result.served) == result.statuses
        assert master_pid not in result.pids
        if len(result.pids) >= 2:
            break

    pids = [dict(Counter(pid for _, pid in result.served)) for result in bursts]
    assert len(bursts[-1].pids) == 2, f"every burst was served by one worker: {pids}"


def test_limit_headers_and_429_over_http(limited_server: LimitedServer) -> None:
    token = make_token(sub=f"e2e-limits-{uuid.uuid4().hex}", scope=f"cache:read:{NS}")
    url = f"{limited_server.base_url}/cache/headers?namespace={NS}"
    with requests.Session() as session:
        session.headers.update(bearer(token))
        responses = [session.get(url, timeout=TIMEOUT) for _ in range(LIMIT + 1)]

    allowed, refused = responses[:-1], responses[-1]
    assert {response.status_code for response in allowed} == {404}
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in allowed] == list(
        range(LIMIT - 1, -1, -1)
    )
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {str(LIMIT)}
    assert refused.status_code == 429
    body: dict[str, Any] = refused.json()
    assert body["error"] == "rate_limit_exceeded"
    assert body["details"]["limit"] == LIMIT
    assert body["details"]["remaining"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["details"]["reset_time"])
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_401_over_http(limited_server: LimitedServer) -> None:
    url = f"{limited_server.base_url}/cache/k?namespace={NS}"
    forged = jwt.encode(claims(sub="victim", scope="cache:admin"), OTHER_SECRET, "HS256")
    expired = make_token(sub="victim", ttl=-3600)

    for headers, invalid_token in (({}, False), (bearer(forged), True), (bearer(expired), True)):
        response = requests.get(url, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("application/json")
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer")
        assert ('error="invalid_token"' in challenge) is invalid_token
        body = response.json()
        assert set(body) == {"error", "message", "details"}
        assert body["error"] == "unauthorized"
        assert "X-RateLimit-Limit" not in response.headers

    # The docs stay public.
    assert (
        requests.get(f"{limited_server.base_url}/openapi.json", timeout=TIMEOUT).status_code == 200
    )
