"""Token verification, scopes and the refusal to start with unusable key material (no Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

from cacheservice import auth as auth_module
from cacheservice import create_app
from cacheservice.access import AccessControl
from cacheservice.auth import Principal, TokenVerifier, check_scope, mint_token, required_scope_name
from cacheservice.config import ConfigError, Settings
from cacheservice.errors import Forbidden, Unauthorized
from tests.support.auth import TEST_JWT_SECRET, claims, hand_made_token, make_token, write_key_pair

# Nothing connects to it: building the app opens no connection.
UNUSED_REDIS_URL = "redis://127.0.0.1:1/0"


def settings(**overrides: Any) -> Settings:
    return Settings(redis_url=UNUSED_REDIS_URL, **overrides)


def verifier(**overrides: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(settings(**overrides))


# Configuration: the service refuses to start with key material it cannot verify with.


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "needs CACHE_JWT_SECRET"),
        ({"jwt_secret": "s" * 31}, "at least 32 bytes"),
        ({"jwt_secret": TEST_JWT_SECRET, "jwt_public_key_file": "/k.pem"}, "not both"),
        ({"jwt_secret": TEST_JWT_SECRET, "jwt_algorithms": ("RS256",)}, "cannot be used"),
        ({"jwt_secret": TEST_JWT_SECRET, "jwt_algorithms": ("none",)}, "cannot be used"),
        ({"jwt_secret": TEST_JWT_SECRET, "jwt_leeway_seconds": 61}, "CACHE_JWT_LEEWAY"),
        ({"jwt_secret": TEST_JWT_SECRET, "jwt_leeway_seconds": -1}, "CACHE_JWT_LEEWAY"),
        ({"auth_mode": "off", "jwt_secret": TEST_JWT_SECRET}, "CACHE_AUTH_MODE"),
    ],
    ids=[
        "no-key-material",
        "short-secret",
        "secret-and-key-file",
        "rs256-with-secret",
        "alg-none-with-secret",
        "leeway-over-60",
        "negative-leeway",
        "unknown-auth-mode",
    ],
)
def test_create_app_refuses_unusable_auth_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(settings(**overrides))


def test_the_no_key_error_names_both_variables_and_the_way_out() -> None:
    with pytest.raises(ConfigError) as raised:
        create_app(settings())
    text = str(raised.value)
    assert "CACHE_JWT_SECRET" in text
    assert "CACHE_JWT_PUBLIC_KEY_FILE" in text
    assert "CACHE_AUTH_MODE=disabled" in text


def test_a_secret_of_exactly_32_bytes_and_a_leeway_of_60_are_accepted() -> None:
    built = verifier(jwt_secret="s" * 32, jwt_leeway_seconds=60)
    assert built.algorithms == ("HS256",)
    assert built.leeway == 60


def test_a_secret_is_measured_in_bytes_not_characters() -> None:
    # 16 two-byte characters are 32 bytes.
    assert verifier(jwt_secret="é" * 16).algorithms == ("HS256",)


def test_hs256_with_a_public_key_file_is_refused(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path)
    with pytest.raises(ConfigError, match="cannot be used with a public key"):
        verifier(jwt_public_key_file=str(pair.public_key_file), jwt_algorithms=("HS256",))


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read CACHE_JWT_PUBLIC_KEY_FILE"):
        verifier(jwt_public_key_file=str(tmp_path / "missing.pem"))


def test_a_key_file_defaults_to_rs256(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path)
    assert verifier(jwt_public_key_file=str(pair.public_key_file)).algorithms == ("RS256",)


def test_disabled_auth_has_no_verifier(caplog: pytest.LogCaptureFixture) -> None:
    control = AccessControl.build(settings(auth_mode="disabled"), limiter=None)  # type: ignore[arg-type]
    assert control.verifier is None
    assert "AUTHENTICATION IS DISABLED" in caplog.text


# Verification.


def test_a_valid_token_gives_its_subject_and_scopes() -> None:
    principal = verifier(jwt_secret=TEST_JWT_SECRET).verify(
        make_token(sub="alice", scope="cache:read:users  stats:read")
    )
    assert principal == Principal("alice", frozenset({"cache:read:users", "stats:read"}))


def test_a_token_without_scope_has_no_scopes() -> None:
    token = jwt.encode(claims(sub="alice", scope=None), TEST_JWT_SECRET, "HS256")  # type: ignore[arg-type]
    assert verifier(jwt_secret=TEST_JWT_SECRET).verify(token).scopes == frozenset()


OTHER_SECRET = "another-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only

INVALID_TOKENS: dict[str, Callable[[], str]] = {
    "alg-none": lambda: hand_made_token(claims(), "none"),
    "bad-signature": lambda: make_token(secret=OTHER_SECRET),
    "expired-beyond-leeway": lambda: make_token(ttl=-120),
    "missing-exp": lambda: make_token(exp=None),
    "missing-sub": lambda: make_token(sub=None),
    "scope-not-a-string": lambda: make_token(scope=["cache:read"]),  # type: ignore[arg-type]
    "algorithm-not-configured": lambda: hand_made_token(
        claims(), "HS384", TEST_JWT_SECRET.encode()
    ),
    "garbage": lambda: "garbage",
}


@pytest.mark.parametrize("name", INVALID_TOKENS)
def test_invalid_tokens_are_unauthorized(name: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        verifier(jwt_secret=TEST_JWT_SECRET).verify(INVALID_TOKENS[name]())
    assert "reason" in raised.value.details


def test_leeway_accepts_a_token_expired_within_it() -> None:
    assert verifier(jwt_secret=TEST_JWT_SECRET, jwt_leeway_seconds=30).verify(make_token(ttl=-10))


def test_a_verified_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token verified once (and possibly remembered) is not accepted past exp + leeway."""
    checker = verifier(jwt_secret=TEST_JWT_SECRET, jwt_leeway_seconds=5)
    token = make_token(ttl=60)
    assert checker.verify(token).subject == "tester"

    later = time.time() + 66

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:
            return cls.fromtimestamp(later, tz)

    # Both clocks move: the verifier's own and the one PyJWT checks exp against.
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(time=lambda: later))
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(Unauthorized):
        checker.verify(token)


@pytest.mark.parametrize(("kind", "algorithm"), [("rsa", "RS256"), ("ec", "ES256")])
def test_public_key_verification(tmp_path: Path, kind: str, algorithm: str) -> None:
    pair = write_key_pair(tmp_path, kind)
    checker = verifier(jwt_public_key_file=str(pair.public_key_file), jwt_algorithms=(algorithm,))
    token = jwt.encode(claims(sub="svc"), pair.private_pem, algorithm)
    assert checker.verify(token).subject == "svc"
    # The public key used as an HMAC secret: the algorithm-confusion forgery.
    with pytest.raises(Unauthorized):
        checker.verify(hand_made_token(claims(sub="svc"), "HS256", pair.public_pem))
    # Another key pair's signature.
    (tmp_path / "other").mkdir()
    other = write_key_pair(tmp_path / "other", kind)
    with pytest.raises(Unauthorized):
        checker.verify(jwt.encode(claims(sub="svc"), other.private_pem, algorithm))


# Scopes.


@pytest.mark.parametrize(
    ("granted", "scope", "namespace", "allowed"),
    [
        ("cache:read", "cache:read", "users", True),
        ("cache:read", "cache:write", "users", False),
        ("cache:write", "cache:read", "users", True),
        ("cache:write", "cache:write", "users", True),
        ("cache:read:users", "cache:read", "users", True),
        ("cache:read:users", "cache:read", "orders", False),
        ("cache:read:users", "cache:write", "users", False),
        ("cache:write:users", "cache:read", "users", True),
        ("cache:write:users", "cache:write", "users", True),
        ("cache:write:users", "cache:write", "orders", False),
        ("cache:write:users", "cache:write", None, False),
        ("cache:admin", "cache:write", "users", True),
        ("cache:admin", "cache:admin", None, True),
        ("cache:write", "cache:admin", None, False),
        ("stats:read", "cache:read", "users", False),
        ("sessions:write", "sessions:read", None, True),
        ("sessions:read", "sessions:write", None, False),
        # A namespace that merely starts like another is another namespace.
        ("cache:read:user", "cache:read", "users", False),
    ],
)
def test_scope_grants(granted: str, scope: str, namespace: str | None, allowed: bool) -> None:
    assert Principal("p", frozenset({granted})).allows(scope, namespace) is allowed


def test_a_refusal_names_the_narrowest_scope_that_would_do() -> None:
    assert required_scope_name("cache:write", "users") == "cache:write:users"
    assert required_scope_name("cache:admin", "users") == "cache:admin"
    assert required_scope_name("stats:read", None) == "stats:read"
    with pytest.raises(Forbidden) as raised:
        check_scope(Principal("p", frozenset({"cache:read"})), "cache:write", "users")
    assert raised.value.details == {"required_scope": "cache:write:users"}


# Minting.


def test_minted_tokens_verify_with_issuer_and_audience() -> None:
    configured = settings(
        jwt_secret=TEST_JWT_SECRET, jwt_issuer="https://issuer.test", jwt_audience="cache"
    )
    token = mint_token(configured, "alice", ["cache:write", "stats:read"], ttl_seconds=60)
    principal = TokenVerifier.from_settings(configured).verify(token)
    assert principal == Principal("alice", frozenset({"cache:write", "stats:read"}))


def test_minting_with_a_public_key_setup_needs_the_private_key(tmp_path: Path) -> None:
    pair = write_key_pair(tmp_path)
    configured = settings(jwt_public_key_file=str(pair.public_key_file))
    with pytest.raises(ConfigError, match="private key"):
        mint_token(configured, "alice", ["cache:read"], ttl_seconds=60)
    token = mint_token(configured, "alice", ["cache:read"], 60, private_key=pair.private_pem)
    assert TokenVerifier.from_settings(configured).verify(token).subject == "alice"
