"""Fixtures shared by integration tests: a private redis-server whose statistics and script
cache belong to one test module alone (so a parallel test cannot change round-trip counts), and
a capture of the request log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cacheservice.logs import JsonFormatter
from cacheservice.store.scripts import Script, Scripts
from tests.support.redis_server import RedisServer

ALL_SCRIPTS = [value for value in vars(Scripts).values() if isinstance(value, Script)]


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("private-redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def raw(private_redis: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the private server, emptied and with every script loaded."""
    client = private_redis.client()
    client.flushall()
    client.script_flush()
    for script in ALL_SCRIPTS:
        client.script_load(script.source)
    yield client
    client.close()


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """What the request logger writes, one JSON line per request."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cacheservice.requests")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
