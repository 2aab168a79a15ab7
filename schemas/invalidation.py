"""Request and response shapes of ``POST /cache/invalidate``."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, fields, validate

from schemas.batch import MAX_BATCH
from schemas.common import KEY_DOC, namespace_field, tag_list_field

MAX_LISTED_KEYS = 1000


class InvalidateBodySchema(Schema):
    # Read by ``cacheservice.api.openapi.SchemaExtrasPlugin``: ``match`` needs ``tags``.
    OPENAPI_EXTRAS: ClassVar[dict[str, Any]] = {
        "anyOf": [{"not": {"required": ["match"]}}, {"required": ["tags"]}]
    }

    namespace = namespace_field()
    tags = tag_list_field(min_items=1)
    match = fields.String(
        validate=validate.OneOf(("any", "all")),
        metadata={"description": "Entries carrying any (default) or all of `tags`."},
    )
    pattern = fields.String(
        validate=validate.Length(min=1, max=512),
        metadata={
            "description": "Redis-style glob over the namespace's keys.",
            "example": "user:*",
        },
    )
    keys = fields.List(
        fields.String(metadata=KEY_DOC), validate=validate.Length(min=1, max=MAX_BATCH)
    )


class InvalidateResultSchema(Schema):
    invalidated_keys = fields.List(
        fields.String(),
        required=True,
        metadata={"description": f"At most {MAX_LISTED_KEYS} of the invalidated keys."},
    )
    total_invalidated = fields.Integer(required=True, metadata={"description": "Always exact."})
    truncated = fields.Boolean(required=True)
    invalidated_at = fields.DateTime(required=True)
