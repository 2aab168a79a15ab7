"""A throwaway Sentinel setup: one master, one replica and three sentinels (quorum 2).

Everything listens on free loopback ports and lives in one temporary directory. A test may kill
the master and wait until the sentinels have promoted the replica.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.support.ports import free_port

STARTUP_TIMEOUT = 30.0
SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class RedisSentinelError(RuntimeError):
    pass


def _client(port: int, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )


class RedisSentinel:
    def __init__(self, sentinels: int = 3, quorum: int = 2) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cacheservice-sentinel-"))
        self.sentinel_count = sentinels
        self.quorum = quorum
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports: list[int] = []
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{nodes}/{SERVICE}/0"

    def _spawn(self, port: int, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisSentinelError("redis-server is not on PATH")
        directory = self.directory / str(port)
        directory.mkdir()
        self.processes[port] = subprocess.Popen(
            [binary, *args, "--dir", str(directory), "--logfile", str(directory / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> RedisSentinel:
        try:
            common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            # A replica syncs at once instead of after the default 5 s diskless delay.
            common += ["--repl-diskless-sync-delay", "0"]
            self._spawn(self.master_port, "--port", str(self.master_port), *common)
            self._spawn(
                self.replica_port,
                "--port", str(self.replica_port), *common,
                "--replicaof", "127.0.0.1", str(self.master_port),
            )  # fmt: skip
            self._wait(self._replica_synced, "replica sync")
            for _ in range(self.sentinel_count):
                port = free_port()
                while port in self.processes:
                    port = free_port()
                self.sentinel_ports.append(port)
                config = self.directory / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\n"
                    "bind 127.0.0.1\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {self.quorum}\n"
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n"
                )
                self._spawn(port, str(config), "--sentinel")
            self._wait(self._sentinels_ready, "sentinels to discover each other")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for port, process in self.processes.items():
                if process.poll() is not None and port not in self.killed:
                    raise RedisSentinelError(f"process on port {port} exited")
            try:
                if ready():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RedisSentinelError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def _replica_synced(self) -> bool:
        probe = _client(self.replica_port)
        try:
            return probe.info("replication").get("master_link_status") == "up"
        finally:
            probe.close()

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            probe = _client(port)
            try:
                replicas: Any = probe.sentinel_slaves(SERVICE)
                others: Any = probe.sentinel_sentinels(SERVICE)
                if len(replicas) < 1:
                    return False
                if len(others) < self.sentinel_count - 1:
                    return False
            finally:
                probe.close()
        return True

    def current_master_port(self) -> int:
        """The master's port as a sentinel reports it."""
        for port in self.sentinel_ports:
            probe = _client(port)
            try:
                address: Any = probe.sentinel_get_master_addr_by_name(SERVICE)
                _host, master = address
                return int(master)
            except redis.RedisError:
                continue
            finally:
                probe.close()
        raise RedisSentinelError("no sentinel answered")

    def master_client(self) -> redis.Redis:
        return _client(self.current_master_port(), timeout=2)

    def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = self.current_master_port()
        self.killed.add(port)
        process = self.processes[port]
        process.kill()
        process.wait(timeout=STARTUP_TIMEOUT)
        return port

    def wait_for_promotion(self, old_master: int, timeout: float = 20.0) -> int:
        """Wait until the sentinels name another master and it acts as one; its port."""

        def promoted() -> bool:
            port = self.current_master_port()
            if port == old_master:
                return False
            probe = _client(port)
            try:
                return probe.info("replication").get("role") == "master"
            finally:
                probe.close()

        self._wait(promoted, "promotion", timeout)
        return self.current_master_port()

    def flush_all(self) -> None:
        probe = self.master_client()
        try:
            probe.flushall()
        finally:
            probe.close()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STARTUP_TIMEOUT)
        shutil.rmtree(self.directory, ignore_errors=True)
