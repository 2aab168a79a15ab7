"""Settings of the service: the only module that reads the environment.

Every setting has a ``CACHE_*`` (or, for Celery, ``CELERY_*``) variable; the README lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


class ConfigError(ValueError):
    """A variable holds a value the service cannot run with."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the web app and the workers are configured with."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/cacheservice"
    celery_broker_url: str = "redis://127.0.0.1:6379/1"
    # Redis timeouts are pinned so that a dead Redis turns into a 503 within about a second
    # instead of a hung worker (ARCHITECTURE invariant 4).
    redis_socket_timeout: float = 0.5
    redis_connect_timeout: float = 0.5
    redis_max_connections: int = 64
    # How many hash slots a namespace is spread over. Changing it on a live deployment
    # orphans existing entries, so it is fixed per deployment.
    namespace_buckets: int = 16
    default_ttl: int = 3600
    max_value_bytes: int = 1024 * 1024
    max_body_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 64
    max_batch_keys: int = 1000
    log_level: str = "INFO"
    # gunicorn (read by cacheservice/gunicorn_conf.py).
    web_bind: str = "127.0.0.1:8000"
    web_workers: int = 0  # 0 = one per CPU core
    web_worker_class: str = "gevent"
    web_worker_connections: int = 1000
    web_keepalive: int = 75
    web_timeout: int = 30
    web_max_requests: int = 200_000
    web_access_log: str | None = None
    web_forwarded_allow_ips: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("CACHE_REDIS_URL") or cls.redis_url,
            database_url=env.get("CACHE_DATABASE_URL") or cls.database_url,
            celery_broker_url=env.get("CELERY_BROKER_URL") or cls.celery_broker_url,
            redis_socket_timeout=_float(env, "CACHE_REDIS_SOCKET_TIMEOUT", 0.5),
            redis_connect_timeout=_float(env, "CACHE_REDIS_CONNECT_TIMEOUT", 0.5),
            redis_max_connections=_int(env, "CACHE_REDIS_MAX_CONNECTIONS", 64, minimum=1),
            namespace_buckets=_int(env, "CACHE_NAMESPACE_BUCKETS", 16, minimum=1),
            default_ttl=_int(env, "CACHE_DEFAULT_TTL", 3600, minimum=1),
            max_value_bytes=_int(env, "CACHE_MAX_VALUE_BYTES", 1024 * 1024, minimum=1),
            max_body_bytes=_int(env, "CACHE_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            max_json_depth=_int(env, "CACHE_MAX_JSON_DEPTH", 64, minimum=2),
            max_batch_keys=_int(env, "CACHE_MAX_BATCH_KEYS", 1000, minimum=1),
            log_level=(env.get("CACHE_LOG_LEVEL") or "INFO").upper(),
            web_bind=env.get("CACHE_WEB_BIND") or cls.web_bind,
            web_workers=_int(env, "CACHE_WEB_WORKERS", 0),
            web_worker_class=env.get("CACHE_WEB_WORKER_CLASS") or cls.web_worker_class,
            web_worker_connections=_int(env, "CACHE_WEB_WORKER_CONNECTIONS", 1000, minimum=1),
            web_keepalive=_int(env, "CACHE_WEB_KEEPALIVE", 75),
            web_timeout=_int(env, "CACHE_WEB_TIMEOUT", 30, minimum=1),
            web_max_requests=_int(env, "CACHE_WEB_MAX_REQUESTS", 200_000),
            web_access_log=env.get("CACHE_WEB_ACCESS_LOG") or None,
            web_forwarded_allow_ips=(
                env.get("CACHE_WEB_FORWARDED_ALLOW_IPS") or cls.web_forwarded_allow_ips
            ),
        )

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with some fields replaced (used by tests and ``create_app``)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **overrides)
