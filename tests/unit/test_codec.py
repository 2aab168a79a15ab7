"""Values to stored bytes and back, header included."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from cacheservice import codec
from cacheservice.codec import CorruptValue
from cacheservice.errors import InvalidRequest


def header(blob: bytes) -> bytes:
    return blob[: codec.HEADER_BYTES]


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True, False]}, [], "text", 0, -1.25, 2**70, True, False, None],
)
def test_json_round_trip(value: Any) -> None:
    encoded = codec.encode(value, "json")
    assert header(encoded.blob) == b"\x01jn\x00\x00\x00"
    assert encoded.value_type == "json"
    assert encoded.compression == "none"
    assert encoded.raw_bytes == len(encoded.blob) - codec.HEADER_BYTES
    assert encoded.stored_bytes == len(encoded.blob)
    value_type, payload = codec.decode_payload(encoded.blob)
    assert value_type == "json"
    assert json.loads(payload) == value
    assert type(json.loads(payload)) is type(value)
    rendered = orjson.dumps({"v": codec.json_value(encoded.blob)})
    assert rendered == b'{"v":' + payload + b"}"


def test_string_round_trip_stores_utf8() -> None:
    encoded = codec.encode("héllo 🙂", "string")
    assert header(encoded.blob) == b"\x01sn\x00\x00\x00"
    assert encoded.blob[codec.HEADER_BYTES :] == "héllo 🙂".encode()
    assert encoded.raw_bytes == len("héllo 🙂".encode())
    assert codec.decode_payload(encoded.blob) == ("string", "héllo 🙂".encode())
    assert codec.json_value(encoded.blob) == "héllo 🙂"


def test_binary_round_trip_stores_raw_bytes() -> None:
    raw = bytes(range(256))
    text = base64.b64encode(raw).decode()
    encoded = codec.encode(text, "binary")
    assert header(encoded.blob) == b"\x01bn\x00\x00\x00"
    assert encoded.blob[codec.HEADER_BYTES :] == raw
    assert encoded.raw_bytes == 256
    assert codec.decode_payload(encoded.blob) == ("binary", raw)
    assert codec.json_value(encoded.blob) == text


def test_empty_binary_and_string() -> None:
    assert codec.json_value(codec.encode("", "binary").blob) == ""
    assert codec.json_value(codec.encode("", "string").blob) == ""


@pytest.mark.parametrize(
    ("value", "value_type"),
    [(1, "string"), (None, "string"), ([], "binary"), ("not base64!", "binary"), ("abc", "binary")],
)
def test_wrong_value_for_type_is_invalid_request(value: Any, value_type: str) -> None:
    with pytest.raises(InvalidRequest):
        codec.encode(value, value_type)


def test_lone_surrogate_string_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        codec.encode("\ud800", "string")


def test_unknown_type_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        codec.payload_of("x", "hyperloglog")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01jn\x00\x00",  # Shorter than a header.
        b"\x02jn\x00\x00\x00{}",  # Unknown format version.
        b"\x01xn\x00\x00\x00{}",  # Unknown type code.
        b"\x01jz\x00\x00\x00{}",  # Unknown compression.
        b"\x01jn\x00\x00\x03kid{}",  # Encrypted, and no key ring here.
    ],
)
def test_unreadable_headers_raise_corrupt_value(blob: bytes) -> None:
    with pytest.raises(CorruptValue):
        codec.decode_payload(blob)
    with pytest.raises(CorruptValue):
        codec.json_value(blob)
