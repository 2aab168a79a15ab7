"""Shapes of ``GET /cache/statistics`` and ``GET /cache/health`` (seed endpoints 7-8)."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from cacheservice.timefmt import EPOCH
from cacheservice.validation import NAMESPACE_RE
from schemas.common import FullMatch


class StatisticsQuerySchema(Schema):
    namespace = fields.String(
        validate=FullMatch(NAMESPACE_RE, error="Namespace must match {regex}."),
        metadata={"description": "Only this namespace; every namespace when omitted."},
    )
    date_from = fields.AwareDateTime(
        format="iso",
        metadata={"description": "Window start (default: 24 hours before its end)."},
    )
    date_to = fields.AwareDateTime(
        format="iso",
        metadata={"description": "Window end (default: now)."},
    )
    top = fields.Integer(load_default=10, validate=validate.Range(min=0, max=1000))

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("date_from"), data.get("date_to")
        if start is not None and end is not None and start > end:
            raise ValidationError("date_from must not be after date_to.", "date_from")

    @post_load
    def _from_the_epoch(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # Nothing was counted before 1970, and the window is written back in RFC 3339, which
        # needs four-digit years ("0171-..." came back as "171-..."): earlier dates read as
        # the epoch, which leaves every count the same.
        for name in ("date_from", "date_to"):
            if data.get(name) is not None and data[name] < EPOCH:
                data[name] = EPOCH
        return data


class OverviewSchema(Schema):
    total_keys = fields.Integer()
    total_memory_mb = fields.Float(allow_none=True, metadata={"description": "Estimate."})
    memory_sampled_at = fields.DateTime(allow_none=True)
    hit_rate = fields.Float()
    miss_rate = fields.Float()
    average_ttl = fields.Integer(allow_none=True)
    hits = fields.Integer()
    misses = fields.Integer()
    sets = fields.Integer()
    deletes = fields.Integer()
    compression_ratio = fields.Float(allow_none=True)


class NamespaceStatsSchema(Schema):
    keys = fields.Integer()
    memory_mb = fields.Float(allow_none=True)
    memory_sampled_at = fields.DateTime(allow_none=True)
    hit_rate = fields.Float()
    miss_rate = fields.Float()
    hits = fields.Integer()
    misses = fields.Integer()
    sets = fields.Integer()
    deletes = fields.Integer()


class PerformanceSchema(Schema):
    average_get_time = fields.String(allow_none=True, metadata={"example": "1.2ms"})
    average_get_time_ms = fields.Float(allow_none=True)
    average_set_time = fields.String(allow_none=True)
    average_set_time_ms = fields.Float(allow_none=True)
    average_delete_time = fields.String(allow_none=True)
    average_delete_time_ms = fields.Float(allow_none=True)
    p95_get_time = fields.String(allow_none=True)
    p95_get_time_ms = fields.Float(allow_none=True)
    p99_get_time = fields.String(allow_none=True)
    p99_get_time_ms = fields.Float(allow_none=True)


class TopKeySchema(Schema):
    key = fields.String()
    namespace = fields.String()
    hit_count = fields.Integer()
    last_accessed = fields.DateTime(allow_none=True)


class WindowSchema(Schema):
    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()


class StatisticsSchema(Schema):
    overview = fields.Nested(OverviewSchema)
    namespace_stats = fields.Dict(keys=fields.String(), values=fields.Nested(NamespaceStatsSchema))
    performance = fields.Nested(PerformanceSchema)
    top_keys = fields.List(fields.Nested(TopKeySchema))
    window = fields.Nested(WindowSchema)
    generated_at = fields.DateTime()


class HealthSchema(Schema):
    status = fields.String(validate=validate.OneOf(("healthy", "degraded", "unhealthy")))
    version = fields.String()
    uptime = fields.String(allow_none=True, metadata={"description": "Successful probes, 24 h."})
    uptime_probes = fields.Integer()
    uptime_seconds = fields.Float()
    memory_usage = fields.Dict(allow_none=True)
    connections = fields.Dict(allow_none=True)
    performance = fields.Dict(allow_none=True)
    redis = fields.Dict()
    postgres = fields.Dict()
    workers = fields.Dict()
    last_updated = fields.DateTime()
