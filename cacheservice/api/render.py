"""Turning results into the contract's JSON bodies, written with orjson.

Views return ``Response`` objects built here: flask-smorest passes them through unchanged, so
the response schemas document the shapes without marshmallow re-serialising every body.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from flask import Response

from cacheservice.cache import Read, WriteFailure, Written
from cacheservice.jsonio import dumps_response
from cacheservice.store.entries import StoredEntry
from cacheservice.timefmt import format_ms


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps_response(body), status=status, headers=headers, mimetype="application/json"
    )


def json_value(read: Read) -> Any:
    """The value as the JSON body carries it; stored JSON text is embedded unchanged."""
    entry = read.entry
    if entry.value_type == "json":
        return orjson.Fragment(read.payload)
    if entry.value_type == "string":
        return read.payload.decode("utf-8")
    if entry.value_type == "binary":
        return base64.b64encode(read.payload).decode("ascii")
    if entry.value_type == "list":
        return [orjson.Fragment(item) for item in entry.items]
    return sorted(item.decode("utf-8") for item in entry.items)


def entry_body(namespace: str, read: Read, include_metadata: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": read.entry.key,
        "value": json_value(read),
        "namespace": namespace,
    }
    if include_metadata:
        body.update(metadata_body(read.entry, read.now_ms))
    return body


def metadata_body(entry: StoredEntry, now_ms: int) -> dict[str, Any]:
    """The entry's metadata fields (``include_metadata``, and PATCH's answer)."""
    remaining = None
    if entry.expires_ms is not None:
        remaining = max(0, (entry.expires_ms - now_ms) // 1000)
    body: dict[str, Any] = {
        "type": entry.value_type,
        "ttl": entry.ttl,
        "ttl_remaining": remaining,
        "created_at": format_ms(entry.created_ms),
        "updated_at": format_ms(entry.updated_ms),
        "expires_at": format_ms(entry.expires_ms),
        "hit_count": entry.hit_count,
        "last_accessed": format_ms(entry.last_access_ms),
        "tags": list(entry.tags),
        "size_bytes": entry.raw_bytes,
        "stored_bytes": entry.stored_bytes,
        "compression": entry.compression,
        "sliding": entry.sliding,
    }
    if entry.length is not None:
        body["length"] = entry.length
    return body


def written_body(written: Written) -> dict[str, Any]:
    return {
        "key": written.entry.key,
        "created": written.outcome.created,
        "created_at": format_ms(written.outcome.created_ms),
        "expires_at": format_ms(written.entry.expires_ms),
    }


def batch_item_body(result: Written | WriteFailure) -> dict[str, Any]:
    if isinstance(result, Written):
        return written_body(result)
    return {"key": result.key, "created": False, "error": result.error.to_body()}
