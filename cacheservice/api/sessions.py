"""``/sessions`` and ``/users/{user_id}/sessions``: durable user sessions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView

from cacheservice.api.access import folded_limit_check
from cacheservice.api.parser import Blueprint
from cacheservice.api.render import json_response
from cacheservice.errors import InvalidRequest
from cacheservice.services import services
from cacheservice.sessions import Session
from cacheservice.timefmt import format_ms, now_ms
from schemas.common import ErrorSchema, path_parameter
from schemas.sessions import (
    CreateSessionSchema,
    ReadSessionQuerySchema,
    SessionDeletedSchema,
    SessionSchema,
    SessionsRevokedSchema,
    UpdateSessionSchema,
    UserSessionsSchema,
)

blp = Blueprint("sessions", __name__, url_prefix="/sessions", description="User sessions.")
users_blp = Blueprint(
    "user_sessions", __name__, url_prefix="/users", description="A user's sessions."
)


def session_body(session: Session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "data": session.data,
        "ttl": session.ttl,
        "created_at": format_ms(session.created_ms),
        "expires_at": format_ms(session.expires_ms),
        "last_accessed": format_ms(session.last_access_ms),
    }


def checked_user(user_id: str) -> str:
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        raise InvalidRequest("user_id must be a UUID", user_id=user_id[:64]) from None


@blp.route("")
class SessionsView(MethodView):
    @blp.arguments(CreateSessionSchema())
    @blp.response(201, SessionSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Create a session

        Committed to Postgres before the answer (a Redis restart or flush loses no session);
        the id carries at least 128 random bits.
        """
        session = services().sessions.create(str(body["user_id"]), body["data"], body["ttl"])
        return json_response(session_body(session), status=201)


@blp.route("/<string:session_id>")
class SessionView(MethodView):
    @blp.arguments(ReadSessionQuerySchema(), location="query")
    @blp.response(200, SessionSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such live session.")
    def get(self, query: dict[str, Any], session_id: str) -> Response:
        """Get a session

        Extends the expiry by the session's `ttl` (sliding), unless `touch=false`. One Redis
        round trip; a session missing from Redis is read from Postgres and cached again.
        """
        session = services().sessions.get(session_id, query["touch"], folded_limit_check())
        return json_response(session_body(session))

    @blp.arguments(UpdateSessionSchema())
    @blp.response(200, SessionSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such live session.")
    def patch(self, body: dict[str, Any], session_id: str) -> Response:
        """Change a session

        `data` is merged into the stored data at the top level (keys given replace theirs,
        others stay); `ttl` sets a new ttl and restarts the expiry from now.
        """
        session = services().sessions.update(session_id, body.get("data"), body.get("ttl"))
        return json_response(session_body(session))

    @blp.response(200, SessionDeletedSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such live session.")
    def delete(self, session_id: str) -> Response:
        """Delete (revoke) a session"""
        services().sessions.delete(session_id)
        return json_response(
            {"session_id": session_id, "deleted": True, "deleted_at": format_ms(now_ms())}
        )


USER_PARAMETER = path_parameter(
    "user_id", {"type": "string", "format": "uuid"}, "The user (a UUID)."
)


@users_blp.route("/<string:user_id>/sessions", parameters=[USER_PARAMETER])
class UserSessionsView(MethodView):
    @users_blp.response(200, UserSessionsSchema)
    def get(self, user_id: str) -> Response:
        """List a user's live sessions"""
        user = checked_user(user_id)
        sessions = services().sessions.list_user(user)
        return json_response(
            {
                "user_id": user,
                "sessions": [session_body(session) for session in sessions],
                "total": len(sessions),
            }
        )

    @users_blp.response(200, SessionsRevokedSchema)
    def delete(self, user_id: str) -> Response:
        """Revoke every session of a user (Redis and Postgres); returns how many were live"""
        user = checked_user(user_id)
        revoked = services().sessions.revoke_user(user)
        return json_response(
            {"user_id": user, "revoked": revoked, "revoked_at": format_ms(now_ms())}
        )
