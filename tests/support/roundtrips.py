"""Counting Redis round trips instead of timing them.

redis-py writes a command, or a whole pipeline, with one ``send_packed_command`` call and then
reads the replies, so one call is one round trip. The connection handshake (``CLIENT SETINFO``,
``SELECT``) runs once per new connection and is not part of any request's cost, so it is left
out of the count.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

import redis
from flask import Flask


def command_names(packed: bytes | memoryview | Iterable[bytes | memoryview]) -> list[str]:
    """The command names (upper case) in a RESP-encoded write, in order."""
    if isinstance(packed, bytes | memoryview):
        data = bytes(packed)
    else:
        data = b"".join(bytes(chunk) for chunk in packed)
    names: list[str] = []
    position = 0
    while position < len(data):
        if data[position : position + 1] != b"*":
            raise ValueError(f"not a RESP array at byte {position}")
        line_end = data.index(b"\r\n", position)
        count = int(data[position + 1 : line_end])
        position = line_end + 2
        for index in range(count):
            line_end = data.index(b"\r\n", position)
            length = int(data[position + 1 : line_end])
            start = line_end + 2
            if index == 0:
                names.append(data[start : start + length].decode().upper())
            position = start + length + 2
    return names


class RoundTrips:
    """Every write burst sent to Redis, as the list of command names it carried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bursts: list[list[str]] = []

    def record(self, names: list[str]) -> None:
        with self._lock:
            self.bursts.append(names)

    def reset(self) -> None:
        with self._lock:
            self.bursts.clear()

    @property
    def count(self) -> int:
        return len(self.bursts)

    def commands(self) -> Counter[str]:
        return Counter(name for burst in self.bursts for name in burst)

    def __repr__(self) -> str:
        summary = [dict(Counter(burst)) for burst in self.bursts]
        return f"RoundTrips({self.count}: {summary})"


class CountingConnection(redis.Connection):
    """A connection that records each write burst outside the connection handshake."""

    round_trips: ClassVar[RoundTrips]
    _handshaking = False

    def on_connect_check_health(self, check_health: bool = True) -> None:
        self._handshaking = True
        try:
            super().on_connect_check_health(check_health=check_health)
        finally:
            self._handshaking = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._handshaking:
            self.round_trips.record(command_names(command))
        # redis-py's Connection methods carry no annotations.
        super().send_packed_command(command, check_health=check_health)  # type: ignore[no-untyped-call]


def count_round_trips(app: Flask) -> RoundTrips:
    """Make every connection of the app's Redis pool count its round trips.

    Existing connections are dropped, so every later one is a counting connection.
    """
    round_trips = RoundTrips()
    counting = type("CountingConnection", (CountingConnection,), {"round_trips": round_trips})
    pool = app.extensions["cacheservice"].redis.connection_pool
    pool.disconnect()
    pool.connection_class = counting
    pool.reset()
    return round_trips


def count_round_trips_per_node(app: Flask) -> dict[str, RoundTrips]:
    """Make every node connection of the app's cluster client count its round trips, by node
    name (``host:port``)."""
    cluster_client: Any = app.extensions["cacheservice"].redis
    counts: dict[str, RoundTrips] = {}
    for node in cluster_client.get_nodes():
        trips = RoundTrips()
        counts[node.name] = trips
        counting = type("CountingConnection", (CountingConnection,), {"round_trips": trips})
        pool = cluster_client.get_redis_connection(node).connection_pool
        pool.disconnect()
        pool.connection_class = counting
        pool.reset()
    return counts
