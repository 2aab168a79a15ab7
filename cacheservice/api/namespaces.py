"""``/namespaces``: per-namespace configuration (scope ``cache:admin``)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from cacheservice.api.parser import Blueprint
from cacheservice.api.render import json_response
from cacheservice.compression_training import train_namespace_dictionary
from cacheservice.errors import InvalidRequest, NotFound
from cacheservice.namespaces.config import NamespaceConfig
from cacheservice.namespaces.registry import StoredConfig
from cacheservice.services import services
from cacheservice.validation import NAMESPACE_RE, namespace_issue
from schemas.common import ErrorSchema, path_parameter
from schemas.namespaces import (
    DictionarySchema,
    NamespaceConfigSchema,
    NamespaceDeletedSchema,
    NamespaceListSchema,
    NamespaceSchema,
)

blp = Blueprint(
    "namespaces", __name__, url_prefix="/namespaces", description="Namespace configuration."
)


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_body(
    namespace: str, stored: StoredConfig | None, config: NamespaceConfig
) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "configured": stored is not None,
        "configuration": config.to_body(),
        "status": config.status,
        "created_at": _iso(stored.created_at) if stored else None,
        "updated_at": _iso(stored.updated_at) if stored else None,
    }


def checked_namespace(namespace: str) -> str:
    issue = namespace_issue(namespace)
    if issue is not None:
        raise InvalidRequest("Invalid namespace", namespace=namespace, issue=issue)
    return namespace


def _checked(config: NamespaceConfig) -> NamespaceConfig:
    config.check(encryption_available=services().keyring_available)
    return config


@blp.route("")
class Namespaces(MethodView):
    @blp.response(200, NamespaceListSchema)
    def get(self) -> Response:
        """List configured namespaces"""
        registry = services().namespaces
        return json_response(
            {"namespaces": [namespace_body(s.namespace, s, s.config) for s in registry.all()]}
        )


NAMESPACE_PARAMETER = path_parameter(
    "namespace", {"type": "string", "pattern": NAMESPACE_RE.pattern}, "The namespace."
)


@blp.route("/<string:namespace>", parameters=[NAMESPACE_PARAMETER])
class Namespace(MethodView):
    @blp.response(200, NamespaceSchema)
    def get(self, namespace: str) -> Response:
        """Get a namespace's configuration

        A namespace without a stored configuration answers with the defaults and
        `configured: false`.
        """
        registry = services().namespaces
        stored = registry.stored(checked_namespace(namespace))
        return json_response(namespace_body(namespace, stored, registry.config(namespace)))

    @blp.arguments(NamespaceConfigSchema())
    @blp.response(200, NamespaceSchema, description="Replaced.")
    @blp.alt_response(201, schema=NamespaceSchema, description="Created.")
    @blp.alt_response(400, schema=ErrorSchema, description="Invalid, or encryption without keys.")
    def put(self, body: dict[str, Any], namespace: str) -> Response:
        """Set a namespace's whole configuration (fields left out take the defaults)

        Every web process applies it within seconds. Entries already stored stay readable:
        each records how it was compressed and encrypted.
        """
        registry = services().namespaces
        config = _checked(registry.defaults.merged(body))
        stored = registry.put(checked_namespace(namespace), config)
        return json_response(
            namespace_body(namespace, stored, stored.config), status=201 if stored.created else 200
        )

    @blp.arguments(NamespaceConfigSchema())
    @blp.response(200, NamespaceSchema)
    def patch(self, body: dict[str, Any], namespace: str) -> Response:
        """Change some fields of a namespace's configuration"""
        found = services()
        stored = found.namespaces.patch(
            checked_namespace(namespace), body, encryption_available=found.keyring_available
        )
        return json_response(namespace_body(namespace, stored, stored.config))

    @blp.response(200, NamespaceDeletedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No stored configuration.")
    def delete(self, namespace: str) -> Response:
        """Delete a namespace's configuration (the defaults apply again; entries stay)"""
        if not services().namespaces.delete(checked_namespace(namespace)):
            raise NotFound("Namespace has no stored configuration", namespace=namespace)
        return json_response({"namespace": namespace, "deleted": True})


@blp.route("/<string:namespace>/dictionary", parameters=[NAMESPACE_PARAMETER])
class NamespaceDictionary(MethodView):
    @blp.response(201, DictionarySchema)
    @blp.alt_response(400, schema=ErrorSchema, description="Too few values to train on.")
    def post(self, namespace: str) -> Response:
        """Train a zstd compression dictionary from a sample of the namespace's values

        New writes use it when the namespace's compression is zstd with `dictionary: true`;
        entries written with an older dictionary stay readable (dictionaries are kept).
        """
        found = services()
        result = train_namespace_dictionary(found, checked_namespace(namespace))
        return json_response(result, status=201)
