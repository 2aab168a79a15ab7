"""A throwaway Redis Cluster: three masters and three replicas on free loopback ports.

Each node is a ``redis-server --cluster-enabled yes`` persisting nothing, in a directory of its
own under one temporary directory; ``redis-cli --cluster create`` joins them. A test may kill a
master (SIGKILL) and wait for its replica to take over its slots.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from tests.support.ports import free_port
from tests.support.redis_server import wait_for_ping

STARTUP_TIMEOUT = 30.0
NODE_TIMEOUT_MS = 1000
SLOTS = 16384


class RedisClusterError(RuntimeError):
    pass


def _cluster_slots(probe: redis.Redis) -> list[Any]:
    """``CLUSTER SLOTS``: [start, end, [master host, port, id], replicas...] per range."""
    command: Any = probe.execute_command  # Untyped in redis-py.
    slots: list[Any] = command("CLUSTER SLOTS")
    return slots


class _Node:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)


class RedisCluster:
    """Six ``redis-server`` processes forming a cluster with one replica per master."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cacheservice-cluster-"))
        self.masters = masters
        self.replicas = replicas
        self.nodes: dict[int, _Node] = {}

    # Lifecycle

    def start(self) -> RedisCluster:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RedisClusterError("redis-server and redis-cli must be on PATH")
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                port = self._unused_port()
                node = _Node(self.directory / str(port), port)
                self.nodes[port] = node
                node.start(binary)
            for node in self.nodes.values():
                self._wait_for_ping(node)
            addresses = [f"127.0.0.1:{port}" for port in self.nodes]
            result = subprocess.run(
                [cli, "--cluster", "create", *addresses,
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=STARTUP_TIMEOUT, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise RedisClusterError(f"cluster create failed: {result.stdout}{result.stderr}")
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _unused_port(self) -> int:
        while True:
            port = free_port()
            # The cluster bus listens on port + 10000: keep both clear of the other nodes.
            taken = {p for n in self.nodes for p in (n, n + 10000)}
            if port not in taken and port + 10000 not in taken and port + 10000 < 65536:
                return port

    def _wait_for_ping(self, node: _Node) -> None:
        def exited() -> str | None:
            return None if node.alive else f"redis-server on {node.port} exited: {self.log(node)}"

        wait_for_ping(node.port, exited)

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Every live node says ``cluster_state:ok`` and sees all slots served by live masters;
        every live replica is in sync with its master (else it could not take over)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._healthy():
                return
            if time.monotonic() > deadline:
                raise RedisClusterError(f"cluster not healthy after {timeout}s")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        live = {port for port, node in self.nodes.items() if node.alive}
        for port in live:
            probe = self.nodes[port].client(timeout=1)
            try:
                if probe.cluster("info").get("cluster_state") != "ok":
                    return False
                covered = 0
                for start, end, master, *_ in _cluster_slots(probe):
                    if int(master[1]) not in live:
                        return False
                    covered += int(end) - int(start) + 1
                if covered != SLOTS:
                    return False
                replication = probe.info("replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                    or int(replication.get("master_port", 0)) not in live
                ):
                    return False
            except redis.RedisError:
                return False
            finally:
                probe.close()
        return True

    def stop(self) -> None:
        for node in self.nodes.values():
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    # Inspection and faults

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.nodes)

    def client(self) -> ClusterClient:
        node_class: Any = ClusterNode  # Untyped in redis-py.
        live = [node_class("127.0.0.1", port) for port, node in self.nodes.items() if node.alive]
        return ClusterClient(startup_nodes=live, socket_timeout=2, socket_connect_timeout=2)

    def master_ports(self) -> list[int]:
        """Ports of the live masters that serve slots, from a live node's view."""
        for _port, node in self.nodes.items():
            if not node.alive:
                continue
            probe = node.client(timeout=1)
            try:
                slots = _cluster_slots(probe)
            except redis.RedisError:
                continue
            finally:
                probe.close()
            return sorted({int(entry[2][1]) for entry in slots})
        raise RedisClusterError("no live node answered CLUSTER SLOTS")

    def replica_ports(self) -> list[int]:
        masters = set(self.master_ports())
        return sorted(
            port for port, node in self.nodes.items() if node.alive and port not in masters
        )

    def master_of_slot(self, slot: int) -> int:
        for _port, node in self.nodes.items():
            if not node.alive:
                continue
            probe = node.client(timeout=1)
            try:
                for start, end, master, *_ in _cluster_slots(probe):
                    if int(start) <= slot <= int(end):
                        return int(master[1])
            except redis.RedisError:
                continue
            finally:
                probe.close()
        raise RedisClusterError(f"no master found for slot {slot}")

    def flush_all(self) -> None:
        for port in self.master_ports():
            probe = self.nodes[port].client()
            try:
                probe.flushall()
            finally:
                probe.close()

    def kill(self, port: int) -> None:
        """SIGKILL one node; its replica (if it was a master) is promoted after the timeout."""
        self.nodes[port].kill()

    def log(self, node: _Node, lines: int = 20) -> str:
        try:
            return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
