"""Bearer JWT verification and scopes.

Algorithms come from configuration, never from the token: HS256 with a secret of at least 32
bytes, or RS256/ES256 (and their larger siblings) with a public key file. ``exp`` and ``sub``
are required; ``iss`` and ``aud`` are checked when configured.

Scopes (the space-separated ``scope`` claim):

- ``cache:read`` / ``cache:write`` (write implies read), each optionally narrowed to one
  namespace as ``cache:read:<ns>`` / ``cache:write:<ns>``;
- ``cache:admin``: namespace configuration, and read and write in every namespace;
- ``stats:read``; ``sessions:read`` / ``sessions:write`` (write implies read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from cacheservice.config import ConfigError, Settings
from cacheservice.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
MAX_LEEWAY_SECONDS = 60
SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384"})

# A scope grants everything its implied scopes grant.
IMPLIED = {
    "cache:write": ("cache:read",),
    "sessions:write": ("sessions:read",),
    "cache:admin": ("cache:write", "cache:read"),
}


@dataclass(frozen=True)
class Principal:
    """A verified caller: the token's subject and its scopes."""

    subject: str
    scopes: frozenset[str]

    def allows(self, scope: str, namespace: str | None = None) -> bool:
        """True when the scopes grant ``scope`` (in ``namespace``, for cache scopes)."""
        return any(_grants(granted, scope, namespace) for granted in self.scopes)


def _grants(granted: str, scope: str, namespace: str | None) -> bool:
    base, _, narrowed_to = _split_namespace(granted)
    if narrowed_to is not None and narrowed_to != namespace:
        return False
    return base == scope or scope in IMPLIED.get(base, ())


def _split_namespace(granted: str) -> tuple[str, str, str | None]:
    """``cache:write:users`` -> (``cache:write``, ``:``, ``users``); others unchanged."""
    parts = granted.split(":", 2)
    if len(parts) == 3 and parts[0] == "cache" and parts[1] in ("read", "write"):
        return f"{parts[0]}:{parts[1]}", ":", parts[2]
    return granted, "", None


def required_scope_name(scope: str, namespace: str | None) -> str:
    """How a 403 names the narrowest scope that would have been enough."""
    if namespace is not None and scope in ("cache:read", "cache:write"):
        return f"{scope}:{namespace}"
    return scope


VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class TokenVerifier:
    algorithms: tuple[str, ...]
    key: Any
    issuer: str | None
    audience: str | None
    leeway: int
    # Tokens already verified, with the time (s) after which they are expired. Services send
    # the same token for many requests; signature checks and claim parsing then cost nothing.
    # Only successful verifications are kept, and expiry is checked again on every use.
    _verified: dict[str, tuple[Principal, float]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Check the key material and algorithms, or refuse to start with the reason."""
        if settings.jwt_secret and settings.jwt_public_key_file:
            raise ConfigError("set CACHE_JWT_SECRET or CACHE_JWT_PUBLIC_KEY_FILE, not both")
        if not 0 <= settings.jwt_leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ConfigError(f"CACHE_JWT_LEEWAY must be 0-{MAX_LEEWAY_SECONDS} seconds")
        key: Any
        if settings.jwt_secret:
            if len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"CACHE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
            algorithms = settings.jwt_algorithms or ("HS256",)
            allowed = SYMMETRIC
            key = settings.jwt_secret
        elif settings.jwt_public_key_file:
            algorithms = settings.jwt_algorithms or ("RS256",)
            allowed = ASYMMETRIC
            try:
                key = Path(settings.jwt_public_key_file).read_bytes()
            except OSError as error:
                raise ConfigError(f"cannot read CACHE_JWT_PUBLIC_KEY_FILE: {error}") from None
        else:
            raise ConfigError(
                "CACHE_AUTH_MODE=jwt needs CACHE_JWT_SECRET (HS256, at least 32 bytes) or "
                "CACHE_JWT_PUBLIC_KEY_FILE (RS256/ES256); set CACHE_AUTH_MODE=disabled to run "
                "without authentication"
            )
        wrong = [name for name in algorithms if name not in allowed]
        if wrong:
            kind = "a secret" if allowed is SYMMETRIC else "a public key"
            raise ConfigError(f"CACHE_JWT_ALGORITHMS {wrong} cannot be used with {kind}")
        return cls(
            algorithms=tuple(algorithms),
            key=key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires_at = known
            if time.time() <= expires_at:
                return principal
            self._verified.pop(token, None)
        principal, expires_at = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, expires_at)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={
                    "require": ["exp", "sub"],
                    # Without a configured audience any "aud" is accepted, not rejected.
                    "verify_aud": self.audience is not None,
                },
            )
        except jwt.InvalidTokenError as error:
            raise Unauthorized("The bearer token is not valid", reason=str(error)) from None
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise Unauthorized("The bearer token is not valid", reason="scope must be a string")
        return Principal(claims["sub"], frozenset(scope.split())), claims["exp"] + self.leeway


def check_scope(principal: Principal, scope: str, namespace: str | None) -> None:
    if not principal.allows(scope, namespace):
        raise Forbidden(required_scope=required_scope_name(scope, namespace))


def mint_token(
    settings: Settings,
    subject: str,
    scopes: Iterable[str],
    ttl_seconds: int,
    private_key: bytes | None = None,
) -> str:
    """A signed token for development and tests (``flask --app cacheservice token``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_secret:
        algorithm = (settings.jwt_algorithms or ("HS256",))[0]
        return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
    if private_key is None:
        raise ConfigError("minting with a public-key setup needs the private key (--private-key)")
    algorithm = (settings.jwt_algorithms or ("RS256",))[0]
    return jwt.encode(claims, private_key, algorithm=algorithm)
