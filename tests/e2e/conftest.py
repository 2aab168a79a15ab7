"""The e2e server: real gunicorn, started once per test session (per xdist worker).

It runs the repository's gunicorn configuration with two workers against this worker's e2e
Redis database. When a test fails, the tail of the server's log is attached to its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
import redis

from tests.support.gunicorn_server import GunicornServer
from tests.support.stack import Stack
from tests.support.topology import raw_client

_servers: list[GunicornServer] = []


@pytest.fixture(scope="session")
def e2e_server(
    e2e_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GunicornServer]:
    env = {
        "CACHE_REDIS_URL": e2e_redis_url,
        "CACHE_WEB_WORKERS": "2",
        # Authentication is switched off explicitly: these tests drive the HTTP contract.
        "CACHE_AUTH_MODE": "disabled",
        "CACHE_LOG_LEVEL": "INFO",
    }
    server = GunicornServer(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log").start()
    _servers.append(server)
    client = raw_client(e2e_redis_url)
    client.flushdb()
    client.close()
    try:
        yield server
        assert server.is_running(), f"gunicorn died during the tests:\n{server.log_tail()}"
    finally:
        server.stop()
        _servers.remove(server)


@pytest.fixture(scope="session")
def base_url(e2e_server: GunicornServer) -> str:
    return e2e_server.base_url


# Modules that run a whole deployment (tests/support/stack.py) define a module-scoped ``stack``
# fixture; these build on it.


@pytest.fixture
def client(stack: Stack) -> Iterator[redis.Redis]:
    """A client of the stack's cache Redis, closed after the test."""
    found = stack.redis()
    yield found
    found.close()


@pytest.fixture
def logs_on_failure(stack: Stack) -> Iterator[Stack]:
    """The stack; the tails of its processes' logs are printed after the test.

    pytest shows a test's captured output only when it fails, which is when they matter.
    """
    yield stack
    print("\n--- worker log\n" + stack.worker.log_tail())
    print("\n--- beat log\n" + stack.beat.log_tail(20))
    print("\n--- gunicorn log\n" + stack.web.log_tail(40))
    print("\n--- postgres log\n" + stack.postgres.log_tail(20))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _servers:
        report.sections.append(("gunicorn log (tail)", _servers[-1].log_tail()))
    return report
