"""Tokens for tests, signed with the secret the test apps are configured with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

TEST_JWT_SECRET = "test-only-secret-0123456789abcdef0123456789"  # noqa: S105  # tests only
ALL_SCOPES = "cache:admin stats:read sessions:write"


def make_token(
    sub: str | None = "tester",
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


def claims(
    sub: str | None = "tester", scope: str = ALL_SCOPES, ttl: int = 600, **extra: Any
) -> dict[str, Any]:
    """A token payload; claims given as None are left out."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "scope": scope, "iat": now, "exp": now + ttl, **extra}
    return {name: value for name, value in payload.items() if value is not None}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made_token(payload: dict[str, Any], algorithm: str, key: bytes = b"") -> str:
    """A token PyJWT would refuse to sign: ``alg: none``, or HMAC keyed with a PEM public key.

    These are the classic forgeries a verifier must reject, so they are built by hand.
    """
    header = _b64url(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64url(json.dumps(payload).encode())}"
    if algorithm.lower() == "none":
        return f"{signing_input}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signature = hmac.new(key, signing_input.encode(), digest[algorithm]).digest()
    return f"{signing_input}.{_b64url(signature)}"


@dataclass(frozen=True)
class KeyPair:
    """A PEM private key and the file holding its public key (``jwt_public_key_file``)."""

    private_pem: bytes
    public_pem: bytes
    public_key_file: Path


def write_key_pair(directory: Path, kind: str = "rsa") -> KeyPair:
    """A fresh RSA-2048 (``rsa``) or P-256 (``ec``) key pair, the public half in a file."""
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ec":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_key_file = directory / f"{kind}-public.pem"
    public_key_file.write_bytes(public_pem)
    return KeyPair(private_pem, public_pem, public_key_file)
