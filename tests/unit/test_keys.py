"""Redis key names: one hash slot per bucket of a namespace."""

from __future__ import annotations

import zlib

import pytest
from redis.crc import key_slot

from cacheservice.store.keys import Bucket, KeySpace, bucket_of


def slot(name: str) -> int:
    return key_slot(name.encode("utf-8"))


def test_bucket_names() -> None:
    bucket = Bucket("users", 3)
    assert bucket.prefix == "cs:{users:3}:"
    assert bucket.entry("user:1") == "cs:{users:3}:e:user:1"
    assert bucket.tag("profile") == "cs:{users:3}:t:profile"
    assert bucket.index == "cs:{users:3}:idx"
    assert bucket.pending_hits == "cs:{users:3}:fh"
    assert bucket.pending_access == "cs:{users:3}:fa"
    assert bucket.pending_metadata == "cs:{users:3}:fm"


def test_bucket_of_is_crc32_modulo_buckets() -> None:
    assert bucket_of("user:1", 16) == zlib.crc32(b"user:1") % 16
    assert bucket_of("ключ", 7) == zlib.crc32("ключ".encode()) % 7
    assert all(0 <= bucket_of(f"k{i}", 16) < 16 for i in range(200))
    # The keys spread over every bucket rather than piling into one.
    assert {bucket_of(f"k{i}", 16) for i in range(200)} == set(range(16))


@pytest.mark.parametrize("key", ["user:1", "a/b", "ключ", "{other}", "x}y{z", "e:}{", "🙂" * 62])
def test_entry_tag_index_and_pending_keys_share_one_slot(key: str) -> None:
    keyspace = KeySpace(16)
    bucket = keyspace.bucket("users", key)
    assert bucket == Bucket("users", bucket_of(key, 16))
    names = [
        bucket.entry(key),
        bucket.tag("profile"),
        bucket.tag("user"),
        bucket.index,
        bucket.pending_hits,
        bucket.pending_access,
        bucket.pending_metadata,
    ]
    assert {slot(name) for name in names} == {slot(f"{{users:{bucket.number}}}")}


def test_same_key_lands_in_the_same_bucket_number_in_every_namespace() -> None:
    keyspace = KeySpace(16)
    assert keyspace.bucket("a", "k").number == keyspace.bucket("b", "k").number
    assert keyspace.bucket("a", "k").prefix != keyspace.bucket("b", "k").prefix


def test_all_buckets_covers_every_bucket_of_the_namespace() -> None:
    buckets = KeySpace(16).all_buckets("users")
    assert [bucket.number for bucket in buckets] == list(range(16))
    assert {bucket.namespace for bucket in buckets} == {"users"}
    # Buckets spread a namespace over many hash slots.
    assert len({slot(bucket.index) for bucket in buckets}) > 1


def test_namespaces_do_not_share_names() -> None:
    assert Bucket("users", 1).prefix != Bucket("users1", 1).prefix
    assert Bucket("a", 11).prefix != Bucket("a1", 1).prefix
