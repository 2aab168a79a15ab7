"""Training a namespace's zstd dictionary from a random sample of its stored values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cacheservice import codec
from cacheservice.cache import associated_data
from cacheservice.errors import InvalidRequest
from cacheservice.timefmt import format_ms

if TYPE_CHECKING:
    from cacheservice.services import Services

SAMPLE_KEYS_PER_BUCKET = 64
DICTIONARY_BYTES = 16 * 1024


def sample_payloads(services: Services, namespace: str) -> list[bytes]:
    """Plain payloads of up to 64 random entries per bucket (json, string and binary)."""
    client, keyspace, cache = services.redis, services.keyspace, services.cache
    samples: list[bytes] = []
    for bucket in keyspace.all_buckets(namespace):
        members = client.zrandmember(bucket.index, SAMPLE_KEYS_PER_BUCKET) or []
        keys = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        if not keys:
            continue
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(bucket.entry(key), "v")
        for key, blob in zip(keys, pipe.execute(), strict=True):
            if not blob:
                continue
            try:
                _, payload = codec.decode_payload(
                    blob,
                    keyring=cache.keyring,
                    dictionaries=services.namespaces.dictionary,
                    associated_data=associated_data(namespace, key),
                )
            except codec.CorruptValue:
                continue
            samples.append(payload)
    return samples


def train_namespace_dictionary(services: Services, namespace: str) -> dict[str, Any]:
    if services.namespaces.config(namespace).encryption_enabled:
        # A dictionary is built from plaintext and stored unencrypted: it would leak values.
        raise InvalidRequest(
            "Dictionaries cannot be trained on an encrypted namespace", namespace=namespace
        )
    samples = sample_payloads(services, namespace)
    try:
        data = codec.train_dictionary(samples, DICTIONARY_BYTES)
    except ValueError as error:
        raise InvalidRequest(
            "Not enough values to train a dictionary", namespace=namespace, issue=str(error)
        ) from None
    dictionary_id, created_at = services.namespaces.add_dictionary(namespace, data, len(samples))
    return {
        "namespace": namespace,
        "dictionary_id": dictionary_id,
        "samples": len(samples),
        "size_bytes": len(data),
        "created_at": format_ms(int(created_at.timestamp() * 1000)),
    }
