"""``/cache`` and ``/cache/{key}``: read, write, change and delete one entry."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from cacheservice.api.access import folded_limit_check
from cacheservice.api.parser import Blueprint, read_body
from cacheservice.api.render import entry_body, json_response, metadata_body
from cacheservice.cache import EntryChange, EntryWrite, Written
from cacheservice.errors import InvalidRequest
from cacheservice.services import cache
from cacheservice.timefmt import format_ms
from schemas.common import KEY_DOC, ErrorSchema, NamespaceQuerySchema, path_parameter
from schemas.entries import (
    PATCH_OPERATIONS,
    DeleteEntryResultSchema,
    EntryMetadataSchema,
    EntrySchema,
    GetEntryQuerySchema,
    PatchEntryBodySchema,
    PutEntryQuerySchema,
    SetEntryBodySchema,
    SetEntryResultSchema,
)

blp = Blueprint(
    "entries", __name__, url_prefix="/cache", description="Read, write and delete entries."
)

RAW_TYPES = {"application/octet-stream": "binary", "text/plain": "string"}
RAW_BODY_DOC = {
    "required": True,
    "description": "The value itself: bytes for a binary entry, UTF-8 text for a string entry.",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}


def entry_write(fields: dict[str, Any]) -> EntryWrite:
    return EntryWrite(
        key=fields["key"],
        value=fields["value"],
        ttl=fields.get("ttl"),
        ttl_given="ttl" in fields,
        expires_at=fields.get("expires_at"),
        tags=fields.get("tags", ()),
        value_type=fields.get("type", "json"),
        sliding=fields.get("sliding", False),
    )


def written_response(namespace: str, written: Written) -> Response:
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


def wants_raw_bytes() -> bool:
    """True when the client prefers raw bytes to JSON (``Accept: application/octet-stream``)."""
    accept = request.accept_mimetypes
    return (
        accept.best_match(("application/json", "application/octet-stream"))
        == ("application/octet-stream")
        and accept["application/octet-stream"] > accept["application/json"]
    )


@blp.route("")
class Entries(MethodView):
    @blp.arguments(SetEntryBodySchema())
    @blp.response(201, SetEntryResultSchema, description="Created a new entry.")
    @blp.alt_response(200, schema=SetEntryResultSchema, description="Replaced an existing entry.")
    @blp.alt_response(409, schema=ErrorSchema, description="Exists and `overwrite` is false.")
    @blp.alt_response(413, schema=ErrorSchema, description="The value is too large.")
    def post(self, body: dict[str, Any]) -> Response:
        """Set a cache entry

        `ttl` and `expires_at` are exclusive; with neither, the namespace's default TTL
        applies; `ttl: null` stores without expiry where the namespace allows it. Replacing an
        entry replaces its tags.
        """
        namespace = body["namespace"]
        written = cache().write(
            namespace, entry_write(body), overwrite=body["overwrite"], guard=folded_limit_check()
        )
        return written_response(namespace, written)


KEY_PARAMETER = path_parameter(
    "key",
    {"type": "string", **{key: value for key, value in KEY_DOC.items() if key != "description"}},
    f"{KEY_DOC['description']} URL-encoded (`a%2Fb` for `a/b`).",
)


@blp.route("/<path:key>", parameters=[KEY_PARAMETER])
class Entry(MethodView):
    @blp.arguments(GetEntryQuerySchema(), location="query")
    @blp.response(200, EntrySchema, description="The entry; metadata with `include_metadata`.")
    @blp.alt_response(304, description="`If-None-Match` matched the entry's ETag.")
    @blp.alt_response(404, schema=ErrorSchema, description="No such key.")
    def get(self, query: dict[str, Any], key: str) -> Response:
        """Get a cache entry

        Every read counts as a hit (and slides the expiry of `sliding` entries and of
        namespaces with `refresh_ttl_on_access`). The `ETag` is a hash of the stored value, so
        it changes when the value does; `If-None-Match` with it answers 304. With `Accept:
        application/octet-stream`, a `binary` or `string` entry answers with its raw bytes.
        """
        namespace = query["namespace"]
        read = cache().read(
            namespace, key, guard=folded_limit_check(), with_metadata=query["include_metadata"]
        )
        etag = f'"{read.entry.etag}"'
        # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
        if request.if_none_match.contains_weak(read.entry.etag):
            return Response(status=304, headers={"ETag": etag})
        if read.entry.value_type in ("binary", "string") and wants_raw_bytes():
            mimetype = "application/octet-stream" if read.entry.value_type == "binary" else None
            return Response(
                read.payload,
                headers={"ETag": etag},
                mimetype=mimetype,
                content_type=None if mimetype else "text/plain; charset=utf-8",
            )
        body = entry_body(namespace, read, query["include_metadata"])
        return json_response(body, headers={"ETag": etag})

    @blp.arguments(PutEntryQuerySchema(), location="query")
    @blp.doc(requestBody=RAW_BODY_DOC)
    @blp.response(201, SetEntryResultSchema, description="Created a new entry.")
    @blp.alt_response(200, schema=SetEntryResultSchema, description="Replaced an existing entry.")
    @blp.alt_response(413, schema=ErrorSchema, description="The value is too large.")
    def put(self, query: dict[str, Any], key: str) -> Response:
        """Set a binary or string entry from the raw request body

        `Content-Type: application/octet-stream` stores a `binary` entry, `text/plain` a
        `string` entry (UTF-8), without base64. Options travel in the query string
        (`namespace`, `ttl`, `tags=a,b`, `overwrite`, `sliding`).
        """
        value_type = RAW_TYPES.get(request.mimetype)
        if value_type is None:
            raise InvalidRequest(
                "PUT takes a raw body: application/octet-stream or text/plain",
                content_type=request.mimetype or None,
            )
        data = read_body(request)
        value: Any = data
        if value_type == "string":
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest("A text/plain body must be UTF-8") from None
        write = EntryWrite(
            key=key,
            value=value,
            ttl=query.get("ttl"),
            ttl_given="ttl" in query,
            tags=query["tags"],
            value_type=value_type,
            sliding=query["sliding"],
        )
        namespace = query["namespace"]
        written = cache().write(
            namespace, write, overwrite=query["overwrite"], guard=folded_limit_check()
        )
        return written_response(namespace, written)

    @blp.arguments(NamespaceQuerySchema(), location="query")
    @blp.arguments(PatchEntryBodySchema())
    @blp.response(200, EntryMetadataSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such key.")
    def patch(self, query: dict[str, Any], body: dict[str, Any], key: str) -> Response:
        """Change an entry in place

        Exactly one of `ttl`, `expires_at`, `extend_by`, `persist` (where the namespace allows
        entries without expiry), `tags`; on list entries `append` / `prepend`, on set entries
        `add` / `remove`. Atomic in Redis: concurrent changes never lose each other. Returns
        the entry's metadata (without its value).
        """
        (operation,) = (name for name in PATCH_OPERATIONS if name in body)
        namespace = query["namespace"]
        entry, now = cache().patch(
            namespace, key, EntryChange(operation, body[operation]), guard=folded_limit_check()
        )
        return json_response({"key": key, "namespace": namespace, **metadata_body(entry, now)})

    @blp.arguments(NamespaceQuerySchema(), location="query")
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
