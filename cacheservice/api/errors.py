"""One place that turns every failure into the contract's error envelope.

Domain errors carry their own code; framework errors (webargs validation, unknown route,
wrong method, oversized body, unhandled exceptions) are mapped here; Redis being unreachable
is a 503. A 500 never shows a trace: it is logged with the request id instead.
"""

from __future__ import annotations

import logging
from typing import Any

import flask_smorest
import psycopg
import psycopg_pool
import redis
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from cacheservice.api.render import json_response
from cacheservice.errors import (
    InvalidKey,
    RateLimitExceeded,
    ServiceError,
    ServiceUnavailable,
    Unauthorized,
)
from cacheservice.store.ratelimit import RateLimited
from cacheservice.timefmt import format_ms
from schemas.common import ErrorSchema

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: ("invalid_request", "Invalid request"),
    404: ("not_found", "No such resource"),
    405: ("method_not_allowed", "Method not allowed on this resource"),
    413: ("payload_too_large", "Request body is too large"),
    500: ("internal_error", "Internal server error"),
}


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> Response:
    return json_response(error.to_body(), status=error.status, headers=headers)


def _validation_details(messages: Any) -> dict[str, Any]:
    """Webargs nests messages by location (json, query, ...); flatten to fields."""
    details: dict[str, Any] = {}
    if isinstance(messages, dict):
        for location_messages in messages.values():
            if isinstance(location_messages, dict):
                details.update(location_messages)
            else:
                details.setdefault("_schema", location_messages)
    return details


def unauthorized_response(error: Unauthorized) -> Response:
    challenge = 'Bearer realm="cacheservice"'
    if "reason" in error.details:
        challenge += ', error="invalid_token"'
    return error_response(error, headers={"WWW-Authenticate": challenge})


def rate_limited_response(limited: RateLimited) -> Response:
    outcome = limited.outcome
    reset_seconds = -(-outcome.reset_ms // 1000)
    error = RateLimitExceeded(
        limit=outcome.limit,
        reset_time=format_ms(outcome.reset_ms) or "",
        retry_after=max(1, -(-outcome.retry_after_ms // 1000)),
    )
    headers = {
        "Retry-After": str(error.retry_after),
        "X-RateLimit-Limit": str(outcome.limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset_seconds),
    }
    return error_response(error, headers=headers)


def http_error_response(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        original = getattr(error, "original_exception", None)
        log.error(
            "unhandled error on %s %s", request.method, request.path, exc_info=original or error
        )
    code, message = HTTP_CODES.get(status, (error.name.lower().replace(" ", "_"), error.name))
    details: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    if status == 400 and "messages" in data:
        details = _validation_details(data["messages"])
        message = "Request validation failed"
    elif status == 405:
        details = {
            "method": request.method,
            "allowed": sorted(getattr(error, "valid_methods", None) or []),
        }
    elif status == 413:
        details = {"max_bytes": request.max_content_length}
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return json_response({"error": code, "message": message, "details": details}, status, headers)


# Replies with which Redis says it cannot serve now (out of memory, a replica after a failover,
# a slot migrating; a busy script, failing persistence, a master link down): the store is
# unavailable, not a bug. redis-py turns the first ones into classes, the rest keep the code.
UNAVAILABLE_ERRORS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # CLUSTERDOWN: a master failed, its replica not yet up.
)
UNAVAILABLE_REPLIES = ("BUSY", "MISCONF", "MASTERDOWN")


def _store_unavailable(error: redis.RedisError) -> bool:
    if not isinstance(error, redis.ResponseError):
        return True  # Connection errors and timeouts.
    return isinstance(error, UNAVAILABLE_ERRORS) or str(error).startswith(UNAVAILABLE_REPLIES)


def redis_error_response(error: redis.RedisError) -> Response:
    if not _store_unavailable(error):
        return http_error_response(_internal_error(error))
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        # Reads refuse too: a GET also writes its hit count. Told apart from an outage so an
        # operator looks at maxmemory and the eviction policy, not at the network.
        log.warning("redis out of memory: %s", error)
        unavailable = ServiceUnavailable(
            "Redis is out of memory", store="redis", reason="out_of_memory"
        )
        return error_response(unavailable)
    log.warning("redis unavailable: %s", error)
    return error_response(ServiceUnavailable("Redis is unavailable", store="redis"))


def _internal_error(error: Exception) -> HTTPException:
    from werkzeug.exceptions import InternalServerError

    return InternalServerError(original_exception=error)


def reject_invalid_utf8_path() -> Response | None:
    """Paths are bytes; a key whose bytes are not UTF-8 is refused rather than mangled."""
    raw = request.environ.get("PATH_INFO", "")
    try:
        raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return error_response(InvalidKey(key=request.path, issue="Path is not valid UTF-8"))
    return None


class Api(flask_smorest.Api):  # type: ignore[misc]  # flask-smorest is untyped
    """flask-smorest's Api with the contract's error envelope instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return http_error_response(error)


def database_error_response(error: Exception) -> Response:
    log.warning("postgres unavailable: %s", error)
    return error_response(ServiceUnavailable("Postgres is unavailable", store="postgres"))


def slot_not_covered_response(error: redis.exceptions.SlotNotCoveredError) -> Response:
    # The cluster client found no node for a slot (a failover under way): unavailable.
    log.warning("redis unavailable: %s", error)
    return error_response(ServiceUnavailable("Redis is unavailable", store="redis"))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(psycopg.OperationalError, database_error_response)
    app.register_error_handler(psycopg_pool.PoolTimeout, database_error_response)
    app.register_error_handler(Unauthorized, unauthorized_response)
    app.register_error_handler(RateLimited, rate_limited_response)
    app.register_error_handler(ServiceError, error_response)
    app.register_error_handler(redis.RedisError, redis_error_response)
    app.register_error_handler(redis.exceptions.SlotNotCoveredError, slot_not_covered_response)
    app.before_request(reject_invalid_utf8_path)
