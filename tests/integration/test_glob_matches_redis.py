"""The service's glob matcher agrees with Redis's own ``MATCH`` on the same keys.

Pattern invalidation lets Redis filter an index scan, except when explicit keys are given,
where ``GlobPattern`` filters instead; the two must select the same keys.
"""

from __future__ import annotations

import pytest
import redis

from cacheservice.store.glob import GlobPattern

KEYS = [
    "a",
    "b",
    "ab",
    "abc",
    "abd",
    "aXc",
    "a*c",
    "a?c",
    "a[c",
    "a]c",
    "a-c",
    "a\\c",
    "a^c",
    "a_c",
    "]",
    "-",
    "^",
    "[x]",
    "user:1",
    "user:2",
    "user:10",
    "user:1:profile",
    "users:1",
    "order:1",
    "é",
    "ключ:1",
    "ключ:22",
    "🙂",
    "x" * 250,
    "x" * 249 + "y",
    "ab" * 125,
    "a" * 249 + "b",
]

PATTERNS = [
    "*",
    "a",
    "a*",
    "*c",
    "a*c",
    "*a*",
    "**",
    "?",
    "??",
    "????",
    "a?c",
    "a??",
    "user:?",
    "user:*",
    "user:*:*",
    "*:1",
    "*1*",
    "[ab]",
    "[a-b]*",
    "[b-a]*",
    "a[^X]c",
    "a[^a-z]c",
    "[^a]",
    "a[]]c",
    "a[\\]]c",
    "a[[]c",
    "a[\\-]c",
    "a[\\a-z]c",
    "a[a-]]c",
    "a[]-]c",
    "a[-a]c",
    "a[^]c",
    "[]",
    "a[]c",
    "a\\*c",
    "a\\?c",
    "a\\[c",
    "a\\\\c",
    "a\\bc",
    "\\[x]",
    "[\\[]x]",
    "ключ:?",
    "ключ:??",
    "ключ:*",
    "[^a-z]*",
    "x*y",
    "*x*x*x*x*x*x*x*y",
    "*a*a*a*a*a*a*a*a*b",
    "a*b*a*b*",
    "u[a-z]er:1[0-9]",
]


@pytest.fixture
def index(redis_client: redis.Redis) -> str:
    name = "glob-test:index"
    redis_client.zadd(name, {key.encode(): 0 for key in KEYS})
    return name


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_pattern_agrees_with_zscan_match(
    redis_client: redis.Redis, index: str, pattern: str
) -> None:
    by_redis = {
        member.decode() for member, _ in redis_client.zscan_iter(index, match=pattern.encode())
    }
    glob = GlobPattern(pattern)
    by_service = {key for key in KEYS if glob.matches(key)}
    assert by_service == by_redis


def test_comparison_is_not_vacuous() -> None:
    # Only the patterns with an empty class ("[]" matches no byte, as in Redis) select nothing.
    empty = [p for p in PATTERNS if not any(GlobPattern(p).matches(key) for key in KEYS)]
    assert empty == ["a[]]c", "a[]-]c", "[]", "a[]c"]
