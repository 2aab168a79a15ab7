"""Real ``celery worker`` and ``celery beat`` processes, as the Procfile runs them.

Each runs in a process group of its own, so a test can SIGKILL a worker together with its
prefork children (a machine losing the process mid-task), and start it again. Readiness is read
from the process's log: the worker logs ``ready.``, beat logs ``beat: Starting...``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from tests.support.gunicorn_server import REPO_ROOT

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
READY_MARKERS = {"worker": "ready.", "beat": "beat: Starting..."}


class CeleryError(RuntimeError):
    pass


class CeleryProcess:
    """``python -m celery -A workers.celery_app <kind>`` with the given environment."""

    def __init__(self, kind: str, env: Mapping[str, str], log_path: Path) -> None:
        if kind not in READY_MARKERS:
            raise ValueError(f"unknown celery process kind {kind!r}")
        self.kind = kind
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", self.kind]
        if self.kind == "worker":
            # One pool process, as small deployments run it. Mingle, gossip and heartbeats only
            # matter between several workers and cost a second at every start.
            command += [
                "--concurrency", "1", "--pool", "prefork",
                "--without-mingle", "--without-gossip", "--without-heartbeat",
                "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
            ]  # fmt: skip
        return [*command, "--loglevel", "INFO"]

    def start(self, wait: bool = True) -> CeleryProcess:
        if self.is_running():
            raise CeleryError(f"celery {self.kind} is already running")
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self._command(),
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_until_ready(offset)
        return self

    def wait_until_ready(self, offset: int = 0) -> None:
        assert self.process is not None
        marker = READY_MARKERS[self.kind].encode()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CeleryError(f"celery {self.kind} exited:\n{self.log_tail()}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if marker in log.read():
                    return
            time.sleep(0.05)
        raise CeleryError(
            f"celery {self.kind} not ready in {STARTUP_TIMEOUT} s:\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: no cleanup, no acknowledgement, no lock release."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL of the group if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        # Whatever the main process left behind (a pool child) goes with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"


def celery_env(
    *,
    redis_url: str,
    broker_url: str,
    database_url: str,
    schedule_file: Path,
    flush_interval: float = 0.5,
    probe_interval: float = 1.0,
    task_lock_seconds: int = 5,
) -> dict[str, str]:
    """The variables a worker and beat of a test run with: short intervals, a short lock."""
    return {
        "CACHE_REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "CACHE_DATABASE_URL": database_url,
        "CACHE_BEAT_SCHEDULE_FILE": str(schedule_file),
        "CACHE_FLUSH_INTERVAL": str(flush_interval),
        "CACHE_PROBE_INTERVAL": str(probe_interval),
        "CACHE_TASK_LOCK_SECONDS": str(task_lock_seconds),
        "CACHE_LOG_LEVEL": "INFO",
        # The tests run as root in containers; Celery would warn about it on every start.
        "C_FORCE_ROOT": "1",
    }
