"""Settings of the service: the only module that reads the environment.

Every setting has a ``CACHE_*`` (or, for Celery, ``CELERY_*``) variable; the README lists them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    return tuple(item.strip() for item in raw.replace(" ", ",").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the web app and the workers are configured with."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/cacheservice"
    celery_broker_url: str = "redis://127.0.0.1:6379/1"
    # Seconds to connect to Postgres or to wait for a pooled connection.
    database_timeout: float = 2.0
    # Celery beat: how often each periodic task runs (seconds).
    flush_interval: float = 5.0
    prune_interval: float = 30.0
    probe_interval: float = 10.0
    memory_sample_interval: float = 60.0
    # How long a periodic task's overlap lock lives if its worker dies holding it.
    task_lock_seconds: int = 60
    # Where celery beat keeps its schedule state.
    beat_schedule_file: str = str(Path(tempfile.gettempdir()) / "cacheservice-celerybeat")
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
    log_level: str = "INFO"
    # One JSON log line per request (method, path, status, duration, request id).
    request_log: bool = True
    # Set by the gunicorn configuration: where worker processes share Prometheus samples.
    prometheus_multiproc_dir: str | None = None
    # Access control (see cacheservice/auth.py).
    auth_mode: str = "jwt"
    jwt_secret: str | None = None
    jwt_public_key_file: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    # "kid1:<base64 32 bytes>,kid0:<...>": the first encrypts, all decrypt (cacheservice/crypto.py).
    encryption_keys: str | None = None
    # Rate limits as "<count>/<second|minute|hour|day>", per verified subject.
    rate_limit_cache: str = "10000/hour"
    rate_limit_batch: str = "1000/hour"
    rate_limit_statistics: str = "100/hour"
    rate_limit_health: str = "1000/hour"
    rate_limit_sessions: str = "10000/hour"
    # A separate Redis for limiter state; unset means the cache's own Redis, which lets the
    # limit check ride in the same script call as the cache operation.
    rate_limit_redis_url: str | None = None
    # How many proxies (nginx) in front of gunicorn append to X-Forwarded-For; the client
    # address of anonymous requests is read from there when this is above 0.
    proxy_count: int = 0
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
            database_timeout=_float(env, "CACHE_DATABASE_TIMEOUT", 2.0),
            flush_interval=_float(env, "CACHE_FLUSH_INTERVAL", 5.0),
            prune_interval=_float(env, "CACHE_PRUNE_INTERVAL", 30.0),
            probe_interval=_float(env, "CACHE_PROBE_INTERVAL", 10.0),
            memory_sample_interval=_float(env, "CACHE_MEMORY_SAMPLE_INTERVAL", 60.0),
            task_lock_seconds=_int(env, "CACHE_TASK_LOCK_SECONDS", 60, minimum=1),
            beat_schedule_file=env.get("CACHE_BEAT_SCHEDULE_FILE") or cls.beat_schedule_file,
            redis_socket_timeout=_float(env, "CACHE_REDIS_SOCKET_TIMEOUT", 0.5),
            redis_connect_timeout=_float(env, "CACHE_REDIS_CONNECT_TIMEOUT", 0.5),
            redis_max_connections=_int(env, "CACHE_REDIS_MAX_CONNECTIONS", 64, minimum=1),
            namespace_buckets=_int(env, "CACHE_NAMESPACE_BUCKETS", 16, minimum=1),
            default_ttl=_int(env, "CACHE_DEFAULT_TTL", 3600, minimum=1),
            max_value_bytes=_int(env, "CACHE_MAX_VALUE_BYTES", 1024 * 1024, minimum=1),
            max_body_bytes=_int(env, "CACHE_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            max_json_depth=_int(env, "CACHE_MAX_JSON_DEPTH", 64, minimum=2),
            log_level=(env.get("CACHE_LOG_LEVEL") or "INFO").upper(),
            request_log=_bool(env, "CACHE_REQUEST_LOG", True),
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            auth_mode=env.get("CACHE_AUTH_MODE") or cls.auth_mode,
            jwt_secret=env.get("CACHE_JWT_SECRET") or None,
            jwt_public_key_file=env.get("CACHE_JWT_PUBLIC_KEY_FILE") or None,
            jwt_algorithms=_list(env, "CACHE_JWT_ALGORITHMS"),
            jwt_issuer=env.get("CACHE_JWT_ISSUER") or None,
            jwt_audience=env.get("CACHE_JWT_AUDIENCE") or None,
            jwt_leeway_seconds=_int(env, "CACHE_JWT_LEEWAY", 30),
            encryption_keys=env.get("CACHE_ENCRYPTION_KEYS") or None,
            rate_limit_cache=env.get("CACHE_RATE_LIMIT_CACHE") or cls.rate_limit_cache,
            rate_limit_batch=env.get("CACHE_RATE_LIMIT_BATCH") or cls.rate_limit_batch,
            rate_limit_statistics=(
                env.get("CACHE_RATE_LIMIT_STATISTICS") or cls.rate_limit_statistics
            ),
            rate_limit_health=env.get("CACHE_RATE_LIMIT_HEALTH") or cls.rate_limit_health,
            rate_limit_sessions=env.get("CACHE_RATE_LIMIT_SESSIONS") or cls.rate_limit_sessions,
            rate_limit_redis_url=env.get("CACHE_RATE_LIMIT_REDIS_URL") or None,
            proxy_count=_int(env, "CACHE_PROXY_COUNT", 0),
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
