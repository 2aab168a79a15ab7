"""OpenAPI additions: the bearer security scheme, and each operation's scope from ``ROUTES``."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin

from cacheservice.api.access import route_access

SECURITY_SCHEME = "bearerAuth"
BEARER_JWT = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT whose space-separated `scope` claim grants the operation's scope.",
}


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
