"""The real gunicorn server, started with the repository's configuration module.

It runs exactly as the Procfile runs it (``gunicorn -c python:cacheservice.gunicorn_conf
cacheservice.wsgi:app``); only ``CACHE_*`` environment variables differ.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# A loaded two-core machine may take a while to import the app in every worker.
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
BIND_ATTEMPTS = 3


class GunicornError(RuntimeError):
    pass


class GunicornServer:
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GunicornServer:
        """Start gunicorn and wait until it serves ``/openapi.json``.

        The port is chosen free just before the start; if another process takes it in between,
        gunicorn cannot bind and exits, and the start is retried on a new port.
        """
        for attempt in range(BIND_ATTEMPTS):
            self.port = free_port()
            env = {**os.environ, **self.env, "CACHE_WEB_BIND": f"127.0.0.1:{self.port}"}
            with self.log_path.open("ab") as log:
                log.write(f"--- start attempt {attempt + 1} on port {self.port}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "-c",
                        "python:cacheservice.gunicorn_conf",
                        "cacheservice.wsgi:app",
                    ],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_until_ready():
                return self
        raise GunicornError(f"gunicorn did not start:\n{self.log_tail()}")

    def _wait_until_ready(self) -> bool:
        """True once the server answers; False when gunicorn exited (to retry on a new port)."""
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.base_url}/openapi.json", timeout=5).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise GunicornError(
            f"gunicorn did not answer within {STARTUP_TIMEOUT} s:\n{self.log_tail()}"
        )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL of the whole process group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, lines: int = 200) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
