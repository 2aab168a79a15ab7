"""Request parsing: the contract's 400 (not webargs' 422), and JSON read the service's way."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from flask import g, request
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from cacheservice.errors import InvalidRequest
from cacheservice.jsonio import loads_request
from cacheservice.services import services


def request_json() -> Any:
    """The request's JSON body, parsed once (access control and the argument parser share it).

    ``None`` when the body is empty; the contract's 400 when it is not JSON or too deep, and
    413 when it is too large.
    """
    if "json_body" in g:
        return g.json_body
    data = read_body(request)
    if not data:
        g.json_body = None
    elif not is_json_request(request):
        raise InvalidRequest(
            "Request body must be JSON",
            content_type=request.mimetype or None,
            expected="application/json",
        )
    else:
        g.json_body = loads_request(data, services().settings.max_json_depth)
    return g.json_body


def read_body(req: flask.Request) -> bytes:
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
    return data


class RequestParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: flask.Request, schema: ma.Schema) -> Any:  # noqa: ARG002  # in flight
        """The JSON body; every operation that takes one requires it (the OpenAPI document says
        ``required: true``).

        A missing body would otherwise read as ``{}``: for ``POST /cache/invalidate`` that is
        "empty the default namespace", for ``PUT /namespaces/{ns}`` "reset to the defaults".
        Where the schema has required fields, their own messages name them instead.
        """
        body = request_json()
        if body is not None:
            return body
        if not any(field.required for field in schema.fields.values()):
            raise InvalidRequest(
                "Request body is required", body="missing", expected="application/json"
            )
        return missing


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    ARGUMENTS_PARSER = RequestParser()
