"""Rate limiting policy: the categories, their rates, and where the check runs.

Limits are kept per verified subject (``sub``), or per client address for anonymous calls,
in Redis, so they hold across every worker and host. With the limiter state in the cache's own
Redis (the default), single-entry operations carry the check inside their one script call;
other requests run it as a call of its own. With a separate limiter Redis
(``CACHE_RATE_LIMIT_REDIS_URL``), every request runs it on its own, and when that Redis fails
the request is let through (fail open), logged and counted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import redis

from cacheservice.config import ConfigError, Settings
from cacheservice.metrics import prometheus
from cacheservice.store.connection import connect, is_cluster
from cacheservice.store.ratelimit import LimitCheck, LimiterStore, Rate, limiter_key
from cacheservice.timefmt import now_ms

log = logging.getLogger(__name__)

CATEGORIES = ("cache", "batch", "statistics", "health", "sessions")
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*(?:/|per)\s*(second|minute|hour|day)s?\s*")


UNLIMITED = "unlimited"


def parse_rate(text: str, name: str) -> Rate | None:
    """``"10000/hour"`` -> Rate(10000, 3_600_000); ``"unlimited"`` -> None (no limit)."""
    if text.strip().lower() == UNLIMITED:
        return None
    found = _RATE.fullmatch(text.lower())
    if found is None or int(found.group(1)) < 1:
        raise ConfigError(
            f"{name} must look like 10000/hour (second, minute, hour, day) "
            f"or be {UNLIMITED}: {text!r}"
        )
    return Rate(int(found.group(1)), PERIOD_SECONDS[found.group(2)] * 1000)


def rates_from(settings: Settings) -> dict[str, Rate | None]:
    return {
        category: parse_rate(
            getattr(settings, f"rate_limit_{category}"), f"CACHE_RATE_LIMIT_{category.upper()}"
        )
        for category in CATEGORIES
    }


@dataclass
class RateLimiter:
    rates: dict[str, Rate | None]
    store: LimiterStore
    # True when the limiter state lives in the cache's Redis, so entry scripts can carry it.
    folds_into_cache_calls: bool
    # False when the limiter has a Redis of its own (CACHE_RATE_LIMIT_REDIS_URL): fail open.
    shares_cache_redis: bool = True
    store_failures: int = field(default=0)

    @classmethod
    def build(cls, settings: Settings, cache_client: redis.Redis) -> RateLimiter:
        if settings.rate_limit_redis_url:
            client = connect(settings, settings.rate_limit_redis_url)
            return cls(
                rates_from(settings),
                LimiterStore(client),
                folds_into_cache_calls=False,
                shares_cache_redis=False,
            )
        # On a cluster the limiter's key and an entry live in different slots: no folding.
        return cls(
            rates_from(settings),
            LimiterStore(cache_client),
            folds_into_cache_calls=not is_cluster(cache_client),
        )

    def check_for(self, identity: str, category: str) -> LimitCheck | None:
        """The pending check of one request, or None when its category is unlimited."""
        rate = self.rates[category]
        if rate is None:
            return None
        return LimitCheck(limiter_key(identity, category), rate)

    def run_alone(self, check: LimitCheck) -> None:
        """Run the check as a call of its own; raises ``RateLimited`` when over the limit.

        A failing separate limiter store lets the request through: the cache must not go down
        with its limiter. A failing shared Redis is left to fail the request as a 503, since
        the cache operation could not run either.
        """
        try:
            self.store.check(check, now_ms())
        except redis.RedisError as error:
            if self.shares_cache_redis:
                raise
            self.store_failures += 1
            prometheus.LIMITER_FAILURES.inc()
            log.warning("rate limiter store unavailable, request let through: %s", error)
