"""The per-process access objects: the token verifier (None when auth is off) and the limiter."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cacheservice.auth import TokenVerifier
from cacheservice.config import ConfigError, Settings
from cacheservice.limits import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessControl:
    """The per-process verifier (None when auth is disabled) and limiter."""

    verifier: TokenVerifier | None
    limiter: RateLimiter

    @classmethod
    def build(cls, settings: Settings, limiter: RateLimiter) -> AccessControl:
        if settings.auth_mode == "disabled":
            log.warning(
                "AUTHENTICATION IS DISABLED (CACHE_AUTH_MODE=disabled): every caller may read, "
                "write and invalidate every namespace"
            )
            return cls(None, limiter)
        if settings.auth_mode != "jwt":
            raise ConfigError(
                f"CACHE_AUTH_MODE must be jwt or disabled, not {settings.auth_mode!r}"
            )
        return cls(TokenVerifier.from_settings(settings), limiter)
