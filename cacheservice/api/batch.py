"""``/cache/batch`` and ``/cache/batch-set``: many entries in one request and one round trip."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from cacheservice.api.entries import entry_write
from cacheservice.api.parser import Blueprint
from cacheservice.api.render import batch_item_body, entry_body, json_response
from cacheservice.cache import EntryWrite, WriteFailure, Written
from cacheservice.errors import InvalidKey, InvalidRequest, ServiceError
from cacheservice.services import cache
from schemas.batch import (
    BatchGetBodySchema,
    BatchGetResultSchema,
    BatchSetBodySchema,
    BatchSetResultSchema,
    RejectedItem,
)
from schemas.common import ErrorSchema

blp = Blueprint("batch", __name__, url_prefix="/cache", description="Batch reads and writes.")


def rejected_item_failure(item: RejectedItem) -> WriteFailure:
    """The error a batch-set item that failed validation reports in place of being stored."""
    raw_key = item.raw.get("key") if isinstance(item.raw, dict) else None
    key = raw_key if isinstance(raw_key, str) else None
    messages = item.messages if isinstance(item.messages, dict) else {"_schema": item.messages}
    error: ServiceError
    if key is not None and set(messages) == {"key"}:
        error = InvalidKey(key=key, issue="; ".join(map(str, messages["key"])))
    else:
        error = InvalidRequest("Entry validation failed", **messages)
    return WriteFailure(key, error)


@blp.route("/batch")
class BatchGet(MethodView):
    @blp.arguments(BatchGetBodySchema())
    @blp.response(200, BatchGetResultSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="An invalid key (`details.index`).")
    def post(self, body: dict[str, Any]) -> Response:
        """Get multiple cache entries

        Duplicate keys are collapsed; `entries` and `missing_keys` keep request order, and
        `total_requested` counts distinct keys. Found entries count as hits.
        """
        namespace = body["namespace"]
        include_metadata = body["include_metadata"]
        keys, found = cache().read_many(namespace, body["keys"], with_metadata=include_metadata)
        return json_response(
            {
                "entries": [
                    entry_body(namespace, found[key], include_metadata)
                    for key in keys
                    if key in found
                ],
                "missing_keys": [key for key in keys if key not in found],
                "total_requested": len(keys),
                "total_found": len(found),
            }
        )


@blp.route("/batch-set")
class BatchSet(MethodView):
    @blp.arguments(BatchSetBodySchema())
    @blp.response(200, BatchSetResultSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Set multiple cache entries

        Each item fails alone (invalid, too large, or exists with `overwrite: false`): it is
        listed with `created: false` and an `error`, and the others are stored.
        """
        items: list[EntryWrite | WriteFailure] = [
            rejected_item_failure(item) if isinstance(item, RejectedItem) else entry_write(item)
            for item in body["entries"]
        ]
        results = cache().write_many(body["namespace"], items, overwrite=body["overwrite"])
        written = [result for result in results if isinstance(result, Written)]
        created = sum(1 for result in written if result.outcome.created)
        return json_response(
            {
                "entries": [batch_item_body(result) for result in results],
                "total_created": created,
                "total_updated": len(written) - created,
                "total_failed": len(results) - len(written),
            }
        )
