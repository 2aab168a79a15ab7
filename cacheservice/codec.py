"""Value <-> stored bytes, with a header so that every stored entry says how to read it.

Layout of a stored value (format version 1)::

    byte 0      format version (1)
    byte 1      value type: j = json, s = string, b = binary
    byte 2      compression: n = none, g = zlib (configured as "gzip"), l = lz4 frame,
                z = zstd, d = zstd with a trained dictionary
    bytes 3-4   compression dictionary id, big-endian (0 unless the compression is d)
    byte 5      length of the encryption key id (0 = not encrypted), then the key id (ASCII)
    rest        not encrypted: the (possibly compressed) payload;
                encrypted: a 12-byte nonce, then the AES-256-GCM ciphertext and tag of the
                (possibly compressed) payload
    payload     JSON text, UTF-8 text or raw bytes

Values are compressed, then encrypted. The GCM associated data is the whole header followed by
bytes the caller supplies (the store passes ``namespace + b"\\0" + key``): flipping a header
byte or moving a value to another key makes it fail to decrypt.

Because the header travels with each value, changing how new values are written (algorithm,
level, dictionary, key) never makes old ones unreadable: a reader needs only the dictionaries
and keys that the headers of live entries name.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag

from cacheservice.compressors import (
    ALGORITHMS,
    DEFAULT_DECOMPRESSION_LIMIT,
    NO_COMPRESSION,
    Compression,
    DecompressionError,
    Dictionary,
    compress,
    decompress,
    train_dictionary,
)
from cacheservice.crypto import (
    MAX_KEY_ID_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    Encryption,
    EncryptionKey,
    KeyRing,
)
from cacheservice.errors import InvalidRequest
from cacheservice.jsonio import dumps_value

__all__ = [
    "ALGORITHMS",
    "DEFAULT_DECOMPRESSION_LIMIT",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "TYPE_CODES",
    "Compression",
    "CorruptValue",
    "DecryptionFailed",
    "Dictionary",
    "EncodedValue",
    "Encryption",
    "EncryptionKey",
    "Header",
    "KeyRing",
    "MissingDictionary",
    "decode_payload",
    "encode",
    "json_value",
    "payload_of",
    "read_header",
    "train_dictionary",
]

FORMAT_VERSION = 1
HEADER_BYTES = 6

TYPE_CODES = {"json": b"j", "string": b"s", "binary": b"b"}
TYPES_BY_CODE = {code[0]: name for name, code in TYPE_CODES.items()}
COMPRESSION_NONE = b"n"

# Header code -> what ``EncodedValue.compression`` reports.
COMPRESSION_NAMES = {
    ord("n"): "none",
    ord("g"): "gzip",
    ord("l"): "lz4",
    ord("z"): "zstd",
    ord("d"): "zstd+dict",
}
COMPRESSION_CODES = {name: bytes((code,)) for code, name in COMPRESSION_NAMES.items()}


class CorruptValue(Exception):
    """Stored bytes that this codec cannot read (unknown version, type or compression)."""


class MissingDictionary(CorruptValue):
    """A value compressed with a dictionary the reader was not given."""

    def __init__(self, dictionary_id: int) -> None:
        super().__init__(f"compression dictionary {dictionary_id} is not available")
        self.dictionary_id = dictionary_id


class DecryptionFailed(CorruptValue):
    """An encrypted value that does not decrypt: unknown key id, wrong associated data
    (the value was copied from another key or namespace) or tampered bytes."""


_NO_DICTIONARIES: Mapping[int, bytes] = MappingProxyType({})

Dictionaries = Mapping[int, bytes] | Callable[[int], bytes | None]


@dataclass(frozen=True)
class EncodedValue:
    blob: bytes
    value_type: str
    # What was applied to this value: none, gzip, lz4, zstd or zstd+dict.
    compression: str
    # Length of the plain payload, before compression and encryption.
    raw_bytes: int
    dictionary_id: int = 0
    key_id: str | None = None

    @property
    def stored_bytes(self) -> int:
        return len(self.blob)


@dataclass(frozen=True)
class Header:
    """What a stored value's header says; ``length`` is where the body starts."""

    value_type: str
    compression: str
    dictionary_id: int
    key_id: str | None
    length: int


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
        if isinstance(value, bytes):
            return value  # A raw request body (PUT), not base64.
        if not isinstance(value, str):
            raise InvalidRequest("A binary entry's value must be a base64 string", field="value")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                "A binary entry's value must be valid base64", field="value"
            ) from None
    raise InvalidRequest(f"Unsupported value type {value_type!r}", field="type")


def encode(
    value: Any,
    value_type: str,
    compression: Compression = NO_COMPRESSION,
    encryption: Encryption | None = None,
) -> EncodedValue:
    payload = payload_of(value, value_type)
    body, compression_name, dictionary_id = compress(payload, compression)
    key_id = b""
    if encryption is not None:
        key_id = encryption.key.key_id.encode("ascii")
    header = b"".join(
        (
            bytes((FORMAT_VERSION,)),
            TYPE_CODES[value_type],
            COMPRESSION_CODES[compression_name],
            dictionary_id.to_bytes(2, "big"),
            bytes((len(key_id),)),
            key_id,
        )
    )
    if encryption is not None:
        body = encryption.key.seal(body, header + encryption.associated_data)
    return EncodedValue(
        header + body,
        value_type,
        compression_name,
        len(payload),
        dictionary_id,
        encryption.key.key_id if encryption is not None else None,
    )


def read_header(blob: bytes) -> Header:
    """Parse a stored value's header without touching its body."""
    if len(blob) < HEADER_BYTES or blob[0] != FORMAT_VERSION:
        raise CorruptValue("unknown stored value format")
    value_type = TYPES_BY_CODE.get(blob[1])
    if value_type is None:
        raise CorruptValue(f"unknown value type code {blob[1]!r}")
    compression = COMPRESSION_NAMES.get(blob[2])
    if compression is None:
        raise CorruptValue(f"unknown compression code {blob[2]!r}")
    dictionary_id = int.from_bytes(blob[3:5], "big")
    if (dictionary_id != 0) != (compression == "zstd+dict"):
        raise CorruptValue(f"dictionary id {dictionary_id} does not fit compression {compression}")
    key_id_length = blob[5]
    if not key_id_length:
        return Header(value_type, compression, dictionary_id, None, HEADER_BYTES)
    end = HEADER_BYTES + key_id_length
    if key_id_length > MAX_KEY_ID_BYTES or len(blob) < end:
        raise CorruptValue("malformed encryption key id")
    try:
        key_id = blob[HEADER_BYTES:end].decode("ascii")
    except UnicodeDecodeError:
        raise CorruptValue("malformed encryption key id") from None
    return Header(value_type, compression, dictionary_id, key_id, end)


def _decrypt(blob: bytes, header: Header, keyring: KeyRing | None, associated_data: bytes) -> bytes:
    assert header.key_id is not None
    key = keyring.find(header.key_id) if keyring is not None else None
    if key is None:
        raise DecryptionFailed(f"encryption key {header.key_id!r} is not in the key ring")
    sealed = blob[header.length :]
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionFailed("encrypted value is truncated")
    try:
        return key.unseal(sealed, blob[: header.length] + associated_data)
    except InvalidTag:
        raise DecryptionFailed(
            "encrypted value does not authenticate (wrong key, wrong associated data or "
            "tampered bytes)"
        ) from None


def _dictionary(dictionaries: Dictionaries, dictionary_id: int) -> bytes:
    if isinstance(dictionaries, Mapping):
        data = dictionaries.get(dictionary_id)
    else:
        data = dictionaries(dictionary_id)
    if not data:
        raise MissingDictionary(dictionary_id)
    return data


def decode_payload(
    blob: bytes,
    *,
    keyring: KeyRing | None = None,
    dictionaries: Dictionaries = _NO_DICTIONARIES,
    associated_data: bytes = b"",
    limit: int = DEFAULT_DECOMPRESSION_LIMIT,
) -> tuple[str, bytes]:
    """Split a stored value into its type and its plain payload.

    ``limit`` bounds the decompressed size (see compressors.DEFAULT_DECOMPRESSION_LIMIT).

    ``dictionaries`` maps (or is a function from) a dictionary id to the dictionary's bytes;
    ``associated_data`` must be what the value was encrypted with. Raises ``CorruptValue``
    (``MissingDictionary``, ``DecryptionFailed``) for values that cannot be read.
    """
    header = read_header(blob)
    if header.key_id is None:
        body = blob[header.length :]
    else:
        body = _decrypt(blob, header, keyring, associated_data)
    if header.compression == "none":
        return header.value_type, body
    dictionary = None
    if header.dictionary_id:
        dictionary = _dictionary(dictionaries, header.dictionary_id)
    try:
        return header.value_type, decompress(body, header.compression, dictionary, limit)
    except DecompressionError as error:
        raise CorruptValue(str(error)) from None


def json_value(
    blob: bytes,
    *,
    keyring: KeyRing | None = None,
    dictionaries: Dictionaries = _NO_DICTIONARIES,
    associated_data: bytes = b"",
) -> Any:
    """The value as it appears in a JSON response.

    JSON payloads are embedded as they are stored (``orjson.Fragment``), so a GET never parses
    and re-serialises the cached document.
    """
    value_type, payload = decode_payload(
        blob, keyring=keyring, dictionaries=dictionaries, associated_data=associated_data
    )
    if value_type == "json":
        return orjson.Fragment(payload)
    if value_type == "string":
        return payload.decode("utf-8")
    return base64.b64encode(payload).decode("ascii")
