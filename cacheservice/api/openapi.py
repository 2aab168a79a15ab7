"""OpenAPI additions: the bearer security scheme, and each operation's scope from ``ROUTES``."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin

from cacheservice.api.access import route_access
from schemas.batch import ItemsFailingAlone

SECURITY_SCHEME = "bearerAuth"
BEARER_JWT = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT whose space-separated `scope` claim grants the operation's scope.",
}


def items_failing_alone_doc(
    converter: Any,  # noqa: ARG001  # apispec binds attribute functions to its converter
    field: Any,
    ret: dict[str, Any],
    **_: Any,
) -> dict[str, Any]:
    """Batch-set items are each validated alone: an invalid one is answered in place (200,
    ``created: false`` with an ``error``), not with a 400. So the document says "an entry, or
    anything else", keeping the entry's schema visible, instead of promising a 400."""
    if not isinstance(field, ItemsFailingAlone) or "items" not in ret:
        return {}
    anything = {"description": "Any other item fails alone, with an `error` in its result."}
    return {"items": {"anyOf": [ret["items"], anything]}}


class SchemaExtrasPlugin(BasePlugin):
    """Adds a schema's ``OPENAPI_EXTRAS`` (``minProperties`` ...) to its component.

    Marshmallow says "exactly one of these fields" in a validator, which apispec cannot see;
    the class attribute states the same rule in JSON Schema for clients and fuzzers.
    """

    def schema_helper(
        self,
        name: str,  # noqa: ARG002  # apispec's hook signature
        definition: dict[str, Any],  # noqa: ARG002
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        schema = kwargs.get("schema")
        extras = getattr(schema, "OPENAPI_EXTRAS", None)
        return dict(extras) if extras else None


class AccessDocsPlugin(BasePlugin):
    """Marks every operation public or bearer-protected, with its ``x-required-scope``."""

    def operation_helper(
        self,
        path: str | None = None,  # noqa: ARG002  # apispec's hook signature
        operations: dict[str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        for method, operation in operations.items():
            access = route_access(rule.endpoint, method.upper())
            if access is None:
                continue
            if access.scope is None:
                operation["security"] = []
                continue
            operation["security"] = [{SECURITY_SCHEME: []}]
            operation["x-required-scope"] = access.scope
            operation["x-rate-limit-category"] = access.category
            scope_note = f"Requires scope `{access.scope}`"
            if access.namespace_from:
                scope_note += f" (or `{access.scope}:<namespace>`)"
            operation["description"] = "\n\n".join(
                part for part in (operation.get("description"), scope_note + ".") if part
            )
