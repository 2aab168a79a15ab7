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
# The characters a key may not contain, spelled out so the OpenAPI document states the same
# rule to every regex dialect: control characters (C0, DEL, C1) and everything Python's
# ``str.isspace`` calls whitespace. (``\s`` would differ between dialects: ECMA-262 counts
# U+FEFF, Python does not.) ``key_issue`` is the authority; a unit test keeps the two equal.
KEY_FORBIDDEN_CHARACTERS = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
KEY_PATTERN = f"^[^{KEY_FORBIDDEN_CHARACTERS}]+$"


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


def json_text_issue(value: Any) -> str | None:
    """Why a JSON value cannot be stored as Postgres ``jsonb`` text, or ``None`` when it can.

    Postgres refuses the NUL character (``\\u0000``) in ``jsonb`` strings and keys, and UTF-8
    has no lone surrogates; both are valid in JSON text, so they get a 400 here instead of a
    500 from the database. Iterative for the same reason as ``json_depth_exceeds``.
    """
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            if "\x00" in node:
                return "strings may not contain the NUL character (\\u0000)"
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return "strings must be valid Unicode (no lone UTF-16 surrogates)"
    return None


def check_json_depth(value: Any, limit: int) -> None:
    if json_depth_exceeds(value, limit):
        raise InvalidRequest(
            "JSON nesting is too deep", issue=f"JSON may nest at most {limit} levels"
        )
