"""A throwaway Postgres cluster that a test may stop and start again.

Tests that take Postgres away use one of these instead of the machine's shared server, so they
cannot disturb tests running in parallel. The cluster lives in a temporary directory, listens on
a free loopback port with ``trust`` authentication. It keeps Postgres's durability settings:
``pg_ctl stop -m immediate`` is a crash, and a commit acknowledged before it must survive it
(with ``synchronous_commit=off`` it would not, and a test would see a flushed batch vanish).

``initdb`` and ``postgres`` refuse to run as root; when the tests run as root, the binaries run
as the ``postgres`` user (``runuser``) in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.ports import free_port

STARTUP_TIMEOUT = 60.0
START_ATTEMPTS = 3
SERVICE_USER = "postgres"


class PostgresServerError(RuntimeError):
    pass


def _binaries() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH, or the newest Debian install."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not candidates:
        raise PostgresServerError("pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
    return Path(candidates[-1]).parent


class PostgresServer:
    """One cluster; ``start`` after ``stop`` brings the same data back on the same port."""

    def __init__(self) -> None:
        self.bin_dir = _binaries()
        self.as_service_user = os.geteuid() == 0
        # pytest's tmp_path is private to root; the service user needs a directory of its own.
        self.directory = Path(tempfile.mkdtemp(prefix="cacheservice-pg-"))
        if self.as_service_user:
            account = pwd.getpwnam(SERVICE_USER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.data_dir = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = 0
        self._initialised = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(
        self, *args: str, timeout: float = STARTUP_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_service_user:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
        )

    def _initdb(self) -> None:
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        self._initialised = True

    def start(self) -> PostgresServer:
        """Start the cluster (initialising it on first use) and wait until it accepts queries.

        The first start picks a free port; if another process takes it first, the start is
        retried on a new one. Later starts reuse the port, so clients configured with
        ``url()`` reconnect by themselves.
        """
        if not self._initialised:
            self._initdb()
        fixed_port = self.port != 0
        for _ in range(1 if fixed_port else START_ATTEMPTS):
            if not fixed_port:
                self.port = free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                "-c max_connections=100"
            )
            result = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
                "-w", "-t", str(int(STARTUP_TIMEOUT)), "start",
            )  # fmt: skip
            if result.returncode == 0 and self._accepts_queries():
                return self
        raise PostgresServerError(f"postgres did not start:\n{self.log_tail()}")

    def _accepts_queries(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                if not self.is_running():
                    return False
                time.sleep(0.05)
        return False

    def is_running(self) -> bool:
        return (
            self._initialised
            and self._run("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0
        )

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``; ``immediate`` is a crash: no checkpoint, clients cut off."""
        if not self.is_running():
            return
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        if result.returncode != 0:
            raise PostgresServerError(f"pg_ctl stop failed:\n{result.stdout}\n{result.stderr}")

    def create_database(self, name: str) -> str:
        """An empty database on this cluster; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the cluster (if running) and remove its directory."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
