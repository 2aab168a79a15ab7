"""``/metrics``: Prometheus text exposition of every gunicorn worker's metrics."""

from __future__ import annotations

from flask import Blueprint, Response

from cacheservice.metrics.prometheus import exposition
from cacheservice.services import services

blp = Blueprint("monitoring", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    body, content_type = exposition(services().settings.prometheus_multiproc_dir)
    return Response(body, content_type=content_type)
