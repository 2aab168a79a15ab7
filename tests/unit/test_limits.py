"""Rate limit configuration and the limiter's bookkeeping, without Redis."""

from __future__ import annotations

import re

import pytest

from cacheservice.config import ConfigError, Settings
from cacheservice.limits import CATEGORIES, parse_rate, rates_from
from cacheservice.store.ratelimit import (
    LimitCheck,
    LimitOutcome,
    Rate,
    RateLimited,
    limiter_key,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10000/hour", Rate(10000, 3_600_000)),
        ("3/minute", Rate(3, 60_000)),
        ("1/second", Rate(1, 1_000)),
        ("5/day", Rate(5, 86_400_000)),
        ("100 per hour", Rate(100, 3_600_000)),
        ("100/hours", Rate(100, 3_600_000)),
        (" 7 / Minute ", Rate(7, 60_000)),
        ("1000/HOUR", Rate(1000, 3_600_000)),
    ],
)
def test_parse_rate_accepts(text: str, expected: Rate) -> None:
    assert parse_rate(text, "CACHE_RATE_LIMIT_CACHE") == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10000",
        "10000/",
        "/hour",
        "0/hour",
        "-5/hour",
        "1.5/hour",
        "10/week",
        "10/ms",
        "ten/hour",
        "10/hour/extra",
        "10 hour",
    ],
)
def test_parse_rate_refuses_with_the_variable_name(text: str) -> None:
    with pytest.raises(ConfigError, match="CACHE_RATE_LIMIT_BATCH") as raised:
        parse_rate(text, "CACHE_RATE_LIMIT_BATCH")
    assert repr(text) in str(raised.value)


def test_unlimited_means_no_rate() -> None:
    assert parse_rate("unlimited", "CACHE_RATE_LIMIT_HEALTH") is None
    assert parse_rate(" Unlimited ", "CACHE_RATE_LIMIT_HEALTH") is None


def test_the_defaults_are_the_seeds() -> None:
    assert rates_from(Settings()) == {
        "cache": Rate(10000, 3_600_000),
        "batch": Rate(1000, 3_600_000),
        "statistics": Rate(100, 3_600_000),
        "health": Rate(1000, 3_600_000),
        "sessions": Rate(10000, 3_600_000),
    }


def test_every_category_is_configurable_from_the_environment() -> None:
    env = {f"CACHE_RATE_LIMIT_{category.upper()}": "2/second" for category in CATEGORIES}
    assert set(rates_from(Settings.from_env(env)).values()) == {Rate(2, 1_000)}


def test_a_bad_rate_in_the_environment_names_its_variable() -> None:
    settings = Settings.from_env({"CACHE_RATE_LIMIT_STATISTICS": "lots"})
    with pytest.raises(ConfigError, match="CACHE_RATE_LIMIT_STATISTICS"):
        rates_from(settings)


def test_limiter_keys_are_one_cluster_slot_per_caller_and_category() -> None:
    key = limiter_key("sub:alice", "cache")
    tag = re.fullmatch(r"[^{}]+:rl:\{([0-9a-f]{32})\}:cache", key)
    assert tag is not None, key
    assert limiter_key("sub:alice", "batch") == key.removesuffix("cache") + "batch"
    assert limiter_key("sub:bob", "cache") != key
    # A subject that mimics an address, or holds braces, is still its own well-formed tag.
    assert limiter_key("ip:alice", "cache") != key
    assert re.fullmatch(r"[^{}]+:rl:\{[0-9a-f]{32}\}:cache", limiter_key("sub:{x}", "cache"))


def test_an_allowed_reply_settles_quietly() -> None:
    check = LimitCheck("k", Rate(10, 60_000))
    check.settle([1, 7, 1_700_000_100_000, 0])
    assert check.outcome == LimitOutcome(True, 10, 7, 1_700_000_100_000, 0)


def test_a_refused_reply_raises_with_its_outcome() -> None:
    check = LimitCheck("k", Rate(10, 60_000))
    with pytest.raises(RateLimited) as raised:
        check.settle([0, 0, 1_700_000_100_000, 1500])
    assert raised.value.outcome == LimitOutcome(False, 10, 0, 1_700_000_100_000, 1500)
    assert check.outcome is raised.value.outcome


def test_remaining_is_never_negative() -> None:
    assert LimitOutcome.from_reply(3, [1, -1, 0, 0]).remaining == 0


def test_script_arguments_put_the_limiter_first() -> None:
    check = LimitCheck("rl-key", Rate(3, 60_000))
    assert check.script_keys() == ["rl-key"]
    assert check.script_args(123) == [3, 60_000, 123]
