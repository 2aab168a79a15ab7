"""Fields and schemas shared by several resources."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from cacheservice.validation import (
    DEFAULT_NAMESPACE,
    KEY_PATTERN,
    MAX_KEY_BYTES,
    MAX_TAGS,
    MAX_TTL_SECONDS,
    NAMESPACE_RE,
    TAG_RE,
    json_text_issue,
)

# How the OpenAPI document describes a key. The service checks keys itself (``key_issue``,
# answering ``invalid_key``), so these are documentation only; the byte limit cannot be said
# in JSON Schema, whose lengths count characters: 250 characters is the loosest bound.
KEY_DOC: dict[str, Any] = {
    "minLength": 1,
    "maxLength": MAX_KEY_BYTES,
    "pattern": KEY_PATTERN,
    "description": f"1-{MAX_KEY_BYTES} bytes of UTF-8, no whitespace or control characters.",
}


class StrictInteger(fields.Integer):
    """An integer that refuses booleans and numeric strings (JSON ``true`` is not 1)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """A JSON boolean; strings such as ``"yes"`` are refused in bodies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        # ``1 in {True}`` holds in Python, so the truthy set alone lets 1 and 0 through.
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return bool(super()._deserialize(value, attr, data, **kwargs))


class FullMatch(validate.Regexp):
    """``validate.Regexp`` uses ``re.match``, whose ``$`` also matches before a final newline."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def namespace_field(**kwargs: Any) -> fields.String:
    return fields.String(
        load_default=DEFAULT_NAMESPACE,
        validate=FullMatch(NAMESPACE_RE, error="Namespace must match {regex}."),
        metadata={"description": "Cache namespace; `default` when omitted.", "example": "users"},
        **kwargs,
    )


def tag_list_field(min_items: int = 0, **kwargs: Any) -> fields.List[str]:
    return fields.List(
        fields.String(validate=FullMatch(TAG_RE, error="Tag must match {regex}.")),
        validate=validate.Length(min=min_items, max=MAX_TAGS),
        metadata={"description": f"Up to {MAX_TAGS} tags.", "example": ["user", "profile"]},
        **kwargs,
    )


def ttl_field(**kwargs: Any) -> StrictInteger:
    return StrictInteger(
        validate=validate.Range(min=1, max=MAX_TTL_SECONDS),
        metadata={"description": "Relative time to live in seconds.", "example": 3600},
        **kwargs,
    )


def exclusive(data: dict[str, Any], *names: str) -> None:
    given = [name for name in names if data.get(name) is not None]
    if len(given) > 1:
        raise ValidationError(f"Give at most one of {', '.join(names)}.", given[-1])


def path_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """The documentation of a path parameter, replacing the bare string flask-smorest infers."""
    return {
        "in": "path",
        "name": name,
        "required": True,
        "description": description,
        "schema": schema,
    }


def storable_json(value: Any) -> None:
    """A JSON value Postgres ``jsonb`` can hold (no NUL characters, no lone surrogates)."""
    issue = json_text_issue(value)
    if issue is not None:
        raise ValidationError(f"Not storable: {issue}.")


def storable_json_object(**kwargs: Any) -> fields.Dict:
    return fields.Dict(validate=storable_json, **kwargs)


class ErrorSchema(Schema):
    """The error envelope every failure uses."""

    error = fields.String(required=True, metadata={"example": "invalid_key"})
    message = fields.String(required=True, metadata={"example": "Invalid cache key format"})
    details = fields.Dict(required=True)


class NamespaceQuerySchema(Schema):
    namespace = namespace_field()
