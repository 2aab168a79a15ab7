"""Request and response shapes of the entry endpoints (seed endpoints 1-3)."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from cacheservice.validation import MAX_TAGS, MAX_TTL_SECONDS, TAG_RE
from schemas.common import (
    KEY_DOC,
    FullMatch,
    NamespaceQuerySchema,
    StrictBoolean,
    StrictInteger,
    exclusive,
    namespace_field,
    tag_list_field,
    ttl_field,
)

VALUE_TYPES = ("json", "string", "binary", "list", "set")
PATCH_OPERATIONS = (
    "ttl",
    "expires_at",
    "extend_by",
    "persist",
    "tags",
    "append",
    "prepend",
    "add",
    "remove",
)
MAX_PATCH_ELEMENTS = 1000


class GetEntryQuerySchema(NamespaceQuerySchema):
    include_metadata = fields.Boolean(load_default=False)


class EntryFieldsSchema(Schema):
    """The fields of one entry to write, shared by ``POST /cache`` and batch-set items."""

    # Read by ``cacheservice.api.openapi.SchemaExtrasPlugin``: an integer ``ttl`` and
    # ``expires_at`` exclude each other (``ttl: null`` beside ``expires_at`` is accepted).
    OPENAPI_EXTRAS: ClassVar[dict[str, Any]] = {
        "not": {"required": ["ttl", "expires_at"], "properties": {"ttl": {"type": "integer"}}}
    }

    key = fields.String(
        required=True,
        metadata={**KEY_DOC, "example": "user:550e8400-e29b-41d4-a716-446655440000"},
    )
    value = fields.Raw(
        required=True,
        allow_none=True,
        metadata={
            "description": "Any JSON value; a string for `string`, base64 for `binary`, an "
            "array for `list`, an array of strings for `set`."
        },
    )
    ttl = ttl_field(allow_none=True)
    expires_at = fields.AwareDateTime(
        format="iso",
        metadata={"description": "Absolute expiry (RFC 3339); exclusive with `ttl`."},
    )
    tags = tag_list_field(load_default=list)
    type = fields.String(load_default="json", validate=validate.OneOf(VALUE_TYPES))
    sliding = StrictBoolean(
        load_default=False,
        metadata={"description": "Every read extends the expiry by `ttl` (sliding expiry)."},
    )

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
    sliding = fields.Boolean(metadata={"description": "Reads extend the expiry by `ttl`."})
    length = fields.Integer(metadata={"description": "Elements of a list or set entry."})


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


class EntryMetadataSchema(Schema):
    """An entry's metadata without its value (the answer to PATCH)."""

    key = fields.String(required=True)
    namespace = fields.String(required=True)
    type = fields.String(validate=validate.OneOf(VALUE_TYPES))
    ttl = fields.Integer(allow_none=True)
    ttl_remaining = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    hit_count = fields.Integer()
    last_accessed = fields.DateTime(allow_none=True)
    tags = fields.List(fields.String())
    size_bytes = fields.Integer()
    stored_bytes = fields.Integer()
    compression = fields.String()
    sliding = fields.Boolean()
    length = fields.Integer(metadata={"description": "Elements of a list or set entry."})


def _elements(description: str) -> fields.List[Any]:
    return fields.List(
        fields.Raw(allow_none=True),
        validate=validate.Length(min=1, max=MAX_PATCH_ELEMENTS),
        metadata={"description": description},
    )


class PatchEntryBodySchema(Schema):
    """Exactly one change."""

    # Read by ``cacheservice.api.openapi.SchemaExtrasPlugin``: "exactly one" in JSON Schema.
    OPENAPI_EXTRAS: ClassVar[dict[str, Any]] = {"minProperties": 1, "maxProperties": 1}

    ttl = ttl_field()
    expires_at = fields.AwareDateTime(format="iso")
    extend_by = StrictInteger(validate=validate.Range(min=1, max=MAX_TTL_SECONDS))
    persist = StrictBoolean(validate=validate.Equal(True), metadata={"description": "Only true."})
    tags = tag_list_field()
    append = _elements("List entries: elements added at the end.")
    prepend = _elements("List entries: elements added at the start (in the order given).")
    add = _elements("Set entries: strings added.")
    remove = _elements("Set entries: strings removed.")

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_: Any) -> None:
        given = [name for name in PATCH_OPERATIONS if name in data]
        if len(given) != 1:
            raise ValidationError(f"Give exactly one of {', '.join(PATCH_OPERATIONS)}.", "_schema")


class PutEntryQuerySchema(NamespaceQuerySchema):
    # A query string carries text, so the TTL is parsed from digits (a body's must be a number).
    ttl = fields.Integer(
        strict=False,
        validate=validate.Range(min=1, max=MAX_TTL_SECONDS),
        metadata={"description": "Relative time to live in seconds."},
    )
    tags = DelimitedList(
        fields.String(validate=FullMatch(TAG_RE, error="Tag must match {regex}.")),
        load_default=list,
        validate=validate.Length(max=MAX_TAGS),
        metadata={"description": "Comma-separated tags."},
    )
    overwrite = fields.Boolean(load_default=True)
    sliding = fields.Boolean(load_default=False)
