"""HTTP API: one blueprint per resource, documented at ``/openapi.json`` and ``/docs``."""

from __future__ import annotations

from flask import Flask

from cacheservice.api import (
    batch,
    entries,
    health,
    invalidation,
    monitoring,
    namespaces,
    sessions,
    stats,
)
from cacheservice.api.access import init_access
from cacheservice.api.errors import Api, register_error_handlers
from cacheservice.api.observability import init_observability
from cacheservice.api.openapi import (
    BEARER_JWT,
    SECURITY_SCHEME,
    AccessDocsPlugin,
    SchemaExtrasPlugin,
    items_failing_alone_doc,
)

OPENAPI_SETTINGS = {
    "API_TITLE": "Cache Service",
    "API_VERSION": "0.1.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
}


def init_api(app: Flask) -> Api:
    for name, value in OPENAPI_SETTINGS.items():
        app.config.setdefault(name, value)
    api = Api(app, spec_kwargs={"extra_plugins": [AccessDocsPlugin(), SchemaExtrasPlugin()]})
    api.spec.components.security_scheme(SECURITY_SCHEME, BEARER_JWT)
    api.ma_plugin.converter.add_attribute_function(items_failing_alone_doc)
    # Static routes (/cache/batch ...) are matched before the /cache/<path:key> converter.
    blueprints = (
        batch.blp,
        invalidation.blp,
        stats.blp,
        health.blp,
        entries.blp,
        namespaces.blp,
        sessions.blp,
        sessions.users_blp,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(monitoring.blp)
    register_error_handlers(app)
    init_access(app)
    init_observability(app)
    return api
