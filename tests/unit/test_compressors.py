"""Decompression is bounded: a damaged or forged body in Redis cannot make a process allocate
more than the limit, whatever its header claims."""

from __future__ import annotations

import io
import zlib

import lz4.frame  # type: ignore[import-untyped]
import pytest
import zstandard

from cacheservice import codec
from cacheservice.compressors import DecompressionError, decompress

MIB = 1024 * 1024
BOMB = b"\0" * (10 * MIB)  # Compresses to a few KiB with every algorithm.

COMPRESSED = {
    "gzip": zlib.compress(BOMB, 9),
    "lz4": lz4.frame.compress(BOMB),
    "zstd": zstandard.ZstdCompressor().compress(BOMB),
}


@pytest.mark.parametrize("algorithm", sorted(COMPRESSED))
def test_a_body_over_the_limit_is_refused(algorithm: str) -> None:
    body = COMPRESSED[algorithm]
    assert len(body) < 64 * 1024
    with pytest.raises(DecompressionError, match="more than"):
        decompress(body, algorithm, limit=MIB)


@pytest.mark.parametrize("algorithm", sorted(COMPRESSED))
def test_a_body_at_the_limit_decompresses_exactly(algorithm: str) -> None:
    assert decompress(COMPRESSED[algorithm], algorithm, limit=len(BOMB)) == BOMB


def test_a_zstd_frame_without_its_size_is_refused() -> None:
    # The service always writes the size; without it the output could only be bounded by
    # streaming, which does not notice a truncated frame.
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"abc" * 1000)
    with pytest.raises(DecompressionError, match="does not state its size"):
        decompress(unsized, "zstd")


def test_a_zstd_header_claiming_a_terabyte_is_refused_before_allocating() -> None:
    buffer = io.BytesIO()
    writer = zstandard.ZstdCompressor().stream_writer(buffer, size=2**40, closefd=False)
    writer.write(b"x" * 100)
    writer.flush(zstandard.FLUSH_BLOCK)
    forged = buffer.getvalue()
    assert zstandard.frame_content_size(forged) == 2**40
    with pytest.raises(DecompressionError, match="claims 1099511627776 bytes"):
        decompress(forged, "zstd")


@pytest.mark.parametrize("algorithm", sorted(COMPRESSED))
def test_a_truncated_stream_is_refused(algorithm: str) -> None:
    body = COMPRESSED[algorithm]
    with pytest.raises(DecompressionError):
        decompress(body[: len(body) // 2], algorithm, limit=len(BOMB))


def test_the_codec_reads_with_the_limit_it_is_given() -> None:
    encoded = codec.encode("x" * (3 * MIB), "string", codec.Compression("zstd"))
    assert encoded.compression == "zstd"
    with pytest.raises(codec.CorruptValue, match="more than"):
        codec.decode_payload(encoded.blob, limit=MIB)
    assert codec.decode_payload(encoded.blob, limit=3 * MIB) == ("string", b"x" * (3 * MIB))
