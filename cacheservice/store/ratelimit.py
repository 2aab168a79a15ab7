"""Rate limiter state in Redis: a sliding window counter per subject and category.

The check runs either on its own (``check``) or inside an entry script (the store's guarded
scripts), where it costs no extra round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cacheservice.store.keys import PREFIX
from cacheservice.store.scripts import ScriptCall, Scripts


@dataclass(frozen=True)
class Rate:
    limit: int
    window_ms: int


@dataclass(frozen=True)
class LimitOutcome:
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    retry_after_ms: int

    @classmethod
    def from_reply(cls, limit: int, reply: Sequence[Any]) -> LimitOutcome:
        allowed, remaining, reset_ms, retry_after_ms = (int(part) for part in reply)
        return cls(bool(allowed), limit, max(0, remaining), reset_ms, retry_after_ms)


class RateLimited(Exception):
    """The request is over its limit; the cache operation did not run."""

    def __init__(self, outcome: LimitOutcome) -> None:
        super().__init__("rate limit exceeded")
        self.outcome = outcome


@dataclass
class LimitCheck:
    """One request's pending limit check; ``outcome`` is filled in by whoever runs it."""

    key: str
    rate: Rate
    outcome: LimitOutcome | None = None

    def script_keys(self) -> list[str]:
        return [self.key]

    def script_args(self, now_ms: int) -> list[int]:
        return [self.rate.limit, self.rate.window_ms, now_ms]

    def settle(self, reply: Sequence[Any]) -> None:
        """Record the limiter's reply; raise ``RateLimited`` when it refused."""
        self.outcome = LimitOutcome.from_reply(self.rate.limit, reply)
        if not self.outcome.allowed:
            raise RateLimited(self.outcome)


def limiter_key(identity: str, category: str) -> str:
    """The limiter hash of one caller and category, in a slot of its own.

    The identity (``sub:<subject>`` or ``ip:<address>``) is hashed so that any subject, even
    one holding braces, makes a well-formed Redis Cluster hash tag.
    """
    digest = hashlib.blake2b(identity.encode("utf-8"), digest_size=16).hexdigest()
    return f"{PREFIX}:rl:{{{digest}}}:{category}"


class LimiterStore:
    def __init__(self, client: redis.Redis) -> None:
        self.scripts = Scripts(client)

    def check(self, check: LimitCheck, now_ms: int) -> None:
        reply = self.scripts.run(
            ScriptCall(Scripts.rate_limit, check.script_keys(), check.script_args(now_ms))
        )
        check.settle(reply)
