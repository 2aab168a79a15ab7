"""Postgres access: one connection pool per process, opened on first use (after fork)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from cacheservice.config import Settings

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
TCP_USER_TIMEOUT_MS = 10_000


class Database:
    """A lazily opened pool; a forked child opens its own instead of sharing the parent's."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.timeout = settings.database_timeout
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=8,
                        timeout=self.timeout,
                        open=True,
                        # Connections pooled before a Postgres restart died with it: checked on
                        # checkout, a dead one is replaced instead of failing the request.
                        check=self._check,
                        # psycopg_pool backs off up to 5 minutes between reconnect attempts by
                        # default; give up an attempt quickly instead, so the next request
                        # grows the pool again as soon as Postgres is back.
                        reconnect_timeout=self.timeout,
                        kwargs={
                            # Give up on a dead server quickly; the caller answers 503 or
                            # retries on its next scheduled run.
                            "connect_timeout": max(1, int(self.timeout)),
                            # A server that went silent (partition, paused VM) would otherwise
                            # hold a query, or the checkout check, until TCP gives up after
                            # minutes: unacknowledged data and idle links fail within ~10 s.
                            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                            "keepalives": 1,
                            "keepalives_idle": 10,
                            "keepalives_interval": 5,
                            "keepalives_count": 2,
                            "autocommit": False,
                        },
                        name="cacheservice",
                    )
                    self._pid = os.getpid()
        return self._pool

    def _check(self, conn: psycopg.Connection) -> None:
        """One empty query on checkout. When the server went away every idle connection is as
        dead as this one: check them all at once, rather than let the pool hand the request one
        dead connection after another (it retries the first at once, then waits 1 s, 2 s...,
        which with a short database timeout ends in a timeout)."""
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.OperationalError:
            if self._pool is not None:
                self._pool.check()
            raise

    def connection(self) -> psycopg.Connection:
        """A pooled connection as a context manager: commits on success, rolls back on error."""
        return self.pool.connection()  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


def load_queries(path: Path | None = None) -> dict[str, str]:
    """Named queries from ``sql/queries.sql``: blocks headed ``-- name: <name>``."""
    text = (path or SQL_DIR / "queries.sql").read_text()
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name:
                queries[name] = "\n".join(lines).strip()
            name, lines = line.removeprefix("-- name:").strip(), []
        elif name is not None:
            lines.append(line)
    if name:
        queries[name] = "\n".join(lines).strip()
    return queries
