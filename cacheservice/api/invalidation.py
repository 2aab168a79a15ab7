"""``/cache/invalidate``: remove entries by tags, pattern, keys or whole namespace."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from cacheservice.api.parser import Blueprint
from cacheservice.api.render import json_response
from cacheservice.errors import InvalidRequest
from cacheservice.services import cache
from cacheservice.store.glob import GlobPattern, PatternError
from cacheservice.store.invalidation import Selection
from cacheservice.timefmt import format_ms
from schemas.common import ErrorSchema
from schemas.invalidation import MAX_LISTED_KEYS, InvalidateBodySchema, InvalidateResultSchema

blp = Blueprint("invalidation", __name__, url_prefix="/cache", description="Invalidate entries.")


def selection_of(body: dict[str, Any]) -> Selection:
    if "match" in body and "tags" not in body:
        # Otherwise {"match": "all"} would read as "no criteria" and empty the namespace.
        raise InvalidRequest("match applies to tags; give tags or leave match out", field="match")
    pattern = None
    if "pattern" in body:
        try:
            pattern = GlobPattern(body["pattern"])
        except PatternError as error:
            raise InvalidRequest(
                "Invalid pattern", pattern=body["pattern"], issue=str(error)
            ) from None
    keys = body.get("keys")
    return Selection(
        tags=tuple(dict.fromkeys(body.get("tags") or ())),
        match_all_tags=body.get("match") == "all",
        pattern=pattern,
        keys=tuple(keys) if keys is not None else None,
    )


@blp.route("/invalidate")
class Invalidate(MethodView):
    @blp.arguments(InvalidateBodySchema())
    @blp.response(200, InvalidateResultSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="Empty lists or an invalid pattern.")
    def post(self, body: dict[str, Any]) -> Response:
        """Invalidate cache entries

        `tags` (any, or all with `match: "all"`), `pattern` (a Redis-style glob over keys) and
        `keys` intersect when given together; a body with only `namespace` empties the
        namespace. At most 1000 keys are listed; `total_invalidated` is always exact.
        """
        result, finished = cache().invalidate(
            body["namespace"], selection_of(body), MAX_LISTED_KEYS
        )
        return json_response(
            {
                "invalidated_keys": result.keys,
                "total_invalidated": result.total,
                "truncated": result.truncated,
                "invalidated_at": format_ms(finished),
            }
        )
