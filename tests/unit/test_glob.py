"""Redis-style glob patterns: parsing and matching."""

from __future__ import annotations

import pytest

from cacheservice.store.glob import MAX_PATTERN_BYTES, GlobPattern, PatternError, parse

CASES = [
    # (pattern, key, matches)
    ("*", "", True),
    ("*", "anything:at/all", True),
    ("user:*", "user:1", True),
    ("user:*", "user:", True),
    ("user:*", "users:1", False),
    ("*:1", "user:1", True),
    ("*:1", "user:12", False),
    ("a*b*c", "aXXbYYc", True),
    ("a*b*c", "acb", False),
    ("**a**", "xxaxx", True),
    ("?", "a", True),
    ("?", "", False),
    ("?", "ab", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("?", "é", False),  # Two bytes of UTF-8: ? is one byte, as in Redis.
    ("??", "é", True),
    ("[abc]", "b", True),
    ("[abc]", "d", False),
    ("[a-z]1", "q1", True),
    ("[a-z]1", "Q1", False),
    ("[z-a]", "m", True),  # Reversed ranges are swapped, as in Redis.
    ("[0-9][0-9]", "42", True),
    ("[^a]", "b", True),
    ("[^a]", "a", False),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("[]", "a", False),  # An empty class matches nothing.
    ("[\\]]", "]", True),
    ("[a\\-z]", "-", True),
    ("[a-]]", "]", True),  # As in Redis, "-" makes a range even when "]" ends it.
    ("[a-]]", "_", True),
    ("[a-]]", "-", False),
    ("[-a]", "-", True),
    ("[a\\-z]", "m", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\?", "?", True),
    ("\\?", "x", False),
    ("\\[a]", "[a]", True),
    ("\\[a]", "a", False),
    ("a\\\\b", "a\\b", True),
    ("\\a", "a", True),  # Escaping an ordinary character is that character.
    ("ключ:*", "ключ:1", True),
    ("ключ:*", "key:1", False),
    ("user:[0-9]*:profile", "user:7abc:profile", True),
    ("user:[0-9]*:profile", "user:x7:profile", False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), CASES)
def test_matches(pattern: str, key: str, expected: bool) -> None:
    assert GlobPattern(pattern).matches(key) is expected


@pytest.mark.parametrize("pattern", ["[", "[abc", "a[b", "[^", "[a-]", "\\", "abc\\", "[a\\"])
def test_unparseable_patterns_raise(pattern: str) -> None:
    with pytest.raises(PatternError):
        GlobPattern(pattern)


def test_pattern_length_is_capped() -> None:
    GlobPattern("a" * MAX_PATTERN_BYTES)
    with pytest.raises(PatternError):
        GlobPattern("a" * (MAX_PATTERN_BYTES + 1))


def test_consecutive_stars_collapse() -> None:
    assert parse(b"a***b") == parse(b"a*b")


def test_pattern_keeps_its_text_and_bytes() -> None:
    pattern = GlobPattern("ключ:*")
    assert pattern.text == "ключ:*"
    assert pattern.raw == "ключ:*".encode()


def test_many_stars_against_a_long_key_are_correct() -> None:
    # A backtracking regex translation takes exponential time here; the answer must still be
    # right (and the suite's timeout catches a blow-up).
    pattern = GlobPattern("*a*a*a*a*a*a*a*a*b")
    assert pattern.matches("a" * 250) is False
    assert pattern.matches("a" * 249 + "b") is True
    assert pattern.matches("a" * 7 + "b" * 243) is False
    assert pattern.matches("ab" * 125) is True
