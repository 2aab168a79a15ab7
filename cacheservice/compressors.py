"""Compression of stored payloads: zlib ("gzip"), lz4 frames, zstd, and zstd with a dictionary
trained on a namespace's own values.

``cacheservice/codec.py`` records in each value's header what was applied, so the settings here
only ever affect new values.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type information.
import zstandard

ALGORITHMS = ("none", "gzip", "lz4", "zstd")
DEFAULT_LEVELS = {"gzip": 6, "lz4": 0, "zstd": 3}
LEVEL_RANGES = {"gzip": (0, 9), "lz4": (0, 16), "zstd": (-7, 22)}
MAX_DICTIONARY_ID = 0xFFFF
# Below these a dictionary is not worth having, and zstd's trainer (1.5.7 through zstandard
# 0.25) crashes the process with SIGSEGV/SIGFPE on sample sets of about 10 bytes in total.
MIN_TRAINING_SAMPLES = 8
MIN_TRAINING_BYTES = 1024
MIN_DICTIONARY_BYTES = 256
# The decompressed size no stored value exceeds unless the deployment accepts larger bodies
# (a value comes in a body; CACHE_MAX_BODY_BYTES is 8 MiB by default): the cache reads with
# max(this, CACHE_MAX_BODY_BYTES). The bound keeps a damaged or forged frame in Redis, which
# may claim any size in its header, from making a worker allocate gigabytes.
DEFAULT_DECOMPRESSION_LIMIT = 64 * 1024 * 1024


class DecompressionError(ValueError):
    """A compressed body that does not decompress."""


@dataclass(frozen=True)
class Dictionary:
    """A zstd dictionary; its id goes into the header of every value compressed with it."""

    dictionary_id: int
    data: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.dictionary_id <= MAX_DICTIONARY_ID:
            raise ValueError(
                f"dictionary_id must be 1-{MAX_DICTIONARY_ID}, got {self.dictionary_id}"
            )
        if not self.data:
            raise ValueError("a dictionary cannot be empty")


@dataclass(frozen=True)
class Compression:
    """How new values are compressed. Payloads under ``min_bytes`` are stored as they are."""

    algorithm: str = "none"
    level: int | None = None
    min_bytes: int = 256
    dictionary: Dictionary | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"compression algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.min_bytes < 0:
            raise ValueError("min_bytes cannot be negative")
        if self.level is not None:
            if self.algorithm == "none":
                raise ValueError("a compression level needs an algorithm")
            low, high = LEVEL_RANGES[self.algorithm]
            if not low <= self.level <= high:
                raise ValueError(f"{self.algorithm} level must be {low}..{high}")
        if self.dictionary is not None and self.algorithm != "zstd":
            raise ValueError("only zstd compresses with a dictionary")


NO_COMPRESSION = Compression()

# zstd contexts are costly to build (a dictionary is digested each time) and must not be used
# by two threads at once, so each thread keeps its own, keyed by level and dictionary bytes.
_contexts = threading.local()
_MAX_CACHED_CONTEXTS = 64


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    cache: dict[tuple[Any, ...], Any] | None = getattr(_contexts, "cache", None)
    if cache is None:
        cache = _contexts.cache = {}
    context = cache.get(key)
    if context is None:
        if len(cache) >= _MAX_CACHED_CONTEXTS:
            cache.clear()
        context = cache[key] = build()
    return context


def _zstd_compressor(level: int, dictionary: bytes | None) -> zstandard.ZstdCompressor:
    def build() -> zstandard.ZstdCompressor:
        # The frame keeps the dictionary's own (content-derived) id as well as the header's
        # 16-bit one: 4 bytes that make zstd refuse a wrong dictionary instead of returning
        # garbage, should a dictionary id ever be reused.
        return zstandard.ZstdCompressor(
            level=level,
            dict_data=zstandard.ZstdCompressionDict(dictionary) if dictionary else None,
            write_checksum=False,
            write_content_size=True,
            write_dict_id=dictionary is not None,
        )

    compressor: zstandard.ZstdCompressor = _cached(("compress", level, dictionary), build)
    return compressor


def _zstd_decompressor(dictionary: bytes | None) -> zstandard.ZstdDecompressor:
    def build() -> zstandard.ZstdDecompressor:
        return zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(dictionary) if dictionary else None
        )

    decompressor: zstandard.ZstdDecompressor = _cached(("decompress", dictionary), build)
    return decompressor


def compress(payload: bytes, compression: Compression) -> tuple[bytes, str, int]:
    """The body, what was applied (none, gzip, lz4, zstd, zstd+dict) and the dictionary id.

    Short payloads, and payloads that compression does not make smaller, stay as they are.
    """
    algorithm = compression.algorithm
    if algorithm == "none" or len(payload) < compression.min_bytes:
        return payload, "none", 0
    level = DEFAULT_LEVELS[algorithm] if compression.level is None else compression.level
    dictionary_id = 0
    if algorithm == "gzip":
        compressed = zlib.compress(payload, level)
        applied = "gzip"
    elif algorithm == "lz4":
        compressed = lz4.frame.compress(payload, compression_level=level)
        applied = "lz4"
    elif compression.dictionary is None:
        compressed = _zstd_compressor(level, None).compress(payload)
        applied = "zstd"
    else:
        dictionary = compression.dictionary
        compressed = _zstd_compressor(level, dictionary.data).compress(payload)
        applied, dictionary_id = "zstd+dict", dictionary.dictionary_id
    if len(compressed) >= len(payload):
        return payload, "none", 0
    return compressed, applied, dictionary_id


def _gunzip(body: bytes, limit: int) -> bytes:
    stream = zlib.decompressobj()
    plain = stream.decompress(body, limit + 1)
    if len(plain) > limit or stream.unconsumed_tail:
        raise DecompressionError(f"gzip body decompresses to more than {limit} bytes")
    if not stream.eof:
        raise DecompressionError("gzip body does not decompress: truncated stream")
    return plain


def _lz4_decompress(body: bytes, limit: int) -> bytes:
    stream = lz4.frame.LZ4FrameDecompressor()
    plain: bytes = stream.decompress(body, max_length=limit + 1)
    if len(plain) > limit:
        raise DecompressionError(f"lz4 body decompresses to more than {limit} bytes")
    if not stream.eof:
        raise DecompressionError("lz4 body does not decompress: truncated frame")
    return plain


def _zstd_decompress(body: bytes, dictionary: bytes | None, limit: int) -> bytes:
    # zstd allocates the size the frame header states up front: check it before trusting it.
    # This service always writes the size (write_content_size), and with it zstd also refuses
    # a truncated frame; a frame without one was not written here.
    claimed = zstandard.frame_content_size(body)
    if claimed < 0:
        raise DecompressionError("zstd body does not state its size")
    if claimed > limit:
        raise DecompressionError(f"zstd body claims {claimed} bytes, more than {limit}")
    plain: bytes = _zstd_decompressor(dictionary).decompress(body)
    return plain


def decompress(
    body: bytes,
    applied: str,
    dictionary: bytes | None = None,
    limit: int = DEFAULT_DECOMPRESSION_LIMIT,
) -> bytes:
    """Undo ``compress``; ``dictionary`` is needed for ``zstd+dict``. Raises
    ``DecompressionError`` for a damaged body and for one that would exceed ``limit`` bytes."""
    try:
        if applied == "none":
            return body
        if applied == "gzip":
            return _gunzip(body, limit)
        if applied == "lz4":
            return _lz4_decompress(body, limit)
        if applied == "zstd":
            return _zstd_decompress(body, None, limit)
        if applied == "zstd+dict" and dictionary:
            return _zstd_decompress(body, dictionary, limit)
    except (zlib.error, zstandard.ZstdError, RuntimeError) as error:
        # lz4 reports a damaged frame as RuntimeError.
        raise DecompressionError(f"{applied} body does not decompress: {error}") from None
    raise DecompressionError(f"cannot decompress {applied!r} without a dictionary")


def train_dictionary(samples: Sequence[bytes], size: int = 16 * 1024) -> bytes:
    """A zstd dictionary of at most ``size`` bytes trained on sample payloads of a namespace.

    Raises ``ValueError`` when the samples are too few or too small to train on.
    """
    if size < MIN_DICTIONARY_BYTES:
        raise ValueError(f"a dictionary needs at least {MIN_DICTIONARY_BYTES} bytes")
    training: list[bytes | bytearray | memoryview] = [bytes(sample) for sample in samples if sample]
    if len(training) < MIN_TRAINING_SAMPLES:
        raise ValueError(
            f"training a dictionary needs at least {MIN_TRAINING_SAMPLES} non-empty samples, "
            f"got {len(training)}"
        )
    total = sum(len(sample) for sample in training)
    if total < MIN_TRAINING_BYTES:
        raise ValueError(
            f"training a dictionary needs at least {MIN_TRAINING_BYTES} bytes of samples, "
            f"got {total}"
        )
    try:
        trained = zstandard.train_dictionary(size, training)
    except zstandard.ZstdError as error:
        raise ValueError(
            f"could not train a {size}-byte dictionary from {len(training)} samples "
            f"({total} bytes): {error}; more or larger samples are needed"
        ) from None
    return trained.as_bytes()
