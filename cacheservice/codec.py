"""Value <-> stored bytes, with a header so that every stored entry says how to read it.

Layout of a stored value::

    byte 0      format version (1)
    byte 1      value type: j = json, s = string, b = binary
    byte 2      compression: n = none (gzip, lz4 and zstd arrive with namespace configuration)
    bytes 3-4   compression dictionary id, big-endian (0 = none)
    byte 5      length of the encryption key id (0 = not encrypted), then the key id itself
    rest        the payload: JSON text, UTF-8 text or raw bytes

Because the header travels with each value, changing how new values are written never makes
old ones unreadable.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from cacheservice.errors import InvalidRequest
from cacheservice.jsonio import dumps_value

FORMAT_VERSION = 1
HEADER_BYTES = 6

TYPE_CODES = {"json": b"j", "string": b"s", "binary": b"b"}
TYPES_BY_CODE = {code[0]: name for name, code in TYPE_CODES.items()}
COMPRESSION_NONE = b"n"


class CorruptValue(Exception):
    """Stored bytes that this codec cannot read (unknown version, type or compression)."""


@dataclass(frozen=True)
class EncodedValue:
    blob: bytes
    value_type: str
    compression: str
    raw_bytes: int

    @property
    def stored_bytes(self) -> int:
        return len(self.blob)


def payload_of(value: Any, value_type: str) -> bytes:
    """The bytes a value of ``value_type`` is stored as (before compression)."""
    if value_type == "json":
        return dumps_value(value)
    if value_type == "string":
        if not isinstance(value, str):
            raise InvalidRequest("A string entry's value must be a JSON string", field="value")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                "Value contains a lone UTF-16 surrogate", issue="strings must be valid Unicode"
            ) from None
    if value_type == "binary":
        if not isinstance(value, str):
            raise InvalidRequest("A binary entry's value must be a base64 string", field="value")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                "A binary entry's value must be valid base64", field="value"
            ) from None
    raise InvalidRequest(f"Unsupported value type {value_type!r}", field="type")


def encode(value: Any, value_type: str) -> EncodedValue:
    payload = payload_of(value, value_type)
    header = bytes((FORMAT_VERSION,)) + TYPE_CODES[value_type] + COMPRESSION_NONE + b"\x00\x00\x00"
    return EncodedValue(header + payload, value_type, "none", len(payload))


def decode_payload(blob: bytes) -> tuple[str, bytes]:
    """Split a stored value into its type and its plain payload."""
    if len(blob) < HEADER_BYTES or blob[0] != FORMAT_VERSION:
        raise CorruptValue("unknown stored value format")
    value_type = TYPES_BY_CODE.get(blob[1])
    if value_type is None:
        raise CorruptValue(f"unknown value type code {blob[1]!r}")
    if blob[2:3] != COMPRESSION_NONE:
        raise CorruptValue(f"unknown compression code {blob[2]!r}")
    key_id_length = blob[5]
    if key_id_length:
        raise CorruptValue("encrypted values need a key ring")
    return value_type, blob[HEADER_BYTES:]


def json_value(blob: bytes) -> Any:
    """The value as it appears in a JSON response.

    JSON payloads are embedded as they are stored (``orjson.Fragment``), so a GET never parses
    and re-serialises the cached document.
    """
    value_type, payload = decode_payload(blob)
    if value_type == "json":
        return orjson.Fragment(payload)
    if value_type == "string":
        return payload.decode("utf-8")
    return base64.b64encode(payload).decode("ascii")
