"""gunicorn settings: ``gunicorn -c python:cacheservice.gunicorn_conf cacheservice.wsgi:app``.

Why gevent: every request waits on Redis (and sometimes Postgres) far longer than it computes.
Measured on this kind of machine, the gthread worker lets one process accept every keep-alive
connection unless ``worker_connections`` is capped, halving throughput, while gevent workers
stayed balanced; gevent also makes a slow client cost a greenlet rather than a thread. One
worker per core, because the Python work is CPU-bound once the waiting is cooperative.
Every value comes from a ``CACHE_WEB_*`` variable through ``cacheservice.config``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Any

from cacheservice.config import Settings

_settings = Settings.from_env()

bind = _settings.web_bind
workers = _settings.web_workers or multiprocessing.cpu_count()
worker_class = _settings.web_worker_class
# Concurrent connections per gevent worker; beyond it, connections wait in the listen backlog.
worker_connections = _settings.web_worker_connections
# nginx keeps upstream connections alive; a little longer than nginx's keepalive_timeout.
keepalive = _settings.web_keepalive
timeout = _settings.web_timeout
graceful_timeout = 20
# Recycle workers now and then so a slow leak in any dependency cannot grow without bound.
max_requests = _settings.web_max_requests
max_requests_jitter = max_requests // 10
accesslog = _settings.web_access_log
# The worker pid shows which process served a request (balance checks, debugging).
access_log_format = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'
errorlog = "-"
loglevel = _settings.log_level.lower()
# Trust X-Forwarded-* only from the nginx in front of us (loopback by default).
forwarded_allow_ips = _settings.web_forwarded_allow_ips
# gunicorn 24+ opens a control socket at a fixed path; several servers on one host (tests,
# blue/green) would fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:  # noqa: ARG001  # gunicorn's hook signature
    """Give the workers a fresh directory to share Prometheus samples in (multi-process mode).

    It must be in the environment before a worker imports prometheus_client; workers inherit
    it from this master process.
    """
    directory = _settings.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="cacheservice-prom-")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server: Any, worker: Any) -> None:  # noqa: ARG001
    """A dead worker's live gauges must stop counting; its counters stay in the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001
    """Push the last second of metrics and close the Postgres pool while gevent still runs.

    Left to the garbage collector, the pool's finaliser runs after the hub is gone.
    """
    from cacheservice.services import EXTENSION_NAME

    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get(EXTENSION_NAME)
    if services is not None:
        services.shutdown()
