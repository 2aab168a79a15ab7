"""``/cache/statistics``: hit rates, latency and memory per namespace (seed endpoint 7)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from cacheservice.api.parser import Blueprint
from cacheservice.api.render import json_response
from cacheservice.metrics.statistics import Window, statistics
from cacheservice.services import services
from cacheservice.timefmt import now_ms
from schemas.common import ErrorSchema
from schemas.stats import StatisticsQuerySchema, StatisticsSchema

blp = Blueprint("stats", __name__, url_prefix="/cache", description="Cache statistics.")


@blp.route("/statistics")
class Statistics(MethodView):
    @blp.arguments(StatisticsQuerySchema(), location="query")
    @blp.response(200, StatisticsSchema)
    @blp.alt_response(503, schema=ErrorSchema, description="Redis or Postgres is unavailable.")
    def get(self, query: dict[str, Any]) -> Response:
        """Get cache statistics

        Counts are exact over the window (default: the last 24 hours), flushed to Postgres or
        not yet (up to one second of another web process's counts may still be in its memory).
        Memory figures are estimates from a periodic sample; `memory_sampled_at` says when.
        `top_keys` come from the entries flushed to Postgres.
        """
        found = services()
        # This process's own counts of the last second join Redis first, so a caller that reads
        # its statistics right after its requests sees every one of them.
        found.metrics.push()
        body = statistics(
            client=found.redis,
            keyspace=found.keyspace,
            pending=found.pending,
            database=found.database,
            queries=found.queries,
            window=Window.ending_now(query.get("date_from"), query.get("date_to")),
            namespace=query.get("namespace"),
            top=query["top"],
            now_ms=now_ms(),
        )
        return json_response(body)
