"""``/cache`` and ``/cache/{key}``: read, write and delete one entry (seed endpoints 1-3)."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from cacheservice.api.access import folded_limit_check
from cacheservice.api.parser import Blueprint
from cacheservice.api.render import entry_body, json_response
from cacheservice.cache import EntryWrite
from cacheservice.services import cache
from cacheservice.timefmt import format_ms
from schemas.common import ErrorSchema, NamespaceQuerySchema
from schemas.entries import (
    DeleteEntryResultSchema,
    EntrySchema,
    GetEntryQuerySchema,
    SetEntryBodySchema,
    SetEntryResultSchema,
)

blp = Blueprint(
    "entries", __name__, url_prefix="/cache", description="Read, write and delete entries."
)


def entry_write(fields: dict[str, Any]) -> EntryWrite:
    return EntryWrite(
        key=fields["key"],
        value=fields["value"],
        ttl=fields.get("ttl"),
        expires_at=fields.get("expires_at"),
        tags=fields.get("tags", ()),
        value_type=fields.get("type", "json"),
    )


@blp.route("")
class Entries(MethodView):
    @blp.arguments(SetEntryBodySchema)
    @blp.response(201, SetEntryResultSchema, description="Created a new entry.")
    @blp.alt_response(200, schema=SetEntryResultSchema, description="Replaced an existing entry.")
    @blp.alt_response(409, schema=ErrorSchema, description="Exists and `overwrite` is false.")
    @blp.alt_response(413, schema=ErrorSchema, description="The value is too large.")
    def post(self, body: dict[str, Any]) -> Response:
        """Set a cache entry

        `ttl` and `expires_at` are exclusive; with neither, the default TTL applies.
        Replacing an entry replaces its tags.
        """
        namespace = body["namespace"]
        written = cache().write(
            namespace, entry_write(body), overwrite=body["overwrite"], guard=folded_limit_check()
        )
        return json_response(
            {
                "key": written.entry.key,
                "namespace": namespace,
                "ttl": written.entry.ttl,
                "created": written.outcome.created,
                "created_at": format_ms(written.outcome.created_ms),
                "expires_at": format_ms(written.entry.expires_ms),
            },
            status=201 if written.outcome.created else 200,
        )


@blp.route("/<path:key>")
class Entry(MethodView):
    @blp.arguments(GetEntryQuerySchema, location="query")
    @blp.response(200, EntrySchema, description="The entry; metadata with `include_metadata`.")
    @blp.alt_response(304, description="`If-None-Match` matched the entry's ETag.")
    @blp.alt_response(404, schema=ErrorSchema, description="No such key.")
    def get(self, query: dict[str, Any], key: str) -> Response:
        """Get a cache entry

        Every read counts as a hit. The `ETag` is a hash of the stored value, so it changes
        when the value does; `If-None-Match` with it answers 304.
        """
        namespace = query["namespace"]
        entry, now = cache().read(namespace, key, guard=folded_limit_check())
        etag = f'"{entry.etag}"'
        # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
        if request.if_none_match.contains_weak(entry.etag):
            return Response(status=304, headers={"ETag": etag})
        body = entry_body(namespace, entry, query["include_metadata"], now)
        return json_response(body, headers={"ETag": etag})

    @blp.arguments(NamespaceQuerySchema, location="query")
    @blp.response(200, DeleteEntryResultSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such key.")
    def delete(self, query: dict[str, Any], key: str) -> Response:
        """Delete a cache entry"""
        namespace = query["namespace"]
        deleted_at = cache().delete(namespace, key, guard=folded_limit_check())
        return json_response(
            {
                "key": key,
                "namespace": namespace,
                "deleted": True,
                "deleted_at": format_ms(deleted_at),
            }
        )
