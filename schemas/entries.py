"""Request and response shapes of the entry endpoints (seed endpoints 1-3)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate, validates_schema

from cacheservice.validation import MAX_TTL_SECONDS
from schemas.common import (
    NamespaceQuerySchema,
    StrictBoolean,
    exclusive,
    namespace_field,
    tag_list_field,
    ttl_field,
)

VALUE_TYPES = ("json", "string", "binary")


class GetEntryQuerySchema(NamespaceQuerySchema):
    include_metadata = fields.Boolean(load_default=False)


class EntryFieldsSchema(Schema):
    """The fields of one entry to write, shared by ``POST /cache`` and batch-set items."""

    key = fields.String(
        required=True,
        metadata={
            "description": "1-250 bytes of UTF-8, no whitespace or control characters.",
            "example": "user:550e8400-e29b-41d4-a716-446655440000",
        },
    )
    value = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "Any JSON value; a string for `string`, base64 for `binary`."},
    )
    ttl = ttl_field()
    expires_at = fields.AwareDateTime(
        format="iso",
        metadata={"description": "Absolute expiry (RFC 3339); exclusive with `ttl`."},
    )
    tags = tag_list_field(load_default=list)
    type = fields.String(load_default="json", validate=validate.OneOf(VALUE_TYPES))

    @validates_schema
    def _ttl_or_expiry(self, data: dict[str, Any], **_: Any) -> None:
        exclusive(data, "ttl", "expires_at")


class SetEntryBodySchema(EntryFieldsSchema):
    namespace = namespace_field()
    overwrite = StrictBoolean(load_default=True)


class EntrySchema(Schema):
    """An entry as ``GET /cache/{key}`` returns it; metadata fields need ``include_metadata``."""

    key = fields.String(required=True)
    value = fields.Raw(required=True, allow_none=True)
    namespace = fields.String(required=True)
    type = fields.String(validate=validate.OneOf(VALUE_TYPES))
    ttl = fields.Integer(allow_none=True, metadata={"description": "Seconds as set; null = none."})
    ttl_remaining = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    hit_count = fields.Integer(metadata={"description": "Includes this read."})
    last_accessed = fields.DateTime(allow_none=True)
    tags = fields.List(fields.String())
    size_bytes = fields.Integer()
    stored_bytes = fields.Integer()
    compression = fields.String()


class SetEntryResultSchema(Schema):
    key = fields.String(required=True)
    namespace = fields.String(required=True)
    ttl = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=MAX_TTL_SECONDS))
    created = fields.Boolean(required=True, metadata={"description": "false when replaced."})
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True)


class DeleteEntryResultSchema(Schema):
    key = fields.String(required=True)
    namespace = fields.String(required=True)
    deleted = fields.Boolean(required=True)
    deleted_at = fields.DateTime(required=True)
