"""Values to stored bytes and back, header included."""

from __future__ import annotations

import base64
import json
import random
import uuid
from typing import Any

import orjson
import pytest
import zstandard

from cacheservice import codec
from cacheservice.codec import (
    Compression,
    CorruptValue,
    Dictionary,
    EncryptionKey,
    KeyRing,
    MissingDictionary,
)
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


# Compression, dictionaries and the stable header.

TYPED_VALUES = {
    "json": {"rows": [{"id": n, "name": "John Doe", "role": "traveler"} for n in range(40)]},
    "string": "the quick brown fox jumps over the lazy dog. " * 40,
    "binary": base64.b64encode(b"\x00\x01\x02 stored bytes \xff" * 100).decode(),
}
ALGORITHMS_AND_CODES = [("gzip", b"g"), ("lz4", b"l"), ("zstd", b"z")]


def user_records(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    roles = ("traveler", "host", "support", "admin")
    cities = ("Berlin", "Lisbon", "Tokyo", "Toronto", "Nairobi")
    return [
        orjson.dumps(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "email": f"user{rng.randint(1, 99999)}@example.com",
                "name": f"User {rng.randint(1, 99999)}",
                "role": rng.choice(roles),
                "status": rng.choice(("active", "suspended")),
                "address": {"city": rng.choice(cities), "country": "DE"},
                "created_at": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T12:00:00Z",
            }
        )
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def trained() -> bytes:
    return codec.train_dictionary(user_records(500, seed=1), size=4096)


@pytest.fixture(scope="module")
def retrained() -> bytes:
    return codec.train_dictionary(user_records(500, seed=2), size=4096)


def assert_reads_back(blob: bytes, value: Any, value_type: str, **readers: Any) -> None:
    read_type, payload = codec.decode_payload(blob, **readers)
    assert read_type == value_type
    assert payload == codec.payload_of(value, value_type)
    rendered = codec.json_value(blob, **readers)
    if value_type == "json":
        assert orjson.loads(orjson.dumps(rendered)) == value
    else:
        assert rendered == value


@pytest.mark.parametrize(("algorithm", "code"), ALGORITHMS_AND_CODES)
@pytest.mark.parametrize("value_type", ["json", "string", "binary"])
def test_every_algorithm_round_trips_every_type(
    algorithm: str, code: bytes, value_type: str
) -> None:
    value = TYPED_VALUES[value_type]
    encoded = codec.encode(value, value_type, Compression(algorithm))
    assert encoded.compression == algorithm
    assert header(encoded.blob) == b"\x01" + codec.TYPE_CODES[value_type] + code + b"\0\0\0"
    assert encoded.raw_bytes == len(codec.payload_of(value, value_type))
    assert encoded.stored_bytes < encoded.raw_bytes
    assert_reads_back(encoded.blob, value, value_type)


@pytest.mark.parametrize("value_type", ["json", "string", "binary"])
def test_dictionary_round_trips_every_type(value_type: str, trained: bytes) -> None:
    value = TYPED_VALUES[value_type]
    compression = Compression("zstd", dictionary=Dictionary(513, trained))
    encoded = codec.encode(value, value_type, compression)
    assert encoded.compression == "zstd+dict"
    assert encoded.dictionary_id == 513
    assert header(encoded.blob) == b"\x01" + codec.TYPE_CODES[value_type] + b"d\x02\x01\x00"
    assert_reads_back(encoded.blob, value, value_type, dictionaries={513: trained})


@pytest.mark.parametrize("level", [None, 1, 9])
def test_levels_are_applied(level: int | None) -> None:
    encoded = codec.encode(TYPED_VALUES["string"], "string", Compression("gzip", level=level))
    assert encoded.compression == "gzip"
    assert_reads_back(encoded.blob, TYPED_VALUES["string"], "string")


def test_payloads_under_min_bytes_are_stored_uncompressed() -> None:
    compression = Compression("zstd", min_bytes=300)
    short, long = "a" * 299, "a" * 300
    below = codec.encode(short, "string", compression)
    assert below.compression == "none"
    assert below.blob == b"\x01sn\0\0\0" + short.encode()
    at = codec.encode(long, "string", compression)
    assert at.compression == "zstd"
    assert header(at.blob) == b"\x01sz\0\0\0"
    assert codec.json_value(at.blob) == long


def test_default_min_bytes_is_256() -> None:
    assert Compression().min_bytes == 256
    assert codec.encode("a" * 255, "string", Compression("gzip")).compression == "none"
    assert codec.encode("a" * 256, "string", Compression("gzip")).compression == "gzip"


@pytest.mark.parametrize("algorithm", ["gzip", "lz4", "zstd"])
def test_incompressible_payload_is_stored_raw(algorithm: str) -> None:
    raw = random.Random(7).randbytes(4096)
    encoded = codec.encode(base64.b64encode(raw).decode(), "binary", Compression(algorithm))
    assert encoded.compression == "none"
    assert encoded.blob == b"\x01bn\0\0\0" + raw


def test_incompressible_payload_with_dictionary_is_stored_raw(trained: bytes) -> None:
    raw = random.Random(8).randbytes(1024)
    compression = Compression("zstd", dictionary=Dictionary(1, trained))
    encoded = codec.encode(base64.b64encode(raw).decode(), "binary", compression)
    assert (encoded.compression, encoded.dictionary_id) == ("none", 0)
    assert encoded.blob == b"\x01bn\0\0\0" + raw


@pytest.mark.parametrize(
    ("blob", "value_type", "payload"),
    [
        # Written by the first version of the codec (before compression and encryption).
        (
            b'\x01jn\x00\x00\x00{"id":"550e8400-e29b-41d4-a716-446655440000","name":"John Doe"}',
            "json",
            b'{"id":"550e8400-e29b-41d4-a716-446655440000","name":"John Doe"}',
        ),
        (b"\x01sn\x00\x00\x00h\xc3\xa9llo", "string", "héllo".encode()),
        (b"\x01bn\x00\x00\x00\x00\xff\x10", "binary", b"\x00\xff\x10"),
    ],
)
def test_blobs_in_the_first_format_stay_readable(
    blob: bytes, value_type: str, payload: bytes, trained: bytes
) -> None:
    keyring = KeyRing((EncryptionKey("kid1", b"k" * 32),))
    assert codec.decode_payload(blob) == (value_type, payload)
    # Readers configured for encryption and dictionaries read them just the same.
    assert codec.decode_payload(blob, keyring=keyring, dictionaries={1: trained}) == (
        value_type,
        payload,
    )
    rendered = orjson.dumps(codec.json_value(blob))
    if value_type == "json":
        assert rendered == payload
    elif value_type == "string":
        assert orjson.loads(rendered) == payload.decode()
    else:
        assert base64.b64decode(orjson.loads(rendered)) == payload


def test_a_configuration_change_leaves_old_blobs_readable(trained: bytes) -> None:
    value = TYPED_VALUES["json"]
    configurations = [
        Compression(),
        Compression("gzip"),
        Compression("lz4", level=9),
        Compression("zstd", level=19),
        Compression("zstd", dictionary=Dictionary(3, trained)),
    ]
    blobs = [codec.encode(value, "json", compression).blob for compression in configurations]
    # Whatever the namespace is configured with now, every earlier blob reads back.
    for blob in blobs:
        assert_reads_back(blob, value, "json", dictionaries={3: trained})


def test_dictionary_blob_needs_its_dictionary(trained: bytes) -> None:
    record = user_records(1, seed=3)[0].decode()
    compression = Compression("zstd", min_bytes=0, dictionary=Dictionary(9, trained))
    encoded = codec.encode(record, "string", compression)
    assert encoded.compression == "zstd+dict"
    assert codec.decode_payload(encoded.blob, dictionaries={9: trained})[1] == record.encode()
    lookups: list[int] = []

    def lookup(dictionary_id: int) -> bytes | None:
        lookups.append(dictionary_id)
        return trained if dictionary_id == 9 else None

    assert codec.json_value(encoded.blob, dictionaries=lookup) == record
    assert lookups == [9]
    for dictionaries in ({}, {8: trained}, lambda _: None):
        with pytest.raises(MissingDictionary) as raised:
            codec.decode_payload(encoded.blob, dictionaries=dictionaries)
        assert raised.value.dictionary_id == 9
        assert isinstance(raised.value, CorruptValue)


def test_dictionary_compresses_small_records_better_than_plain_zstd(trained: bytes) -> None:
    records = [record.decode() for record in user_records(50, seed=4)]
    plain = Compression("zstd", min_bytes=0)
    with_dictionary = Compression("zstd", min_bytes=0, dictionary=Dictionary(1, trained))
    plain_size = sum(codec.encode(r, "string", plain).stored_bytes for r in records)
    dictionary_size = sum(codec.encode(r, "string", with_dictionary).stored_bytes for r in records)
    assert dictionary_size * 1.5 < plain_size


def test_old_dictionary_blobs_decode_after_retraining(trained: bytes, retrained: bytes) -> None:
    value = TYPED_VALUES["json"]
    old = codec.encode(value, "json", Compression("zstd", dictionary=Dictionary(1, trained)))
    new = codec.encode(value, "json", Compression("zstd", dictionary=Dictionary(2, retrained)))
    assert (old.dictionary_id, new.dictionary_id) == (1, 2)
    dictionaries = {1: trained, 2: retrained}
    assert_reads_back(old.blob, value, "json", dictionaries=dictionaries)
    assert_reads_back(new.blob, value, "json", dictionaries=dictionaries)


def test_a_wrong_dictionary_under_a_reused_id_is_refused(trained: bytes, retrained: bytes) -> None:
    encoded = codec.encode(
        TYPED_VALUES["json"], "json", Compression("zstd", dictionary=Dictionary(1, trained))
    )
    with pytest.raises(CorruptValue):
        codec.decode_payload(encoded.blob, dictionaries={1: retrained})


@pytest.mark.parametrize(
    "blob",
    [
        b"\x01jg\x00\x00\x00not zlib",
        b"\x01jl\x00\x00\x00not lz4",
        b"\x01jz\x00\x00\x00not zstd",
        b"\x01jd\x00\x00\x00{}",  # Dictionary compression without a dictionary id.
        b"\x01jz\x00\x07\x00{}",  # A dictionary id on a value compressed without one.
        b"\x01jq\x00\x00\x00{}",  # Unknown compression code.
    ],
)
def test_damaged_compressed_blobs_raise_corrupt_value(blob: bytes, trained: bytes) -> None:
    with pytest.raises(CorruptValue):
        codec.decode_payload(blob, dictionaries={7: trained})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "brotli"}, "algorithm"),
        ({"algorithm": "none", "level": 3}, "level"),
        ({"algorithm": "gzip", "level": 10}, "gzip level"),
        ({"algorithm": "lz4", "level": 17}, "lz4 level"),
        ({"algorithm": "zstd", "level": 23}, "zstd level"),
        ({"algorithm": "gzip", "min_bytes": -1}, "min_bytes"),
        ({"algorithm": "gzip", "dictionary": Dictionary(1, b"x")}, "only zstd"),
    ],
)
def test_invalid_compression_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Compression(**kwargs)


@pytest.mark.parametrize("dictionary_id", [0, 65536])
def test_dictionary_ids_fit_the_header(dictionary_id: int) -> None:
    with pytest.raises(ValueError, match="dictionary_id"):
        Dictionary(dictionary_id, b"data")


def test_highest_dictionary_id_fits(trained: bytes) -> None:
    compression = Compression("zstd", dictionary=Dictionary(65535, trained))
    encoded = codec.encode(TYPED_VALUES["string"], "string", compression)
    assert encoded.blob[3:5] == b"\xff\xff"
    assert codec.json_value(encoded.blob, dictionaries={65535: trained}) == TYPED_VALUES["string"]


def test_training_needs_enough_samples() -> None:
    with pytest.raises(ValueError, match="at least 8 non-empty samples"):
        codec.train_dictionary([b"{}"] * 3 + [b""] * 10)
    # zstd's trainer would crash the process on these (about 10 bytes in all).
    with pytest.raises(ValueError, match="at least 1024 bytes of samples"):
        codec.train_dictionary([bytes([n]) for n in range(9)])
    with pytest.raises(ValueError, match="at least 256 bytes"):
        codec.train_dictionary(user_records(100, seed=5), size=100)


def test_trainer_errors_become_value_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise zstandard.ZstdError("Src size is incorrect")

    monkeypatch.setattr(zstandard, "train_dictionary", refuse)
    with pytest.raises(ValueError, match=r"could not train .*Src size is incorrect"):
        codec.train_dictionary(user_records(100, seed=5))


def test_training_returns_a_dictionary_of_at_most_the_size(trained: bytes) -> None:
    assert 0 < len(trained) <= 4096
    assert trained.startswith(b"\x37\xa4\x30\xec")  # zstd's dictionary magic number.


def test_read_header_describes_a_blob(trained: bytes) -> None:
    compression = Compression("zstd", dictionary=Dictionary(4, trained))
    blob = codec.encode(TYPED_VALUES["string"], "string", compression).blob
    assert codec.read_header(blob) == codec.Header("string", "zstd+dict", 4, None, 6)
