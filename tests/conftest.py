"""Fixtures shared by every test layer.

Integration and e2e tests use the machine's real Redis (``CACHE_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379``). Each pytest-xdist worker gets its own pair of database numbers
(one for in-process tests, one for the e2e server), flushed before use, so parallel workers
never see each other's keys and a developer's data in database 0 is never touched.

With ``--redis-topology cluster`` the same tests run on Redis Cluster instead: each xdist
worker starts two private three-master clusters (one for in-process tests, one for the e2e
server) in place of the two database numbers (tests/support/topology.py). With
``--redis-topology sentinel`` each uses a private master, replica and sentinel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app
from cacheservice.migrations import upgrade
from tests.support.auth import TEST_JWT_SECRET, authorized_client
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_sentinel import RedisSentinel
from tests.support.topology import SENTINEL, SINGLE, TOPOLOGIES, raw_client

BASE_REDIS_URL = os.environ.get("CACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
BASE_DATABASE_URL = os.environ.get(
    "CACHE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"
)
# Another pytest session on the same machine (a second checkout, say) sets its own prefix and
# CACHE_TEST_REDIS_URL, so the two never drop each other's databases.
DATABASE_PREFIX = os.environ.get("CACHE_TEST_DATABASE_PREFIX", "cacheservice_test")
TABLES = (
    "cache_entries",
    "cache_sessions",
    "cache_metrics",
    "cache_configurations",
    "flush_batches",
    "compression_dictionaries",
)
FIRST_TEST_DB = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-topology",
        choices=TOPOLOGIES,
        default=os.environ.get("CACHE_TEST_TOPOLOGY", SINGLE),
        help="run integration and e2e tests on one Redis server or on a Redis Cluster",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"redis topology: {config.getoption('--redis-topology')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the cluster and sentinel passes, skip tests whose subject does not depend on the
    topology option (they start their own servers, use no Redis, or check input refused
    before any Redis call): the single pass ran them."""
    if config.getoption("--redis-topology") == SINGLE:
        return
    skip = pytest.mark.skip(reason="independent of --redis-topology; runs on the single pass")
    for item in items:
        if item.get_closest_marker("topology_independent"):
            item.add_marker(skip)


def _worker_index(worker_id: str) -> int:
    return 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))


@pytest.fixture(scope="session")
def redis_topology(request: pytest.FixtureRequest) -> str:
    topology: str = request.config.getoption("--redis-topology")
    return topology


def _topology_url(topology: str, db: int) -> Iterator[str]:
    """A Redis URL of the topology: a database number on the machine's server, or a cluster
    or a Sentinel-watched master of this xdist worker's own, stopped at the end of the session."""
    if topology == SINGLE:
        yield f"{BASE_REDIS_URL}/{db}"
        return
    if topology == SENTINEL:
        watched = RedisSentinel(sentinels=1, quorum=1).start()
        try:
            yield f"{watched.url.rsplit('/', 1)[0]}/{db}"
        finally:
            watched.stop()
        return
    cluster = RedisCluster(masters=3, replicas=0).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_db(worker_id: str) -> int:
    """The database number in-process tests of this xdist worker use."""
    return FIRST_TEST_DB + 2 * _worker_index(worker_id)


@pytest.fixture(scope="session")
def e2e_redis_db(worker_id: str) -> int:
    """The database number the e2e gunicorn server of this xdist worker uses."""
    return FIRST_TEST_DB + 2 * _worker_index(worker_id) + 1


@pytest.fixture(scope="session")
def redis_url(redis_topology: str, redis_db: int) -> Iterator[str]:
    """Where in-process apps of this xdist worker keep their data."""
    yield from _topology_url(redis_topology, redis_db)


@pytest.fixture(scope="session")
def e2e_redis_url(redis_topology: str, e2e_redis_db: int) -> Iterator[str]:
    """Where the e2e gunicorn servers of this xdist worker keep their data."""
    yield from _topology_url(redis_topology, e2e_redis_db)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A raw client on the test database (every master of a cluster), flushed before the test."""
    client = raw_client(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def database_url(worker_id: str) -> str:
    """A database of this test run and xdist worker, created afresh with every migration."""
    name = f"{DATABASE_PREFIX}_{_worker_index(worker_id)}"
    url = f"{BASE_DATABASE_URL}/{name}"
    maintenance = f"{BASE_DATABASE_URL}/postgres"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    upgrade(url)
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the test database, every table emptied before the test."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        yield conn


AppFactory = Callable[..., Flask]


def app_settings(redis_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings of a test app: authentication on, with the test secret."""
    return {"redis_url": redis_url, "jwt_secret": TEST_JWT_SECRET, **overrides}


@pytest.fixture
def make_app(redis_client: redis.Redis, redis_url: str, database_url: str) -> Iterator[AppFactory]:
    """Build apps on the test databases with some settings overridden; shut down after."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(app_settings(redis_url, **{"database_url": database_url, **overrides}))
        made.append(app)
        return app

    yield make
    for app in made:
        # Close the Postgres pool now, in this thread: left to the garbage collector, its
        # finaliser may run in one of its own threads and fail to join itself.
        app.extensions["cacheservice"].shutdown()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A client whose token carries every scope (the scope matrix has its own tests)."""
    return authorized_client(app)
