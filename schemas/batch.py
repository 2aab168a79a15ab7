"""Request and response shapes of ``POST /cache/batch`` and ``POST /cache/batch-set``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from schemas.common import KEY_DOC, ErrorSchema, StrictBoolean, namespace_field
from schemas.entries import EntryFieldsSchema, EntrySchema

MAX_BATCH = 1000


@dataclass(frozen=True)
class RejectedItem:
    """A batch-set item that failed validation; it fails alone, the others are stored."""

    raw: Any
    messages: Mapping[str, Any] | list[Any] | str


class ItemsFailingAlone(fields.List[Any]):
    """A list whose invalid items become ``RejectedItem`` instead of failing the request.

    It documents as an ordinary array of the inner schema.
    """

    def _deserialize(
        self,
        value: Any,
        attr: str | None,  # noqa: ARG002  # the signature marshmallow calls
        data: Any,  # noqa: ARG002
        **kwargs: Any,
    ) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        # The length first: validating 1001 items only to refuse the list took ~40 ms.
        for validator in self.validators:
            if isinstance(validator, validate.Length):
                validator(value)
        items: list[Any] = []
        for raw in value:
            try:
                items.append(self.inner.deserialize(raw, **kwargs))
            except ValidationError as error:
                items.append(RejectedItem(raw, error.messages))
        return items


class BatchGetBodySchema(Schema):
    keys = fields.List(
        fields.String(metadata=KEY_DOC),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
        metadata={"description": "1-1000 keys; duplicates are collapsed."},
    )
    namespace = namespace_field()
    include_metadata = StrictBoolean(load_default=False)


class BatchGetResultSchema(Schema):
    entries = fields.List(fields.Nested(EntrySchema), required=True)
    missing_keys = fields.List(fields.String(), required=True)
    total_requested = fields.Integer(required=True)
    total_found = fields.Integer(required=True)


class BatchSetBodySchema(Schema):
    entries = ItemsFailingAlone(
        fields.Nested(EntryFieldsSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )
    namespace = namespace_field()
    overwrite = StrictBoolean(load_default=True)


class BatchSetItemResultSchema(Schema):
    key = fields.String(allow_none=True, required=True)
    created = fields.Boolean(required=True)
    created_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    error = fields.Nested(ErrorSchema, metadata={"description": "Present when the item failed."})


class BatchSetResultSchema(Schema):
    entries = fields.List(fields.Nested(BatchSetItemResultSchema), required=True)
    total_created = fields.Integer(required=True)
    total_updated = fields.Integer(required=True)
    total_failed = fields.Integer(required=True)
