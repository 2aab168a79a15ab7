"""Shapes of ``/sessions`` and ``/users/{user_id}/sessions`` (``cache_sessions``)."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from cacheservice.validation import MAX_TTL_SECONDS
from schemas.common import StrictInteger, storable_json_object

DEFAULT_SESSION_TTL = 1800


def session_ttl(**kwargs: Any) -> StrictInteger:
    return StrictInteger(
        validate=validate.Range(min=1, max=MAX_TTL_SECONDS),
        metadata={"description": "Seconds of inactivity after which the session expires."},
        **kwargs,
    )


class CreateSessionSchema(Schema):
    user_id = fields.UUID(required=True)
    data = storable_json_object(
        required=True,
        metadata={"description": "Any JSON object (strings without NUL characters)."},
    )
    ttl = session_ttl(load_default=DEFAULT_SESSION_TTL)


class UpdateSessionSchema(Schema):
    # Read by ``cacheservice.api.openapi.SchemaExtrasPlugin``: "data, ttl or both".
    OPENAPI_EXTRAS: ClassVar[dict[str, Any]] = {"minProperties": 1}

    data = storable_json_object(
        metadata={"description": "Merged into the session's data (top level)."}
    )
    ttl = session_ttl()

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Give data, ttl or both.", "_schema")


class ReadSessionQuerySchema(Schema):
    touch = fields.Boolean(
        load_default=True, metadata={"description": "false: read without extending the expiry."}
    )


class SessionSchema(Schema):
    session_id = fields.String(required=True)
    user_id = fields.UUID(required=True)
    data = fields.Dict(required=True)
    ttl = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    last_accessed = fields.DateTime(required=True)


class UserSessionsSchema(Schema):
    user_id = fields.UUID()
    sessions = fields.List(fields.Nested(SessionSchema))
    total = fields.Integer()


class SessionDeletedSchema(Schema):
    session_id = fields.String()
    deleted = fields.Boolean()
    deleted_at = fields.DateTime()


class SessionsRevokedSchema(Schema):
    user_id = fields.UUID()
    revoked = fields.Integer(metadata={"description": "Live sessions that were revoked."})
    revoked_at = fields.DateTime()
