"""Redis-style glob patterns, matched the way Redis matches them.

Pattern invalidation over an index lets Redis filter with ``ZSCAN ... MATCH``; when the caller
names explicit keys as well, the same pattern has to be applied here. Both must agree, so this
follows Redis's ``stringmatchlen``: it works on bytes, ``*`` and ``?`` match any bytes, ``[..]``
is a byte class with ``^`` for negation and ``a-z`` ranges, and ``\\`` escapes the next byte.

Matching uses the two-pointer wildcard algorithm (backtrack only to the last ``*``), which is
O(len(pattern) * len(key)) in the worst case instead of the exponential time a regex
translation could take on patterns such as ``*a*a*a*a*b``.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PATTERN_BYTES = 512


class PatternError(ValueError):
    """The pattern cannot be parsed (an unterminated class or a trailing backslash)."""


@dataclass(frozen=True)
class _ByteClass:
    members: frozenset[int]
    negated: bool

    def matches(self, byte: int) -> bool:
        return (byte in self.members) != self.negated


_STAR = "*"
_ANY = "?"
_Token = str | int | _ByteClass


def _parse_class(pattern: bytes, start: int) -> tuple[_ByteClass, int]:
    """Parse ``[...]`` beginning just after ``[``; return the class and the index after ``]``."""
    i = start
    negated = i < len(pattern) and pattern[i] == ord("^")
    if negated:
        i += 1
    members: set[int] = set()
    while True:
        if i >= len(pattern):
            raise PatternError("unterminated '[' in pattern")
        byte = pattern[i]
        if byte == ord("]"):
            return _ByteClass(frozenset(members), negated), i + 1
        if byte == ord("\\"):
            if i + 1 >= len(pattern):
                raise PatternError("pattern ends with a backslash")
            members.add(pattern[i + 1])
            i += 2
            continue
        # As in Redis, ``-`` always makes a range, even when ``]`` is its end: ``[a-]]``.
        if i + 2 < len(pattern) and pattern[i + 1] == ord("-"):
            low, high = sorted((byte, pattern[i + 2]))
            members.update(range(low, high + 1))
            i += 3
            continue
        members.add(byte)
        i += 1


def parse(pattern: bytes) -> tuple[_Token, ...]:
    if len(pattern) > MAX_PATTERN_BYTES:
        raise PatternError(f"pattern is longer than {MAX_PATTERN_BYTES} bytes")
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        byte = pattern[i]
        if byte == ord("*"):
            # Consecutive stars match the same as one.
            if not tokens or tokens[-1] != _STAR:
                tokens.append(_STAR)
            i += 1
        elif byte == ord("?"):
            tokens.append(_ANY)
            i += 1
        elif byte == ord("["):
            byte_class, i = _parse_class(pattern, i + 1)
            tokens.append(byte_class)
        elif byte == ord("\\"):
            if i + 1 >= len(pattern):
                raise PatternError("pattern ends with a backslash")
            tokens.append(pattern[i + 1])
            i += 2
        else:
            tokens.append(byte)
            i += 1
    return tuple(tokens)


def _token_matches(token: _Token, byte: int) -> bool:
    if token == _ANY:
        return True
    if isinstance(token, _ByteClass):
        return token.matches(byte)
    return token == byte


def match(tokens: tuple[_Token, ...], key: bytes) -> bool:
    """True when ``key`` matches the parsed pattern ``tokens``."""
    t = k = 0
    star_t = star_k = -1
    while k < len(key):
        if t < len(tokens) and tokens[t] == _STAR:
            star_t, star_k = t, k
            t += 1
        elif t < len(tokens) and _token_matches(tokens[t], key[k]):
            t += 1
            k += 1
        elif star_t >= 0:
            # Let the last star swallow one more byte and retry from there.
            star_k += 1
            k = star_k
            t = star_t + 1
        else:
            return False
    while t < len(tokens) and tokens[t] == _STAR:
        t += 1
    return t == len(tokens)


class GlobPattern:
    """A validated pattern: its text for ``ZSCAN MATCH`` and a matcher for explicit keys."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise PatternError("pattern is not valid Unicode (lone surrogate)") from None
        self._tokens = parse(self.raw)

    def matches(self, key: str) -> bool:
        return match(self._tokens, key.encode("utf-8"))
