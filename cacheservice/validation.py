"""The contract's rules for keys, namespaces, tags and JSON depth, as plain functions."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from cacheservice.errors import InvalidKey, InvalidRequest

MAX_KEY_BYTES = 250
MAX_TAGS = 32
DEFAULT_NAMESPACE = "default"
# Also the largest value of the ``ttl`` column (a Postgres integer).
MAX_TTL_SECONDS = 2**31 - 1

NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def key_issue(key: str) -> str | None:
    """Why ``key`` is not a valid cache key, or ``None`` when it is."""
    # Most keys are short printable ASCII without spaces: decide those without the loop below
    # (a batch of 1000 keys checks them all).
    if 0 < len(key) <= MAX_KEY_BYTES and key.isascii() and key.isprintable() and " " not in key:
        return None
    if not key:
        return "Key must not be empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "Key is not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"Key is {size} bytes long; at most {MAX_KEY_BYTES} are allowed"
    for char in key:
        if char.isspace():
            return "Key contains invalid characters (whitespace)"
        if unicodedata.category(char) in ("Cc", "Cs"):
            return "Key contains invalid characters (control characters)"
    return None


def check_key(key: str, **details: Any) -> str:
    issue = key_issue(key)
    if issue is not None:
        raise InvalidKey(key=key, issue=issue, **details)
    return key


def namespace_issue(namespace: str) -> str | None:
    if NAMESPACE_RE.fullmatch(namespace) is None:
        return "Namespace must match ^[a-z0-9][a-z0-9_-]{0,63}$"
    return None


def tag_issue(tag: str) -> str | None:
    if TAG_RE.fullmatch(tag) is None:
        return "Tag must match ^[A-Za-z0-9_.:-]{1,128}$"
    return None


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers deeper than ``limit`` levels.

    Iterative on purpose: a recursive walk would itself hit Python's recursion limit on
    the hostile inputs this check exists for.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def check_json_depth(value: Any, limit: int) -> None:
    if json_depth_exceeds(value, limit):
        raise InvalidRequest(
            "JSON nesting is too deep", issue=f"JSON may nest at most {limit} levels"
        )
