"""Who may call what, and how often: authentication, scopes and rate limits per route.

``ROUTES`` is the one table of every route's required scope and rate limit category; the
README and the OpenAPI document are generated from the same table (``x-required-scope``).
A route missing from it is refused, so a new endpoint cannot be public by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, Response, g, request

from cacheservice.access import AccessControl
from cacheservice.api.parser import request_json
from cacheservice.auth import Principal, TokenVerifier, check_scope
from cacheservice.errors import Forbidden, InvalidRequest, Unauthorized
from cacheservice.services import services
from cacheservice.store.ratelimit import LimitCheck
from cacheservice.validation import DEFAULT_NAMESPACE, NAMESPACE_RE, namespace_issue


@dataclass(frozen=True)
class RouteAccess:
    """What one route needs: a scope (None = public) and a rate limit category."""

    scope: str | None
    category: str | None
    # Where the namespace a cache scope is checked against comes from: "query" or "body".
    namespace_from: str | None = None
    # True when the cache operation carries the limit check in its own script call.
    folded: bool = False
    # True when a failing limiter must not fail the request (health must answer while Redis,
    # the limiter's store, is down: that is what it reports; sessions fall back to Postgres).
    limit_fails_open: bool = False


ROUTES: dict[tuple[str, str], RouteAccess] = {
    ("entries.Entry", "GET"): RouteAccess("cache:read", "cache", "query", folded=True),
    ("entries.Entry", "DELETE"): RouteAccess("cache:write", "cache", "query", folded=True),
    ("entries.Entries", "POST"): RouteAccess("cache:write", "cache", "body", folded=True),
    ("entries.Entry", "PUT"): RouteAccess("cache:write", "cache", "query", folded=True),
    ("entries.Entry", "PATCH"): RouteAccess("cache:write", "cache", "query", folded=True),
    ("batch.BatchGet", "POST"): RouteAccess("cache:read", "batch", "body"),
    ("batch.BatchSet", "POST"): RouteAccess("cache:write", "batch", "body"),
    ("invalidation.Invalidate", "POST"): RouteAccess("cache:write", "batch", "body"),
    ("stats.Statistics", "GET"): RouteAccess("stats:read", "statistics"),
    ("health.Health", "GET"): RouteAccess(None, "health", limit_fails_open=True),
    ("namespaces.Namespaces", "GET"): RouteAccess("cache:admin", "cache"),
    ("namespaces.Namespace", "GET"): RouteAccess("cache:admin", "cache"),
    ("namespaces.Namespace", "PUT"): RouteAccess("cache:admin", "cache"),
    ("namespaces.Namespace", "PATCH"): RouteAccess("cache:admin", "cache"),
    ("namespaces.Namespace", "DELETE"): RouteAccess("cache:admin", "cache"),
    ("namespaces.NamespaceDictionary", "POST"): RouteAccess("cache:admin", "cache"),
    # Sessions live in Postgres too and keep working while Redis is away: their limit fails
    # open rather than take logins down with the limiter's store.
    ("sessions.SessionsView", "POST"): RouteAccess(
        "sessions:write", "sessions", limit_fails_open=True
    ),
    ("sessions.SessionView", "GET"): RouteAccess("sessions:read", "sessions", folded=True),
    ("sessions.SessionView", "PATCH"): RouteAccess(
        "sessions:write", "sessions", limit_fails_open=True
    ),
    ("sessions.SessionView", "DELETE"): RouteAccess("sessions:write", "sessions"),
    ("user_sessions.UserSessionsView", "GET"): RouteAccess("sessions:read", "sessions"),
    ("user_sessions.UserSessionsView", "DELETE"): RouteAccess("sessions:write", "sessions"),
    # Scraped every few seconds by Prometheus: protected, but not rate limited.
    ("monitoring.metrics", "GET"): RouteAccess("stats:read", None),
    # Documentation is public and not limited.
    ("api-docs.openapi_json", "GET"): RouteAccess(None, None),
    ("api-docs.openapi_swagger_ui", "GET"): RouteAccess(None, None),
}


def route_access(endpoint: str, method: str) -> RouteAccess | None:
    return ROUTES.get((endpoint, "GET" if method == "HEAD" else method))


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _authenticate(verifier: TokenVerifier, public: bool) -> Principal | None:
    token = _bearer_token()
    if token is None:
        if public:
            return None
        raise Unauthorized("A bearer token is required")
    try:
        return verifier.verify(token)
    except Unauthorized:
        # On a public route a bad token is ignored, so it is limited as anonymous and can
        # never spend the quota of the subject it claims.
        if public:
            return None
        raise


NOT_AN_OBJECT = "\0not-an-object"


def _namespace(source: str | None) -> str | None:
    """The namespace a request targets; None when it names an invalid one (a 400 here), and
    ``NOT_AN_OBJECT`` for a body that is no JSON object at all: such a request cannot name a
    namespace, its own validation answers 400, and nothing is read or written."""
    namespace: object
    if source == "query":
        namespace = request.args.get("namespace", DEFAULT_NAMESPACE)
    elif source == "body":
        body = request_json()
        if not isinstance(body, dict):
            return NOT_AN_OBJECT
        namespace = body.get("namespace", DEFAULT_NAMESPACE)
    else:
        namespace = DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or namespace_issue(namespace) is not None:
        return None
    return namespace


def _check_scope_for_request(principal: Principal, access: RouteAccess) -> None:
    if access.scope is None:
        return
    if access.namespace_from is None:
        check_scope(principal, access.scope, None)
        return
    namespace = _namespace(access.namespace_from)
    if namespace == NOT_AN_OBJECT:
        return  # The view refuses such a body (400) before it reads or writes anything.
    if namespace is None:
        # Refused here rather than left to each view's validation: a scope check must not be
        # skipped for a name it cannot read.
        raise InvalidRequest(
            "Request validation failed",
            namespace=[f"Namespace must match {NAMESPACE_RE.pattern}."],
        )
    check_scope(principal, access.scope, namespace)


def enforce_access() -> None:
    """before_request: 401, 403 or 429 before the view runs; routing errors pass through."""
    if request.endpoint is None or request.method == "OPTIONS":
        return
    access = route_access(request.endpoint, request.method)
    if access is None:
        raise Forbidden("This route has no access rule", route=request.endpoint)
    control: AccessControl = services().access
    principal = None
    if control.verifier is not None:
        principal = _authenticate(control.verifier, public=access.scope is None)
        if principal is not None and access.scope is not None:
            _check_scope_for_request(principal, access)
    if access.category is None:
        return
    identity = f"sub:{principal.subject}" if principal else f"ip:{request.remote_addr}"
    check = control.limiter.check_for(identity, access.category)
    if check is None:
        return
    g.rate_limit = check
    if access.folded and control.limiter.folds_into_cache_calls:
        g.folded_rate_limit = check
    elif access.limit_fails_open:
        try:
            control.limiter.run_alone(check)
        except redis.RedisError:
            g.pop("rate_limit", None)
    else:
        control.limiter.run_alone(check)


def folded_limit_check() -> LimitCheck | None:
    """The check a view hands to its cache call, when the limit rides in that call."""
    check: LimitCheck | None = g.get("folded_rate_limit")
    return check


def add_rate_limit_headers(response: Response) -> Response:
    check: LimitCheck | None = g.get("rate_limit")
    if check is not None and check.outcome is not None:
        outcome = check.outcome
        response.headers["X-RateLimit-Limit"] = str(outcome.limit)
        response.headers["X-RateLimit-Remaining"] = str(outcome.remaining)
        response.headers["X-RateLimit-Reset"] = str(-(-outcome.reset_ms // 1000))
    return response


def init_access(app: Flask) -> None:
    app.before_request(enforce_access)
    app.after_request(add_rate_limit_headers)
