"""A throwaway ``redis-server`` process that a test may kill, freeze and restart.

Tests that stop Redis, flush its script cache or read its global statistics use one of these
instead of the machine's shared Redis, so they cannot disturb tests running in parallel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.ports import free_port

STARTUP_TIMEOUT = 30.0


def wait_for_ping(port: int, exited: Callable[[], str | None]) -> None:
    """Wait until the redis-server on ``port`` answers PING; ``exited`` tells (with the reason)
    when its process is gone, which ends the wait at once."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        while True:
            reason = exited()
            if reason is not None:
                raise RedisServerError(reason)
            try:
                if probe.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RedisServerError(f"redis-server on {port} did not answer PING")
            time.sleep(0.05)
    finally:
        probe.close()


class RedisServerError(RuntimeError):
    pass


class RedisServer:
    """``redis-server`` on a free loopback port, persisting nothing, in its own directory."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5
        )

    def start(self) -> RedisServer:
        """Start the server (on the same port as before, after a kill) and wait for PING."""
        if self.process is not None and self.process.poll() is None:
            raise RedisServerError("redis-server is already running")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not on PATH")
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        process = self.process

        def exited() -> str | None:
            if process.poll() is None:
                return None
            return f"redis-server exited with {process.returncode}: {self.log_tail()}"

        wait_for_ping(self.port, exited)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # A frozen server ignores SIGTERM until it runs again.
        os.kill(self.process.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
