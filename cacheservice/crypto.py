"""Encryption keys for stored values: AES-256-GCM with a key ring that allows rotation.

``CACHE_ENCRYPTION_KEYS`` holds ``kid1:<base64 32 bytes>,kid0:<base64 32 bytes>``. The first key
encrypts new values; every key in the ring decrypts, so a key is retired by moving it off the
front, waiting until entries written with it have expired, and only then removing it.

The codec (``cacheservice/codec.py``) writes the key id into each value's header and calls
``seal``/``unseal`` here; nothing in this module knows about headers or Redis.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cacheservice.config import ConfigError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 32

# Key ids land in every encrypted value's header and in configuration text split on ``,`` and
# ``:``, so they are short and plain.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    # The secret never appears in a repr, so a logged key ring does not leak it.
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise ConfigError(
                f"encryption key id {self.key_id!r} must be 1-{MAX_KEY_ID_BYTES} characters "
                "of A-Z, a-z, 0-9, '.', '_' or '-'"
            )
        if len(self.secret) != KEY_BYTES:
            raise ConfigError(
                f"encryption key {self.key_id!r} must be {KEY_BYTES} bytes, got {len(self.secret)}"
            )

    @cached_property
    def _cipher(self) -> AESGCM:
        return AESGCM(self.secret)

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """A fresh random 96-bit nonce followed by the ciphertext and its tag."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._cipher.encrypt(nonce, plaintext, associated_data)

    def unseal(self, sealed: bytes, associated_data: bytes) -> bytes:
        """The plaintext of ``seal``'s output; raises ``cryptography.exceptions.InvalidTag``."""
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return self._cipher.decrypt(nonce, ciphertext, associated_data)


@dataclass(frozen=True)
class Encryption:
    """How ``codec.encode`` encrypts one value: the key, and the bytes the value is bound to.

    ``associated_data`` is authenticated but not stored; decoding must pass the same bytes
    (the store passes ``namespace + b"\\0" + key``), so a value copied under another key or
    namespace fails to decrypt.
    """

    key: EncryptionKey
    associated_data: bytes


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[EncryptionKey, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for key in self.keys:
            if key.key_id in seen:
                raise ConfigError(f"encryption key id {key.key_id!r} appears more than once")
            seen.add(key.key_id)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def primary(self) -> EncryptionKey:
        """The key new values are encrypted with."""
        if not self.keys:
            raise ConfigError("CACHE_ENCRYPTION_KEYS is empty, so nothing can be encrypted")
        return self.keys[0]

    def find(self, key_id: str) -> EncryptionKey | None:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        return None

    @classmethod
    def parse(cls, text: str | None) -> KeyRing:
        """Read ``kid1:<base64 32 bytes>,kid0:<base64 32 bytes>``; empty text is an empty ring.

        Error messages name the entry but never echo secret material.
        """
        keys = []
        for position, entry in enumerate((text or "").split(","), start=1):
            entry = entry.strip()
            if not entry:
                continue
            key_id, separator, encoded = entry.partition(":")
            key_id, encoded = key_id.strip(), encoded.strip()
            if not separator or not key_id or not encoded:
                raise ConfigError(
                    f"CACHE_ENCRYPTION_KEYS entry {position} must look like "
                    "<key id>:<base64 of 32 bytes>"
                )
            try:
                # Both the standard and the URL-safe base64 alphabets are accepted.
                secret = base64.b64decode(
                    encoded.replace("-", "+").replace("_", "/"), validate=True
                )
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"CACHE_ENCRYPTION_KEYS entry {position} ({key_id!r}) is not valid base64"
                ) from None
            try:
                keys.append(EncryptionKey(key_id, secret))
            except ConfigError as error:
                raise ConfigError(f"CACHE_ENCRYPTION_KEYS entry {position}: {error}") from None
        try:
            return cls(tuple(keys))
        except ConfigError as error:
            raise ConfigError(f"CACHE_ENCRYPTION_KEYS: {error}") from None
