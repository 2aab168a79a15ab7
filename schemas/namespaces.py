"""Shapes of ``/namespaces`` (namespace configuration, ``cache_configurations``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from cacheservice.namespaces.config import ALGORITHMS, STATUSES
from cacheservice.validation import MAX_TTL_SECONDS
from schemas.common import StrictBoolean, StrictInteger

MAX_VALUE_BYTES_LIMIT = 512 * 1024 * 1024


class CompressionSchema(Schema):
    algorithm = fields.String(validate=validate.OneOf(ALGORITHMS))
    level = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=-(2**31), max=2**31 - 1),
        metadata={"description": "gzip 1-9, lz4 0-16, zstd 1-22"},
    )
    # Bounded like max_value_bytes: a larger threshold means the same ("never compress"), and
    # an unbounded integer overflowed on its way into Postgres (a 500 found by schemathesis).
    min_bytes = StrictInteger(validate=validate.Range(min=0, max=MAX_VALUE_BYTES_LIMIT))
    dictionary = StrictBoolean(metadata={"description": "Use the trained zstd dictionary."})


class EncryptionSchema(Schema):
    enabled = StrictBoolean(required=True)


class NamespaceConfigSchema(Schema):
    """A namespace configuration; fields left out take their defaults (PUT) or stay (PATCH)."""

    default_ttl = StrictInteger(validate=validate.Range(min=1, max=MAX_TTL_SECONDS))
    max_ttl = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_TTL_SECONDS))
    allow_no_expiry = StrictBoolean()
    max_value_bytes = StrictInteger(validate=validate.Range(min=1, max=MAX_VALUE_BYTES_LIMIT))
    refresh_ttl_on_access = StrictBoolean(metadata={"description": "Sliding expiry on reads."})
    compression = fields.Nested(CompressionSchema)
    encryption = fields.Nested(EncryptionSchema)
    status = fields.String(validate=validate.OneOf(STATUSES))


class CompressionOutSchema(Schema):
    algorithm = fields.String()
    level = fields.Integer(allow_none=True)
    min_bytes = fields.Integer()
    dictionary = fields.Boolean()


class ConfigurationOutSchema(Schema):
    default_ttl = fields.Integer()
    max_ttl = fields.Integer(allow_none=True)
    allow_no_expiry = fields.Boolean()
    max_value_bytes = fields.Integer()
    refresh_ttl_on_access = fields.Boolean()
    compression = fields.Nested(CompressionOutSchema)
    encryption = fields.Nested(EncryptionSchema)
    status = fields.String()


class NamespaceSchema(Schema):
    namespace = fields.String()
    configured = fields.Boolean(metadata={"description": "false: no stored row, defaults apply"})
    configuration = fields.Nested(ConfigurationOutSchema)
    status = fields.String()
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class NamespaceListSchema(Schema):
    namespaces = fields.List(fields.Nested(NamespaceSchema))


class NamespaceDeletedSchema(Schema):
    namespace = fields.String()
    deleted = fields.Boolean()


class DictionarySchema(Schema):
    namespace = fields.String()
    dictionary_id = fields.Integer()
    samples = fields.Integer()
    size_bytes = fields.Integer()
    created_at = fields.DateTime()
