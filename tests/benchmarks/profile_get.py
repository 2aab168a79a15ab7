"""Where a GET (and a POST /cache) spends its time: the app in process under pyinstrument.

    python -m tests.benchmarks.profile_get [--requests 5000] [--op get|post|both] [--top 30]

The app is built as ``cacheservice.wsgi`` builds it for gunicorn — auth on (a verified JWT on
every request), rate limits on (a high quota), request log on (written to /dev/null, formatted
as in production), Prometheus in multi-process mode — against real Redis (database 9 on
127.0.0.1:6379, namespace ``profile``; nothing is flushed) and the ``cacheservice_bench``
Postgres database (namespace configurations).
Requests are WSGI calls with environs built beforehand, so the test client's own work stays
out of the profile. Prints requests/s without and with the profiler, the same for the bare
baseline app (``tests/benchmarks/bare_app.py``), the self time per package or service module
and per function, and the top of the call tree. Needs ``pyinstrument`` (in the ``dev``
extras). Not part of the test run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pyinstrument import Profiler
from werkzeug.test import EnvironBuilder

REDIS_URL = "redis://127.0.0.1:6379/9"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cacheservice_bench"
NS = "profile"
KEYS = 1000
VALUE = (
    '{"id":"0d8c3a54-7e6f-4b1e-9a41-52f0b5a1c2d3","email":"maria.silva42@example.com",'
    '"name":"Maria Silva","role":"traveler","status":"active","created_at":'
    '"2024-03-14T09:26:53Z","locale":"pt-BR","timezone":"Europe/Lisbon","address":'
    '{"city":"Lisbon","country":"PT"},"preferences":{"currency":"EUR","newsletter":true}}'
)


def build_app() -> Any:
    # As gunicorn_conf.on_starting does, before prometheus_client is imported.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="profile-prom-"))
    from cacheservice import create_app
    from tests.support.auth import TEST_JWT_SECRET

    # As cacheservice/wsgi.py configures logging, but into /dev/null.
    logging.basicConfig(
        level="INFO",
        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        stream=open(os.devnull, "w"),  # noqa: SIM115  # lives as long as the process
        force=True,
    )
    return create_app(
        {
            "redis_url": REDIS_URL,
            "database_url": DATABASE_URL,
            "jwt_secret": TEST_JWT_SECRET,
            "rate_limit_cache": "100000000/hour",
            "rate_limit_batch": "100000000/hour",
            "request_log": True,
        }
    )


def environs(op: str, count: int, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    made = []
    for i in range(count):
        if op == "get":
            builder = EnvironBuilder(
                path=f"/cache/profile:{i % KEYS}", query_string={"namespace": NS}, headers=headers
            )
        else:
            body = (
                f'{{"key":"profile:post:{i % KEYS}","namespace":"{NS}","ttl":3600,'
                f'"tags":["post","team:{i % 100}"],"value":{VALUE}}}'
            )
            builder = EnvironBuilder(
                path="/cache",
                method="POST",
                data=body,
                content_type="application/json",
                headers=headers,
            )
        made.append(builder.get_environ())
    return made


def call_all(app: Any, prepared: Iterable[dict[str, Any]], expected: set[str]) -> None:
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc_info: Any = None) -> Callable[..., Any]:
        status.append(line)
        return lambda _data: None

    for environ in prepared:
        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        if status[-1][:3] not in expected:
            raise SystemExit(f"unexpected status {status[-1]} for {environ['PATH_INFO']}")


def package_of(path: str) -> str:
    """A package name, ``cacheservice/<module>``, or ``stdlib/<module>`` for a file path."""
    found = re.search(r"site-packages/([^/]+)", path)
    if found:
        return found.group(1).removesuffix(".py")
    found = re.search(r"/(cacheservice|schemas|workers)/(.+?)\.py$", path)
    if found:
        return f"{found.group(1)}/{found.group(2)}"
    found = re.search(r"/lib/python3\.\d+/([^/]+)", path)
    if found:
        return "stdlib/" + found.group(1).removesuffix(".py")
    return path or "(native)"


def self_times(profiler: Profiler) -> tuple[Counter[str], Counter[str]]:
    """Self time per package and per function. A built-in (C) call counts under its caller's
    package, by name, so that waiting on a socket (``redis > recv_into``) stands apart."""
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    stack = [(root, "")] if root is not None else []
    while stack:
        frame, caller = stack.pop()
        path = frame.file_path or ""
        if path.startswith("<built-in>") or not path:
            name = f"{caller} > {frame.function.rsplit('.', 1)[-1]}"
            own = caller
        else:
            name = own = package_of(path)
        packages[name] += frame.total_self_time
        where = f"{frame.file_path_short or path}:{frame.line_no}" if path else ""
        functions[f"{frame.function}  {where}"] += frame.total_self_time
        stack.extend((child, own) for child in frame.children if not child.is_synthetic)
    return packages, functions


def bare_seconds(op: str, count: int) -> float:
    """Seconds per request of ``tests/benchmarks/bare_app.py`` doing the same, in process."""
    os.environ["CACHE_REDIS_URL"] = REDIS_URL
    from tests.benchmarks import bare_app

    bare_app.store.set("profile:bare", VALUE, ex=3600)
    if op == "get":
        builder = {"path": "/bare/profile:bare"}
    else:
        body = f'{{"key":"profile:bare:post","ttl":3600,"value":{VALUE}}}'
        builder = {"path": "/bare", "method": "POST", "data": body}
        builder["content_type"] = "application/json"
    expected = {"200"} if op == "get" else {"201"}
    call_all(bare_app.app, [EnvironBuilder(**builder).get_environ() for _ in range(200)], expected)
    prepared = [EnvironBuilder(**builder).get_environ() for _ in range(count)]
    started = time.perf_counter()
    call_all(bare_app.app, prepared, expected)
    return (time.perf_counter() - started) / count


def profile(app: Any, op: str, count: int, token: str, top: int) -> None:
    expected = {"200"} if op == "get" else {"200", "201"}
    call_all(app, environs(op, 200, token), expected)  # warm-up: scripts, pools, JIT caches
    prepared = environs(op, count, token)
    started = time.perf_counter()
    call_all(app, prepared, expected)
    plain = time.perf_counter() - started
    prepared = environs(op, count, token)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    call_all(app, prepared, expected)
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    print(f"\n=== {op.upper()}: {count} requests in process")
    print(
        f"without profiler: {count / plain:,.0f} req/s ({plain / count * 1e6:.0f} µs/request); "
        f"profiled: {session.duration / count * 1e6:.0f} µs/request"
    )
    bare = bare_seconds(op, count)
    print(
        f"bare app ({'GET' if op == 'get' else 'SET EX'}) in process: {1 / bare:,.0f} req/s "
        f"({bare * 1e6:.0f} µs/request)"
    )
    totals, functions = self_times(profiler)
    whole = sum(totals.values()) or 1.0
    waits = sum(t for name, t in totals.items() if name.endswith(("sendall", "recv_into")))
    print(
        f"socket waits (sendall, recv_into): {waits / count * 1e6:.0f} µs/request; "
        f"the rest: {(whole - waits) / count * 1e6:.0f} µs/request"
    )
    print("self time by package / service module:")
    for name, seconds in totals.most_common(top):
        print(f"  {seconds / whole:6.1%}  {seconds / count * 1e6:7.1f} µs/req  {name}")
    print(f"\nfunctions by self time (top {top}):")
    for name, seconds in functions.most_common(top):
        print(f"  {seconds / whole:6.1%}  {seconds / count * 1e6:7.1f} µs/req  {name}")
    print("\ncall tree (top):")
    text = profiler.output_text(unicode=True, color=False, time="percent_of_total")
    print("\n".join(text.splitlines()[: top * 3]))


def seed(app: Any, token: str) -> None:
    """The keys GET reads, written through the app itself."""
    for index in range(KEYS):
        environ = EnvironBuilder(
            path="/cache",
            method="POST",
            data=(
                f'{{"key":"profile:{index}","namespace":"{NS}","ttl":3600,'
                f'"tags":["get","team:{index % 100}"],"value":{VALUE}}}'
            ),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        ).get_environ()
        call_all(app, [environ], {"200", "201"})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--op", choices=("get", "post", "both"), default="both")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    from tests.support.auth import make_token

    app = build_app()
    token = make_token(sub="profile", scope="cache:write", ttl=3600)
    seed(app, token)
    try:
        for op in ("get", "post") if args.op == "both" else (args.op,):
            profile(app, op, args.requests, token, args.top)
    finally:
        app.extensions["cacheservice"].shutdown()


if __name__ == "__main__":
    main()
