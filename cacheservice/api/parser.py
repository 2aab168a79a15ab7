"""Request parsing: the contract's 400 (not webargs' 422), and JSON read the service's way."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from cacheservice.errors import InvalidRequest
from cacheservice.jsonio import loads_request
from cacheservice.services import services


class RequestParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: flask.Request) -> Any:
        data = req.get_data(cache=True)
        # Werkzeug stops reading a body without Content-Length (chunked) at the limit and
        # returns what it read, silently cut; a byte left unread means the body was too large.
        limit = req.max_content_length
        if (
            req.content_length is None
            and limit is not None
            and len(data) >= limit
            and req.environ["wsgi.input"].read(1)
        ):
            raise RequestEntityTooLarge()
        if not data:
            return missing
        if not is_json_request(req):
            raise InvalidRequest(
                "Request body must be JSON",
                content_type=req.mimetype or None,
                expected="application/json",
            )
        return loads_request(data, services().settings.max_json_depth)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    ARGUMENTS_PARSER = RequestParser()
