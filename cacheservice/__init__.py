"""Cache Service: an HTTP cache, session store and invalidation service on Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from cacheservice.config import Settings


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the WSGI application.

    ``config`` is a ``Settings`` object, or a mapping of setting names overriding the ones read
    from the environment (tests use this), or ``None`` for the environment alone.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    from cacheservice.api import init_api
    from cacheservice.cli import register_cli
    from cacheservice.services import Services

    if isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_env().with_overrides(config or {})
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Keys may start with "/" (``/cache/%2Fx``): merging "//" would redirect to another key.
    app.url_map.merge_slashes = False
    if settings.proxy_count:
        # Anonymous callers are limited by address: take it from the proxies' X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count)  # type: ignore[method-assign]
    Services.init_app(app, settings)
    init_api(app)
    register_cli(app)
    return app
