"""Tokens for tests, signed with the secret the test apps are configured with."""

from __future__ import annotations

import time
from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient

TEST_JWT_SECRET = "test-only-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only
ALL_SCOPES = "cache:admin stats:read sessions:write"


def make_token(
    sub: str = "tester",
    scope: str = ALL_SCOPES,
    ttl: int = 600,
    secret: str = TEST_JWT_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "scope": scope, "iat": now, "exp": now + ttl}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authorized_client(app: Flask, sub: str = "tester", scope: str = ALL_SCOPES) -> FlaskClient:
    """A test client that sends a valid token with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_token(sub=sub, scope=scope)}"
    return client
