"""Key, namespace, tag and JSON-depth rules of the contract."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from cacheservice.errors import InvalidKey, InvalidRequest
from cacheservice.validation import (
    KEY_PATTERN,
    MAX_KEY_BYTES,
    check_json_depth,
    check_key,
    json_depth_exceeds,
    json_text_issue,
    key_issue,
    namespace_issue,
    tag_issue,
)


def nested_lists(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_objects(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "user:550e8400-e29b-41d4-a716-446655440000",
        "a/b",
        "a%2Fb",
        "päth:ключ:鍵",
        "emoji🙂",
        "a" * MAX_KEY_BYTES,
        "é" * 125,  # 2 bytes each: exactly 250 bytes.
        "€" * 83 + "a",  # 3 bytes each: 249 + 1 = 250 bytes.
        "🙂" * 62 + "ab",  # 4 bytes each: 248 + 2 = 250 bytes.
        "{braces}[]*?\\",
    ],
)
def test_valid_keys(key: str) -> None:
    assert key_issue(key) is None
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "a" * (MAX_KEY_BYTES + 1),
        "é" * 125 + "a",  # 251 bytes but only 126 characters.
        "€" * 84,  # 252 bytes, 84 characters.
        "🙂" * 63,  # 252 bytes, 63 characters.
    ],
)
def test_keys_over_250_bytes_are_rejected(key: str) -> None:
    assert len(key.encode("utf-8")) > MAX_KEY_BYTES
    issue = key_issue(key)
    assert issue is not None
    assert "bytes" in issue


@pytest.mark.parametrize(
    "key",
    ["invalid key", "tab\there", "new\nline", "cr\r", "nbsp\u00a0x", "ideographic\u3000x", " "],
)
def test_whitespace_is_rejected(key: str) -> None:
    issue = key_issue(key)
    assert issue is not None
    assert "whitespace" in issue


@pytest.mark.parametrize("key", ["nul\x00", "bell\x07", "esc\x1b[0m", "del\x7f", "c1\x9b"])
def test_control_characters_are_rejected(key: str) -> None:
    issue = key_issue(key)
    assert issue is not None
    assert "control" in issue


def test_empty_key_is_rejected() -> None:
    assert key_issue("") == "Key must not be empty"


def test_lone_surrogate_is_not_utf8() -> None:
    issue = key_issue("a\ud800b")
    assert issue is not None
    assert "UTF-8" in issue


def test_check_key_raises_with_details() -> None:
    with pytest.raises(InvalidKey) as caught:
        check_key("invalid key", index=3)
    body = caught.value.to_body()
    assert body["error"] == "invalid_key"
    assert body["details"]["key"] == "invalid key"
    assert body["details"]["index"] == 3
    assert "invalid characters" in body["details"]["issue"]


@pytest.mark.parametrize("namespace", ["default", "a", "0", "users", "a-b_c", "9z", "a" * 64])
def test_valid_namespaces(namespace: str) -> None:
    assert namespace_issue(namespace) is None


@pytest.mark.parametrize(
    "namespace",
    ["", "-a", "_a", "Users", "a.b", "a:b", "a}b", "a{b", "a b", "a" * 65, "users\n", "é"],
)
def test_invalid_namespaces(namespace: str) -> None:
    assert namespace_issue(namespace) is not None


@pytest.mark.parametrize("tag", ["a", "A", "user", "profile.v2", "ns:tag", "a-b_c", "x" * 128, "-"])
def test_valid_tags(tag: str) -> None:
    assert tag_issue(tag) is None


@pytest.mark.parametrize("tag", ["", "x" * 129, "a b", "a\nb", "a\n", "a/b", "é", "a*", "a,b"])
def test_invalid_tags(tag: str) -> None:
    assert tag_issue(tag) is not None


@pytest.mark.parametrize("build", [nested_lists, nested_objects])
def test_depth_64_is_allowed_and_65_is_not(build: Any) -> None:
    assert not json_depth_exceeds(build(64), 64)
    assert json_depth_exceeds(build(65), 64)


def test_depth_counts_the_deepest_branch() -> None:
    value = {"shallow": [1, 2], "deep": nested_lists(9), "other": {"x": []}}
    # The outer object is level 1, so the deep branch reaches level 10.
    assert not json_depth_exceeds(value, 10)
    assert json_depth_exceeds(value, 9)


@pytest.mark.parametrize("scalar", [None, True, 0, 1.5, "text", 2**70])
def test_scalars_have_no_depth(scalar: Any) -> None:
    assert not json_depth_exceeds(scalar, 1)


def test_depth_check_is_not_recursive() -> None:
    assert json_depth_exceeds(nested_lists(100_000), 64)


def test_check_json_depth_raises_invalid_request() -> None:
    check_json_depth(nested_lists(64), 64)
    with pytest.raises(InvalidRequest) as caught:
        check_json_depth(nested_lists(65), 64)
    assert caught.value.status == 400
    assert "64" in caught.value.details["issue"]


def test_documented_key_pattern_agrees_with_key_issue_on_every_character() -> None:
    # The OpenAPI document states KEY_PATTERN; schema-driven clients (and schemathesis) trust
    # it, so it must refuse exactly the characters the service refuses. Surrogates cannot
    # arrive: they are not UTF-8.
    pattern = re.compile(KEY_PATTERN)
    disagreements = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code < 0xE000
        and (pattern.fullmatch(chr(code)) is None) != (key_issue(chr(code)) is not None)
    ]
    assert disagreements == []


@pytest.mark.parametrize(
    ("value", "issue"),
    [
        ({"a": "x\x00y"}, "NUL"),
        ({"x\x00": 1}, "NUL"),
        ([[["\x00"]]], "NUL"),
        ({"a": "\ud800"}, "surrogates"),
        ({"\udfff": 1}, "surrogates"),
    ],
)
def test_json_text_issue_names_what_postgres_cannot_store(value: Any, issue: str) -> None:
    found = json_text_issue(value)
    assert found is not None
    assert issue in found


@pytest.mark.parametrize("value", [{}, {"a": ["é", 2**70, None, 1.5, {"b": "\U0001f600"}]}])
def test_json_text_issue_accepts_storable_json(value: Any) -> None:
    assert json_text_issue(value) is None
