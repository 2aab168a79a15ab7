"""Encrypted values (AES-256-GCM through the codec) and the key ring read from configuration."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from cacheservice import codec
from cacheservice.codec import (
    Compression,
    DecryptionFailed,
    Dictionary,
    Encryption,
    EncryptionKey,
    KeyRing,
)
from cacheservice.config import ConfigError, Settings
from cacheservice.crypto import NONCE_BYTES, TAG_BYTES

KID0 = EncryptionKey("kid0", bytes(range(32)))
KID1 = EncryptionKey("kid1", bytes(range(100, 132)))
RING = KeyRing((KID1, KID0))
ADDRESS = b"users\0user:550e8400-e29b-41d4-a716-446655440000"
VALUE = {
    "id": "550e8400-e29b-41d4-a716-446655440000",
    "email": "user@example.com",
    "name": "John Doe",
    "role": "traveler",
    "status": "active",
}
TYPED_VALUES: dict[str, Any] = {
    "json": VALUE,
    "string": "secret text, sécret 🙂",
    "binary": base64.b64encode(b"\x00secret bytes\xff").decode(),
}


def encrypted(value: Any = VALUE, value_type: str = "json", **kwargs: Any) -> codec.EncodedValue:
    key = kwargs.pop("key", KID1)
    return codec.encode(value, value_type, encryption=Encryption(key, ADDRESS), **kwargs)


def text_of(key: EncryptionKey) -> str:
    return f"{key.key_id}:{base64.b64encode(key.secret).decode()}"


@pytest.mark.parametrize("value_type", ["json", "string", "binary"])
@pytest.mark.parametrize("algorithm", ["none", "gzip", "lz4", "zstd"])
def test_encrypted_round_trip(value_type: str, algorithm: str) -> None:
    value = TYPED_VALUES[value_type]
    encoded = encrypted(value, value_type, compression=Compression(algorithm, min_bytes=0))
    assert encoded.key_id == "kid1"
    header_bytes = 6 + len("kid1")
    assert encoded.blob[:header_bytes] == (
        b"\x01" + codec.TYPE_CODES[value_type] + encoded.blob[2:3] + b"\0\0\x04kid1"
    )
    payload = codec.payload_of(value, value_type)
    body = len(encoded.blob) - header_bytes - NONCE_BYTES - TAG_BYTES
    assert body == len(payload) if encoded.compression == "none" else body < len(payload)
    assert codec.decode_payload(encoded.blob, keyring=RING, associated_data=ADDRESS) == (
        value_type,
        payload,
    )
    rendered = codec.json_value(encoded.blob, keyring=RING, associated_data=ADDRESS)
    if value_type != "json":
        assert rendered == value


def test_encrypted_dictionary_round_trip() -> None:
    samples = [
        f'{{"id":"{n:08d}","email":"u{n}@example.com","role":"traveler","status":"active"}}'.encode()
        for n in range(300)
    ]
    dictionary = Dictionary(12, codec.train_dictionary(samples, size=2048))
    encoded = encrypted(compression=Compression("zstd", min_bytes=0, dictionary=dictionary))
    assert (encoded.compression, encoded.dictionary_id, encoded.key_id) == ("zstd+dict", 12, "kid1")
    value_type, payload = codec.decode_payload(
        encoded.blob, keyring=RING, associated_data=ADDRESS, dictionaries={12: dictionary.data}
    )
    assert (value_type, payload) == ("json", codec.payload_of(VALUE, "json"))


def test_encrypted_blob_does_not_contain_the_payload() -> None:
    encoded = encrypted("a plain sentence that must not be visible", "string")
    assert b"plain sentence" not in encoded.blob
    assert b"must not be visible" not in encoded.blob
    record = encrypted()
    assert b"John Doe" not in record.blob
    assert b"user@example.com" not in record.blob


def test_nonces_differ_between_encryptions_of_the_same_value() -> None:
    first, second = encrypted().blob, encrypted().blob
    assert first != second
    start = 6 + len("kid1")
    assert first[start : start + NONCE_BYTES] != second[start : start + NONCE_BYTES]
    nonces = {encrypted().blob[start : start + NONCE_BYTES] for _ in range(200)}
    assert len(nonces) == 200


def test_other_associated_data_fails_to_decrypt() -> None:
    blob = encrypted().blob
    for other in (b"users\0user:other", b"sessions\0" + ADDRESS.split(b"\0")[1], b""):
        with pytest.raises(DecryptionFailed):
            codec.decode_payload(blob, keyring=RING, associated_data=other)
        with pytest.raises(DecryptionFailed):
            codec.json_value(blob, keyring=RING, associated_data=other)


@pytest.mark.parametrize("position", [10, 15, 21, 22, 30, -17, -16, -1])
def test_any_tampered_body_byte_fails(position: int) -> None:
    # Bytes 10-21 are the nonce, the last 16 the tag, the rest the ciphertext.
    blob = bytearray(encrypted(compression=Compression("zstd", min_bytes=0)).blob)
    blob[position] ^= 0x01
    with pytest.raises(DecryptionFailed):
        codec.decode_payload(bytes(blob), keyring=RING, associated_data=ADDRESS)


@pytest.mark.parametrize(
    ("position", "replacement"),
    [(1, b"s"), (1, b"b"), (2, b"g"), (2, b"n"), (9, b"0")],
)
def test_tampered_header_fails(position: int, replacement: bytes) -> None:
    # The header is authenticated too: a value cannot be relabelled as another type or
    # compression (or key) and then decoded the wrong way.
    blob = bytearray(encrypted(compression=Compression("zstd", min_bytes=0)).blob)
    assert blob[position : position + 1] != replacement
    blob[position : position + 1] = replacement
    with pytest.raises(DecryptionFailed):
        codec.decode_payload(bytes(blob), keyring=RING, associated_data=ADDRESS)


def test_truncated_encrypted_blob_fails() -> None:
    blob = encrypted().blob
    for length in (11, 10 + NONCE_BYTES, 10 + NONCE_BYTES + TAG_BYTES, len(blob) - 1):
        with pytest.raises(DecryptionFailed):
            codec.decode_payload(blob[:length], keyring=RING, associated_data=ADDRESS)


def test_key_rotation() -> None:
    old = encrypted(key=KeyRing((KID0,)).primary).blob
    assert old[5:10] == b"\x04kid0"
    rotated = KeyRing.parse(f"{text_of(KID1)},{text_of(KID0)}")
    assert rotated.primary.key_id == "kid1"
    assert codec.decode_payload(old, keyring=rotated, associated_data=ADDRESS)[0] == "json"
    new = encrypted(key=rotated.primary)
    assert new.key_id == "kid1"
    assert new.blob[5:10] == b"\x04kid1"
    assert codec.decode_payload(new.blob, keyring=rotated, associated_data=ADDRESS)[0] == "json"
    # Before the rotation the old ring cannot read the new key's values.
    with pytest.raises(DecryptionFailed, match="kid1"):
        codec.decode_payload(new.blob, keyring=KeyRing((KID0,)), associated_data=ADDRESS)


def test_unknown_key_id_fails() -> None:
    blob = encrypted().blob
    for keyring in (KeyRing((KID0,)), KeyRing(), None):
        with pytest.raises(DecryptionFailed, match="not in the key ring"):
            codec.decode_payload(blob, keyring=keyring, associated_data=ADDRESS)


def test_same_key_id_with_other_secret_fails() -> None:
    impostor = KeyRing((EncryptionKey("kid1", b"\x07" * 32),))
    with pytest.raises(DecryptionFailed):
        codec.decode_payload(encrypted().blob, keyring=impostor, associated_data=ADDRESS)


def test_unencrypted_blobs_ignore_the_key_ring_and_associated_data() -> None:
    blob = codec.encode(VALUE, "json").blob
    assert codec.decode_payload(blob, keyring=RING, associated_data=b"anything")[0] == "json"


def test_longest_key_id_fits() -> None:
    key = EncryptionKey("k" * 32, b"s" * 32)
    blob = codec.encode(VALUE, "json", encryption=Encryption(key, ADDRESS)).blob
    assert blob[5] == 32
    assert codec.decode_payload(blob, keyring=KeyRing((key,)), associated_data=ADDRESS)[0] == "json"


def test_secret_is_not_in_repr() -> None:
    assert repr(KID0) == "EncryptionKey(key_id='kid0')"
    assert repr(KID0.secret) not in repr(RING)
    assert repr(KID1.secret) not in repr(RING)


# KeyRing.parse: the CACHE_ENCRYPTION_KEYS format.


def test_parse_reads_keys_in_order() -> None:
    ring = KeyRing.parse(f" {text_of(KID1)} , {text_of(KID0)},")
    assert ring.keys == (KID1, KID0)
    assert ring.primary == KID1
    assert ring.find("kid0") == KID0
    assert ring.find("kid9") is None
    assert len(ring) == 2


def test_parse_accepts_url_safe_base64() -> None:
    secret = b"\xfb\xff" * 16
    text = "k:" + base64.urlsafe_b64encode(secret).decode()
    assert KeyRing.parse(text).primary.secret == secret


@pytest.mark.parametrize("text", [None, "", "  ", ","])
def test_parse_empty_text_is_an_empty_ring(text: str | None) -> None:
    ring = KeyRing.parse(text)
    assert ring.keys == ()
    assert ring.find("kid1") is None
    with pytest.raises(ConfigError, match="empty"):
        _ = ring.primary


SECRET = base64.b64encode(b"s" * 32).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kid1", "entry 1 must look like <key id>:<base64"),
        (f"kid1:{SECRET},kid0", "entry 2 must look like"),
        (f":{SECRET}", "entry 1 must look like"),
        ("kid1:", "entry 1 must look like"),
        ("kid1:not base64!", r"entry 1 \('kid1'\) is not valid base64"),
        (f"kid1:{base64.b64encode(b's' * 16).decode()}", "must be 32 bytes, got 16"),
        (f"kid1:{base64.b64encode(b's' * 33).decode()}", "must be 32 bytes, got 33"),
        (f"kid1:{SECRET},kid1:{SECRET}", "'kid1' appears more than once"),
        (f"{'k' * 33}:{SECRET}", "must be 1-32 characters"),
        (f"kid 1:{SECRET}", "must be 1-32 characters"),
        (f"kïd:{SECRET}", "must be 1-32 characters"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        KeyRing.parse(text)
    assert "CACHE_ENCRYPTION_KEYS" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_constructed_keys_are_validated() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        EncryptionKey("kid", b"short")
    with pytest.raises(ConfigError, match="more than once"):
        KeyRing((KID0, KID0))


def test_settings_read_the_variable() -> None:
    assert Settings.from_env({}).encryption_keys is None
    text = f"{text_of(KID1)},{text_of(KID0)}"
    settings = Settings.from_env({"CACHE_ENCRYPTION_KEYS": text})
    assert settings.encryption_keys == text
    assert KeyRing.parse(settings.encryption_keys).keys == (KID1, KID0)
