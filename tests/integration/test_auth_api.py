"""Authentication and scopes over the API: 401 for every bad token, 403 per route and namespace.

The scope matrix covers every route in ``ROUTES``; a test fails when a registered route has no
access rule, or when a protected route is missing from the matrix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.api.access import ROUTES
from cacheservice.auth import Principal
from tests.conftest import AppFactory
from tests.support.auth import (
    TEST_JWT_SECRET,
    authorized_client,
    bearer,
    claims,
    hand_made_token,
    make_token,
    write_key_pair,
)

NS = "users"
OTHER_NS = "orders"
ISSUER = "https://issuer.example"
AUDIENCE = "cacheservice"
OTHER_SECRET = "another-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only


def assert_unauthorized(response: TestResponse, invalid_token: bool = True) -> dict[str, Any]:
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    # RFC 6750 3.1: a request without credentials gets no error code; a bad token does.
    assert ('error="invalid_token"' in challenge) is invalid_token
    body: dict[str, Any] = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "unauthorized"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], dict)
    assert "X-RateLimit-Limit" not in response.headers
    return body


def assert_forbidden(response: TestResponse, required_scope: str) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "forbidden"
    assert body["details"] == {"required_scope": required_scope}


# Authentication: every way a token can be wrong is a 401 with a Bearer challenge.


def issued(**overrides: Any) -> dict[str, Any]:
    """Claims the strict app accepts, with some replaced (None leaves a claim out)."""
    return claims(
        **{"sub": "alice", "scope": "cache:read", "iss": ISSUER, "aud": AUDIENCE, **overrides}
    )


def signed(**overrides: Any) -> str:
    return jwt.encode(issued(**overrides), TEST_JWT_SECRET, "HS256")


@pytest.fixture
def strict_app(make_app: AppFactory) -> Flask:
    return make_app(jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_leeway_seconds=30)


BAD_AUTHORIZATION: dict[str, Callable[[], str]] = {
    "empty-bearer": lambda: "Bearer ",
    "bearer-without-token": lambda: "Bearer",
    "basic-scheme": lambda: "Basic YWxpY2U6c2VjcmV0",
    "other-scheme-with-a-valid-token": lambda: f"Token {signed()}",
    "valid-token-without-scheme": signed,
    "garbage": lambda: "Bearer not.a.jwt",
    "two-parts": lambda: "Bearer abc.def",
}
BAD_TOKENS: dict[str, Callable[[], str]] = {
    "alg-none": lambda: hand_made_token(issued(), "none"),
    "alg-None": lambda: hand_made_token(issued(), "None"),
    "bad-signature": lambda: jwt.encode(issued(), OTHER_SECRET, "HS256"),
    "unconfigured-algorithm": lambda: hand_made_token(issued(), "HS384", TEST_JWT_SECRET.encode()),
    "expired-beyond-leeway": lambda: signed(exp=int(time.time()) - 120),
    "not-yet-valid": lambda: signed(nbf=int(time.time()) + 600),
    "missing-exp": lambda: signed(exp=None),
    "missing-sub": lambda: signed(sub=None),
    "wrong-issuer": lambda: signed(iss="https://evil.example"),
    "missing-issuer": lambda: signed(iss=None),
    "wrong-audience": lambda: signed(aud="another-service"),
    "missing-audience": lambda: signed(aud=None),
    "scope-not-a-string": lambda: signed(scope=["cache:read"]),
}


@pytest.mark.parametrize("name", BAD_AUTHORIZATION)
def test_missing_or_malformed_credentials_are_401(strict_app: Flask, name: str) -> None:
    response = strict_app.test_client().get(
        f"/cache/k?namespace={NS}", headers={"Authorization": BAD_AUTHORIZATION[name]()}
    )
    # A header that is not "Bearer <something>" carries no token at all.
    assert_unauthorized(response, invalid_token=name in ("garbage", "two-parts"))


def test_no_authorization_header_is_401(strict_app: Flask) -> None:
    assert_unauthorized(strict_app.test_client().get(f"/cache/k?namespace={NS}"), False)


@pytest.mark.parametrize("name", BAD_TOKENS)
def test_invalid_tokens_are_401(strict_app: Flask, name: str) -> None:
    response = strict_app.test_client().get(
        f"/cache/k?namespace={NS}", headers=bearer(BAD_TOKENS[name]())
    )
    assert_unauthorized(response)


def test_a_valid_token_passes_and_the_scheme_is_case_insensitive(strict_app: Flask) -> None:
    http = strict_app.test_client()
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = http.get(
            f"/cache/k?namespace={NS}", headers={"Authorization": f"{scheme} {signed()}"}
        )
        assert response.status_code == 404, scheme
        assert response.get_json()["error"] == "key_not_found"


def test_expiry_within_the_leeway_is_accepted(strict_app: Flask) -> None:
    response = strict_app.test_client().get(
        f"/cache/k?namespace={NS}", headers=bearer(signed(exp=int(time.time()) - 10))
    )
    assert response.status_code == 404
    assert response.get_json()["error"] == "key_not_found"


def test_without_configured_audience_any_audience_is_accepted(app: Flask) -> None:
    token = make_token(aud="whatever")
    response = app.test_client().get(f"/cache/k?namespace={NS}", headers=bearer(token))
    assert response.status_code == 404


def test_the_401_never_echoes_the_token(strict_app: Flask) -> None:
    token = jwt.encode(issued(), OTHER_SECRET, "HS256")
    response = strict_app.test_client().get("/cache/k", headers=bearer(token))
    assert_unauthorized(response)
    assert token not in response.get_data(as_text=True)
    assert token not in response.headers["WWW-Authenticate"]


def test_every_protected_route_requires_a_token(app: Flask) -> None:
    http = app.test_client()
    for route in PROTECTED_ROUTES:
        assert_unauthorized(ROUTE_REQUESTS[route](http, NS), invalid_token=False)
        assert_unauthorized(ROUTE_REQUESTS[route](http, NS, "garbage"))


# Public-key setups.


@pytest.fixture
def rsa_app(make_app: AppFactory, tmp_path: Path) -> tuple[Flask, bytes, bytes]:
    pair = write_key_pair(tmp_path, "rsa")
    app = make_app(jwt_secret=None, jwt_public_key_file=str(pair.public_key_file))
    return app, pair.private_pem, pair.public_pem


def test_rs256_tokens_work(rsa_app: tuple[Flask, bytes, bytes]) -> None:
    app, private_pem, _ = rsa_app
    token = jwt.encode(claims(sub="svc", scope="cache:write"), private_pem, "RS256")
    http = app.test_client()
    created = http.post("/cache", json={"key": "k", "value": 1}, headers=bearer(token))
    assert created.status_code == 201
    assert http.get("/cache/k", headers=bearer(token)).get_json()["value"] == 1


def test_hs256_signed_with_the_public_key_is_401(rsa_app: tuple[Flask, bytes, bytes]) -> None:
    """The algorithm-confusion attack: the public key is known to everyone."""
    app, _, public_pem = rsa_app
    forged = hand_made_token(claims(sub="svc", scope="cache:admin"), "HS256", public_pem)
    response = app.test_client().post(
        "/cache", json={"key": "k", "value": 1}, headers=bearer(forged)
    )
    assert_unauthorized(response)


def test_the_shared_test_secret_is_useless_against_a_key_file_setup(
    rsa_app: tuple[Flask, bytes, bytes],
) -> None:
    app, _, _ = rsa_app
    assert_unauthorized(app.test_client().get("/cache/k", headers=bearer(make_token())))


def test_es256_tokens_work(make_app: AppFactory, tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path, "ec")
    app = make_app(
        jwt_secret=None, jwt_public_key_file=str(pair.public_key_file), jwt_algorithms=("ES256",)
    )
    token = jwt.encode(claims(sub="svc", scope="cache:write"), pair.private_pem, "ES256")
    http = app.test_client()
    assert (
        http.post("/cache", json={"key": "k", "value": 1}, headers=bearer(token)).status_code == 201
    )
    assert http.get("/cache/k", headers=bearer(token)).status_code == 200
    rsa_pair = write_key_pair(tmp_path, "rsa")
    rs256 = jwt.encode(claims(sub="svc", scope="cache:write"), rsa_pair.private_pem, "RS256")
    assert_unauthorized(http.get("/cache/k", headers=bearer(rs256)))


# Authentication switched off.


def test_disabled_auth_needs_no_token_and_says_so_loudly(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        app = make_app(auth_mode="disabled")
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert any("AUTHENTICATION IS DISABLED" in record.getMessage() for record in warnings)

    http = app.test_client()
    assert http.post("/cache", json={"key": "k", "value": 1, "namespace": NS}).status_code == 201
    assert http.get(f"/cache/k?namespace={NS}").get_json()["value"] == 1
    # A token, even a bad one, changes nothing.
    assert http.get(f"/cache/k?namespace={NS}", headers=bearer("garbage")).status_code == 200
    assert http.post("/cache/invalidate", json={"namespace": NS}).status_code == 200


def test_jwt_mode_does_not_warn(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        make_app()
    assert "DISABLED" not in caplog.text


# Scopes: every protected route, allowed and denied.

Request = Callable[..., TestResponse]


def _auth(token: str | None) -> dict[str, str]:
    return bearer(token) if token else {}


USER = "5af3de75-3b16-45de-9570-714e31a20037"
MISSING_SESSION = "00." + "x" * 32
ROUTE_REQUESTS: dict[tuple[str, str], Request] = {
    ("entries.Entry", "GET"): lambda http, ns, token=None: http.get(
        f"/cache/k?namespace={ns}", headers=_auth(token)
    ),
    ("entries.Entry", "DELETE"): lambda http, ns, token=None: http.delete(
        f"/cache/k?namespace={ns}", headers=_auth(token)
    ),
    ("entries.Entries", "POST"): lambda http, ns, token=None: http.post(
        "/cache", json={"key": "k", "value": 1, "namespace": ns}, headers=_auth(token)
    ),
    ("batch.BatchGet", "POST"): lambda http, ns, token=None: http.post(
        "/cache/batch", json={"keys": ["k", "j"], "namespace": ns}, headers=_auth(token)
    ),
    ("batch.BatchSet", "POST"): lambda http, ns, token=None: http.post(
        "/cache/batch-set",
        json={"entries": [{"key": "k", "value": 1}], "namespace": ns},
        headers=_auth(token),
    ),
    ("invalidation.Invalidate", "POST"): lambda http, ns, token=None: http.post(
        "/cache/invalidate", json={"namespace": ns, "tags": ["t"]}, headers=_auth(token)
    ),
    ("entries.Entry", "PUT"): lambda http, ns, token=None: http.put(
        f"/cache/k?namespace={ns}",
        data=b"raw",
        content_type="application/octet-stream",
        headers=_auth(token),
    ),
    ("entries.Entry", "PATCH"): lambda http, ns, token=None: http.patch(
        f"/cache/k?namespace={ns}", json={"ttl": 60}, headers=_auth(token)
    ),
    ("namespaces.Namespaces", "GET"): lambda http, _ns, token=None: http.get(
        "/namespaces", headers=_auth(token)
    ),
    ("namespaces.Namespace", "GET"): lambda http, ns, token=None: http.get(
        f"/namespaces/{ns}", headers=_auth(token)
    ),
    ("namespaces.Namespace", "PUT"): lambda http, ns, token=None: http.put(
        f"/namespaces/{ns}", json={}, headers=_auth(token)
    ),
    ("namespaces.Namespace", "PATCH"): lambda http, ns, token=None: http.patch(
        f"/namespaces/{ns}", json={"default_ttl": 60}, headers=_auth(token)
    ),
    ("namespaces.Namespace", "DELETE"): lambda http, ns, token=None: http.delete(
        f"/namespaces/{ns}", headers=_auth(token)
    ),
    ("namespaces.NamespaceDictionary", "POST"): lambda http, ns, token=None: http.post(
        f"/namespaces/{ns}/dictionary", headers=_auth(token)
    ),
    ("sessions.SessionsView", "POST"): lambda http, _ns, token=None: http.post(
        "/sessions", json={"user_id": USER, "data": {}}, headers=_auth(token)
    ),
    ("sessions.SessionView", "GET"): lambda http, _ns, token=None: http.get(
        f"/sessions/{MISSING_SESSION}", headers=_auth(token)
    ),
    ("sessions.SessionView", "PATCH"): lambda http, _ns, token=None: http.patch(
        f"/sessions/{MISSING_SESSION}", json={"ttl": 60}, headers=_auth(token)
    ),
    ("sessions.SessionView", "DELETE"): lambda http, _ns, token=None: http.delete(
        f"/sessions/{MISSING_SESSION}", headers=_auth(token)
    ),
    ("user_sessions.UserSessionsView", "GET"): lambda http, _ns, token=None: http.get(
        f"/users/{USER}/sessions", headers=_auth(token)
    ),
    ("user_sessions.UserSessionsView", "DELETE"): lambda http, _ns, token=None: http.delete(
        f"/users/{USER}/sessions", headers=_auth(token)
    ),
    ("stats.Statistics", "GET"): lambda http, ns, token=None: http.get(
        f"/cache/statistics?namespace={ns}", headers=_auth(token)
    ),
    ("monitoring.metrics", "GET"): lambda http, _ns, token=None: http.get(
        "/metrics", headers=_auth(token)
    ),
}
# What each allowed request answers on an empty database.
ALLOWED_STATUS: dict[tuple[str, str], int | tuple[int, ...]] = {
    ("entries.Entry", "GET"): 404,
    ("entries.Entry", "DELETE"): 404,
    ("entries.Entries", "POST"): 201,
    ("batch.BatchGet", "POST"): 200,
    ("batch.BatchSet", "POST"): 200,
    ("invalidation.Invalidate", "POST"): 200,
    ("entries.Entry", "PUT"): 201,
    ("entries.Entry", "PATCH"): 404,
    ("namespaces.Namespaces", "GET"): 200,
    ("namespaces.Namespace", "GET"): 200,
    # Namespace rows outlive a test (Postgres is not emptied per test): created or replaced.
    ("namespaces.Namespace", "PUT"): (200, 201),
    ("namespaces.Namespace", "PATCH"): 200,
    ("namespaces.Namespace", "DELETE"): (200, 404),
    # An empty namespace has nothing to train a dictionary on.
    ("namespaces.NamespaceDictionary", "POST"): 400,
    ("sessions.SessionsView", "POST"): 201,
    ("sessions.SessionView", "GET"): 404,
    ("sessions.SessionView", "PATCH"): 404,
    ("sessions.SessionView", "DELETE"): 404,
    ("user_sessions.UserSessionsView", "GET"): 200,
    ("user_sessions.UserSessionsView", "DELETE"): 200,
    ("stats.Statistics", "GET"): 200,
    ("monitoring.metrics", "GET"): 200,
}
PROTECTED_ROUTES = sorted(route for route, access in ROUTES.items() if access.scope is not None)
READS = {route for route in PROTECTED_ROUTES if ROUTES[route].scope == "cache:read"}
ALL = {route for route in PROTECTED_ROUTES if ROUTES[route].scope in ("cache:read", "cache:write")}
ADMIN = {route for route in PROTECTED_ROUTES if ROUTES[route].scope == "cache:admin"}
STATS = {route for route in PROTECTED_ROUTES if ROUTES[route].scope == "stats:read"}
SESSION_READS = {r for r in PROTECTED_ROUTES if ROUTES[r].scope == "sessions:read"}
SESSION_WRITES = {r for r in PROTECTED_ROUTES if ROUTES[r].scope == "sessions:write"}
# Scope claim -> the routes it opens in namespace NS.
SCOPE_MATRIX: dict[str, set[tuple[str, str]]] = {
    "cache:read": READS,
    "cache:write": ALL,
    f"cache:read:{NS}": READS,
    f"cache:write:{NS}": ALL,
    f"cache:read:{OTHER_NS}": set(),
    f"cache:write:{OTHER_NS}": set(),
    "cache:admin": ALL | ADMIN,
    "stats:read": STATS,
    "sessions:write": SESSION_READS | SESSION_WRITES,
    "sessions:read": SESSION_READS,
    "": set(),
}


def test_the_matrix_covers_every_protected_route() -> None:
    assert (
        set(ROUTE_REQUESTS)
        == set(PROTECTED_ROUTES)
        == ALL | STATS | ADMIN | SESSION_READS | SESSION_WRITES
    )
    assert set(ALLOWED_STATUS) == set(PROTECTED_ROUTES)
    assert {("entries.Entry", "GET"), ("batch.BatchGet", "POST")} == READS


@pytest.mark.parametrize("route", PROTECTED_ROUTES, ids="{0[0]} {0[1]}".format)
@pytest.mark.parametrize("scope", SCOPE_MATRIX)
def test_scope_matrix(app: Flask, route: tuple[str, str], scope: str) -> None:
    http = authorized_client(app, sub="matrix", scope=scope)

    response = ROUTE_REQUESTS[route](http, NS)

    if route in SCOPE_MATRIX[scope]:
        allowed = ALLOWED_STATUS[route]
        expected = allowed if isinstance(allowed, tuple) else (allowed,)
        assert response.status_code in expected, response.get_json()
    elif route in ALL:
        assert_forbidden(response, f"{ROUTES[route].scope}:{NS}")
    else:
        assert_forbidden(response, str(ROUTES[route].scope))


def test_a_denied_write_changes_nothing(app: Flask) -> None:
    admin = authorized_client(app)
    assert admin.post("/cache", json={"key": "k", "value": 1, "namespace": NS}).status_code == 201
    reader = authorized_client(app, sub="reader", scope=f"cache:read:{NS}")

    for route in PROTECTED_ROUTES:
        if route not in READS:
            assert ROUTE_REQUESTS[route](reader, NS).status_code == 403, route

    body = admin.get(f"/cache/k?namespace={NS}&include_metadata=true").get_json()
    assert body["value"] == 1
    assert body["tags"] == []


def test_head_needs_the_read_scope(app: Flask) -> None:
    path = f"/cache/k?namespace={NS}"
    assert authorized_client(app, scope="stats:read").head(path).status_code == 403
    assert authorized_client(app, scope="cache:read").head(path).status_code == 404


def test_omitted_namespace_is_checked_as_default(app: Flask) -> None:
    http = authorized_client(app, scope=f"cache:write:{NS}")
    assert_forbidden(http.get("/cache/k"), "cache:read:default")
    assert_forbidden(http.post("/cache", json={"key": "k", "value": 1}), "cache:write:default")
    assert_forbidden(http.post("/cache/batch", json={"keys": ["k"]}), "cache:read:default")
    assert_forbidden(http.post("/cache/invalidate", json={"tags": ["t"]}), "cache:write:default")


def test_body_routes_check_the_body_namespace_once(app: Flask) -> None:
    admin = authorized_client(app)
    many = [f"key:{n}" for n in range(300)]
    entries = [{"key": key, "value": key} for key in many]
    assert (
        admin.post("/cache/batch-set", json={"entries": entries, "namespace": NS}).status_code
        == 200
    )
    reader = authorized_client(app, sub="reader", scope=f"cache:read:{NS}")

    found = reader.post("/cache/batch", json={"keys": many, "namespace": NS})
    denied = reader.post("/cache/batch", json={"keys": many, "namespace": OTHER_NS})

    assert found.status_code == 200
    assert found.get_json()["total_found"] == 300
    assert_forbidden(denied, f"cache:read:{OTHER_NS}")


def test_a_query_namespace_does_not_stand_in_for_the_body_one(app: Flask) -> None:
    writer = authorized_client(app, scope=f"cache:write:{NS}")
    assert_forbidden(
        writer.post(f"/cache/invalidate?namespace={NS}", json={"namespace": OTHER_NS}),
        f"cache:write:{OTHER_NS}",
    )
    assert_forbidden(
        writer.post(f"/cache/batch?namespace={NS}", json={"keys": ["k"]}), "cache:read:default"
    )
    assert_forbidden(
        writer.get(f"/cache/k?namespace={OTHER_NS}", json={"namespace": NS}),
        f"cache:read:{OTHER_NS}",
    )


def test_a_batch_set_item_cannot_name_another_namespace(app: Flask) -> None:
    writer = authorized_client(app, sub="writer", scope=f"cache:write:{NS}")
    body = {"namespace": NS, "entries": [{"key": "k", "value": 1, "namespace": OTHER_NS}]}

    response = writer.post("/cache/batch-set", json=body)

    assert response.status_code == 200
    assert response.get_json()["total_failed"] == 1
    admin = authorized_client(app)
    assert admin.get(f"/cache/k?namespace={OTHER_NS}").status_code == 404
    assert admin.get(f"/cache/k?namespace={NS}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"keys": ["k"], "namespace": None},
        {"keys": ["k"], "namespace": "Not Valid"},
        {"keys": ["k"], "namespace": ["users"]},
        ["users"],
    ],
    ids=["null", "invalid-name", "list", "body-not-an-object"],
)
def test_an_unusable_body_namespace_is_400_not_a_way_around_the_scope(
    app: Flask, body: Any
) -> None:
    reader = authorized_client(app, scope=f"cache:read:{NS}")
    response = reader.post("/cache/batch", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_an_invalid_query_namespace_is_400(app: Flask) -> None:
    reader = authorized_client(app, scope=f"cache:read:{NS}")
    for query in ("namespace=", "namespace=Bad%20Name"):
        response = reader.get(f"/cache/k?{query}")
        assert response.status_code == 400, query


# Documentation is public; a route without an access rule is closed.


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_docs_are_public(app: Flask, path: str) -> None:
    http = app.test_client()
    for headers in ({}, bearer("garbage"), bearer(jwt.encode(claims(), OTHER_SECRET, "HS256"))):
        response = http.get(path, headers=headers)
        assert response.status_code == 200, headers
        assert "X-RateLimit-Limit" not in response.headers
    assert http.head(path).status_code == 200


def test_every_registered_route_has_an_access_rule(app: Flask) -> None:
    registered = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("OPTIONS", "HEAD")
    }
    assert registered - set(ROUTES) == set()
    # And the table names no route that does not exist.
    assert set(ROUTES) - registered == set()


def test_a_route_without_an_access_rule_is_refused(app: Flask) -> None:
    app.add_url_rule("/unlisted", endpoint="unlisted", view_func=lambda: "secret")
    for http in (app.test_client(), authorized_client(app)):
        response = http.get("/unlisted")
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"
        assert "secret" not in response.get_data(as_text=True)


# The CLI mints development tokens.


def verify(app: Flask, token: str) -> Principal:
    verifier = app.extensions["cacheservice"].access.verifier
    assert verifier is not None
    principal: Principal = verifier.verify(token)
    return principal


def test_cli_token_verifies_and_works(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["token", "--sub", "alice", "--scope", "cache:write stats:read"]
    )

    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert verify(app, token) == Principal("alice", frozenset({"cache:write", "stats:read"}))
    http = app.test_client()
    assert (
        http.post("/cache", json={"key": "k", "value": 1}, headers=bearer(token)).status_code == 201
    )


def test_cli_token_options(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "token",
            "--sub",
            "bob",
            "--scope",
            f"cache:read:{NS}",
            "--scope",
            "stats:read",
            "--ttl",
            "60",
        ]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert verify(app, token).scopes == {f"cache:read:{NS}", "stats:read"}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["exp"] - payload["iat"] == 60

    default = app.test_cli_runner().invoke(args=["token", "--sub", "carol"]).output.strip()
    assert verify(app, default).scopes == {"cache:write"}


def test_cli_token_carries_issuer_and_audience(strict_app: Flask) -> None:
    token = strict_app.test_cli_runner().invoke(args=["token", "--sub", "dave"]).output.strip()
    assert verify(strict_app, token).subject == "dave"


def test_cli_token_with_a_key_file_setup(
    rsa_app: tuple[Flask, bytes, bytes], tmp_path: Path
) -> None:
    app, private_pem, _ = rsa_app
    runner = app.test_cli_runner()

    refused = runner.invoke(args=["token", "--sub", "erin"])
    assert refused.exit_code != 0
    assert "private key" in str(refused.exception)

    key_file = tmp_path / "private.pem"
    key_file.write_bytes(private_pem)
    minted = runner.invoke(args=["token", "--sub", "erin", "--private-key", str(key_file)])
    assert minted.exit_code == 0, minted.output
    assert verify(app, minted.output.strip()).subject == "erin"


def test_cli_token_requires_a_subject(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["token"])
    assert result.exit_code != 0
    assert "--sub" in result.output


def test_client_fixture_token_has_every_scope(client: FlaskClient) -> None:
    assert client.post("/cache", json={"key": "k", "value": 1, "namespace": NS}).status_code == 201
