"""Per-request bookkeeping: request id, latency per operation and namespace, request logs.

The request id comes from ``X-Request-ID`` when it is a sane token, else it is generated; it is
echoed in the response and carried by every log line of the request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from cacheservice.metrics import prometheus
from cacheservice.metrics.recorder import SERVICE
from cacheservice.services import services
from cacheservice.sessions import redacted
from cacheservice.validation import DEFAULT_NAMESPACE, namespace_issue

log = logging.getLogger("cacheservice.requests")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# The operation whose latency histogram a route feeds (statistics report get/set/delete).
OPERATIONS = {
    ("entries.Entry", "GET"): "get",
    ("entries.Entry", "DELETE"): "delete",
    ("entries.Entries", "POST"): "set",
    ("batch.BatchGet", "POST"): "batch_get",
    ("batch.BatchSet", "POST"): "batch_set",
    ("invalidation.Invalidate", "POST"): "invalidate",
}


def start_request() -> None:
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _namespace() -> str:
    namespace = request.args.get("namespace")
    body = g.get("json_body")
    if namespace is None and isinstance(body, dict):
        namespace = body.get("namespace")
    if isinstance(namespace, str) and namespace_issue(namespace) is None:
        return namespace
    return DEFAULT_NAMESPACE


def logged_path() -> str:
    """The request path, with any session id cut short: ids are credentials."""
    session_id = (request.view_args or {}).get("session_id")
    if isinstance(session_id, str) and session_id:
        return request.path.replace(session_id, redacted(session_id))
    return request.path


def finish_request(response: Response) -> Response:
    started = g.get("started")
    if started is None:
        return response
    elapsed = time.perf_counter() - started
    response.headers["X-Request-ID"] = g.request_id
    endpoint = request.endpoint or "unmatched"
    metrics = services().metrics
    metrics.count(SERVICE, "requests")
    if response.status_code >= 500:
        metrics.count(SERVICE, "errors")
    operation = OPERATIONS.get((endpoint, request.method))
    if operation is not None and response.status_code < 500:
        metrics.observe(_namespace(), operation, elapsed * 1000)
    prometheus.observe_request(endpoint, request.method, response.status_code, elapsed)
    if services().settings.request_log:
        path = logged_path()
        log.info(
            "%s %s %s",
            request.method,
            path,
            response.status_code,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "remote_addr": request.remote_addr,
            },
        )
    return response


def init_observability(app: Flask) -> None:
    # Registered first, so the request id exists before access control or errors log.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)
    app.after_request(finish_request)
