"""``/cache/health``: the service's own view of Redis, Postgres and the workers (endpoint 8)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView

from cacheservice.api.parser import Blueprint
from cacheservice.api.render import json_response
from cacheservice.metrics.health import HealthSources, health_report
from cacheservice.services import services
from schemas.stats import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/cache", description="Service health.")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema, description="Healthy or degraded.")
    @blp.alt_response(503, schema=HealthSchema, description="Unhealthy: Redis is down.")
    def get(self) -> Response:
        """Get cache health

        Public. `degraded` when Postgres or the workers are down or Redis may evict index keys
        (an `allkeys-*` policy); `unhealthy` (503) when Redis is down. `uptime` is the share of
        successful periodic health probes over the last 24 hours.
        """
        status, body = health_report(HealthSources.of(services()))
        return json_response(body, status=status)
