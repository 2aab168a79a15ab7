"""The sliding window counter (``rate_limit.lua``) against the real Redis, with explicit clocks.

Every call passes its own ``now_ms``, so window boundaries are exact and nothing sleeps.
"""

from __future__ import annotations

import contextlib

import pytest
import redis

from cacheservice.store.ratelimit import (
    LimitCheck,
    LimiterStore,
    LimitOutcome,
    Rate,
    RateLimited,
    limiter_key,
)

WINDOW = 60_000
# The start of a fixed window: a multiple of the window length.
W1 = 28_333_334 * WINDOW
W2 = W1 + WINDOW
W3 = W2 + WINDOW
KEY = limiter_key("sub:script-test", "cache")


@pytest.fixture
def store(redis_client: redis.Redis) -> LimiterStore:
    return LimiterStore(redis_client)


def hit(store: LimiterStore, now: int, limit: int = 10, key: str = KEY) -> LimitOutcome:
    """One request at ``now``; its outcome, whether allowed or refused."""
    check = LimitCheck(key, Rate(limit, WINDOW))
    # RateLimited carries the same outcome the check records.
    with contextlib.suppress(RateLimited):
        store.check(check, now)
    assert check.outcome is not None
    return check.outcome


def allowed_count(store: LimiterStore, now: int, attempts: int, limit: int = 10) -> int:
    return sum(hit(store, now, limit).allowed for _ in range(attempts))


def test_exactly_the_limit_is_allowed_in_a_window(store: LimiterStore) -> None:
    outcomes = [hit(store, W1 + 1_000 + n) for n in range(12)]

    assert [outcome.allowed for outcome in outcomes] == [True] * 10 + [False] * 2
    assert [outcome.remaining for outcome in outcomes[:10]] == list(range(9, -1, -1))
    refused = outcomes[10]
    assert refused.remaining == 0
    assert refused.reset_ms == W2
    # No previous window to decay: the next request fits when this window ends.
    assert refused.retry_after_ms == W2 - (W1 + 1_010)
    assert {outcome.reset_ms for outcome in outcomes} == {W2}


def test_refused_requests_are_not_counted(store: LimiterStore) -> None:
    assert allowed_count(store, W1 + 1, 50) == 10
    # Had the 40 refusals counted, the previous window would still weigh 25 at half time.
    assert allowed_count(store, W2 + WINDOW // 2, 10) == 5


def test_the_previous_window_weighs_by_its_overlap(store: LimiterStore) -> None:
    assert allowed_count(store, W1 + 5, 10) == 10
    # Half way into window 2, window 1 still counts 10 * 0.5 = 5.
    assert allowed_count(store, W2 + WINDOW // 2, 10) == 5


def test_retry_after_is_when_the_previous_window_has_decayed_enough(store: LimiterStore) -> None:
    assert allowed_count(store, W1, 10) == 10
    half = W2 + WINDOW // 2
    assert allowed_count(store, half, 5) == 5

    refused = hit(store, half)

    # 10 * (1 - e) + 5 + 1 <= 10 from e = 0.6 of the window on: 6 s after half time.
    assert not refused.allowed
    assert refused.retry_after_ms == WINDOW // 10
    assert not hit(store, half + refused.retry_after_ms - 1).allowed
    assert hit(store, half + refused.retry_after_ms).allowed


def test_the_weight_decays_to_nothing_at_the_end_of_the_window(store: LimiterStore) -> None:
    assert allowed_count(store, W1, 10) == 10
    assert allowed_count(store, W2, 10) == 0
    assert allowed_count(store, W3 - 1, 10) == 9


def test_two_windows_later_everything_is_forgotten(
    store: LimiterStore, redis_client: redis.Redis
) -> None:
    assert allowed_count(store, W1 + 100, 10) == 10

    # The state expires by itself after two windows, and a late caller starts afresh anyway.
    ttl = redis_client.pttl(KEY)
    assert 0 < ttl <= 2 * WINDOW
    assert allowed_count(store, W3, 12) == 10


def test_keys_are_independent(store: LimiterStore) -> None:
    other = limiter_key("sub:script-test", "batch")
    assert allowed_count(store, W1, 11) == 10
    assert hit(store, W1, key=other).allowed


def test_a_limit_of_one(store: LimiterStore) -> None:
    first, second = hit(store, W1, limit=1), hit(store, W1 + 1, limit=1)
    assert (first.allowed, first.remaining) == (True, 0)
    assert (second.allowed, second.remaining) == (False, 0)
    assert 1 <= second.retry_after_ms <= WINDOW


def test_a_caller_whose_clock_is_behind_does_not_reset_the_newer_window(
    store: LimiterStore,
) -> None:
    """Workers racing at a window boundary (or hosts with skewed clocks) keep every count.

    The request stamped just before the boundary arrives after several stamped just after it;
    it must count in the newer window, not replace that window's count with its own.
    """
    assert allowed_count(store, W1 + 10, 3) == 3
    assert allowed_count(store, W2 + 10, 5) == 5
    assert hit(store, W2 - 10).allowed

    # 3 in window 1 (weight ~1) and 6 in window 2 leave room for exactly one more.
    assert allowed_count(store, W2 + 20, 5) == 1
