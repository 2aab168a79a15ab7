"""Domain errors: each carries the contract's error code, HTTP status and details.

One handler in ``api/errors.py`` turns any of them into the error envelope
``{"error", "message", "details"}``.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error that becomes a contract error body."""

    status = 500
    code = "internal_error"
    message = "Internal server error"

    # ``message`` is positional-only so that details may use any name, "message" included.
    def __init__(self, message: str | None = None, /, **details: Any) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"
    message = "Invalid request"


class InvalidKey(ServiceError):
    status = 400
    code = "invalid_key"
    message = "Invalid cache key format"


class KeyNotFound(ServiceError):
    status = 404
    code = "key_not_found"
    message = "Cache key not found"


class KeyExists(ServiceError):
    status = 409
    code = "key_exists"
    message = "Cache key already exists"


class ValueTooLarge(ServiceError):
    status = 413
    code = "value_too_large"
    message = "Value is larger than the namespace allows"


class ServiceUnavailable(ServiceError):
    status = 503
    code = "service_unavailable"
    message = "A store the service needs is unavailable"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"
    message = "A valid bearer token is required"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"
    message = "The token's scopes do not allow this request"


class RateLimitExceeded(ServiceError):
    status = 429
    code = "rate_limit_exceeded"
    message = "Cache rate limit exceeded"

    def __init__(self, limit: int, reset_time: str, retry_after: int) -> None:
        super().__init__(limit=limit, remaining=0, reset_time=reset_time)
        self.retry_after = retry_after


class NotFound(ServiceError):
    status = 404
    code = "not_found"
    message = "No such resource"
