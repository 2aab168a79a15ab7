"""What authentication and rate limiting cost a GET, measured with wrk against real gunicorn.

Two servers run side by side with the repository's gunicorn configuration and the same worker
settings: one with JWT auth and rate limits on (a quota high enough never to refuse), one with
auth disabled and limits off. Rounds alternate between them so both see the same machine load.

    python -m tests.benchmarks.auth_overhead [--rounds 3] [--seconds 5] [--connections 32]

Needs ``wrk`` (Debian package ``wrk``) and Redis on 127.0.0.1:6379 (database 9 is used and
flushed).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import redis
import requests

from tests.support.auth import TEST_JWT_SECRET, make_token
from tests.support.gunicorn_server import GunicornServer

REDIS_URL = "redis://127.0.0.1:6379/9"
KEY = "user:550e8400-e29b-41d4-a716-446655440000"
VALUE = {
    "id": "550e8400-e29b-41d4-a716-446655440000",
    "email": "user@example.com",
    "name": "John Doe",
    "role": "traveler",
    "status": "active",
}


def start(name: str, env: dict[str, str], workdir: Path) -> GunicornServer:
    base = {"CACHE_REDIS_URL": REDIS_URL, "CACHE_WEB_WORKERS": "2", "CACHE_LOG_LEVEL": "WARNING"}
    return GunicornServer({**base, **env}, workdir / f"{name}.log").start()


def wrk(url: str, seconds: int, connections: int, token: str | None) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise SystemExit(f"{non_2xx.group(1)} failed responses from {url}:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    redis.Redis.from_url(REDIS_URL).flushdb()
    token = make_token(sub="bench", scope="cache:write", ttl=3600)
    results: dict[str, list[float]] = {"auth + limits": [], "neither": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        secured = start(
            "secured",
            {"CACHE_JWT_SECRET": TEST_JWT_SECRET, "CACHE_RATE_LIMIT_CACHE": "100000000/hour"},
            workdir,
        )
        bare = start(
            "open", {"CACHE_AUTH_MODE": "disabled", "CACHE_RATE_LIMIT_CACHE": "unlimited"}, workdir
        )
        try:
            body = {"key": KEY, "value": VALUE, "namespace": "bench", "ttl": 3600}
            headers = {"Authorization": f"Bearer {token}"}
            requests.post(f"{secured.base_url}/cache", json=body, headers=headers, timeout=5)
            path = f"/cache/{KEY}?namespace=bench"
            for _ in range(args.rounds):
                secured_rate = wrk(secured.base_url + path, args.seconds, args.connections, token)
                bare_rate = wrk(bare.base_url + path, args.seconds, args.connections, None)
                results["auth + limits"].append(secured_rate)
                results["neither"].append(bare_rate)
        finally:
            secured.stop()
            bare.stop()
    print(f"GET hit: {args.rounds} alternating rounds of {args.seconds}s, {args.connections} conns")
    for name, figures in results.items():
        print(
            f"{name:>14}: median {statistics.median(figures):8.0f} req/s "
            f"(min {min(figures):.0f}, max {max(figures):.0f})"
        )
    ratio = statistics.median(results["auth + limits"]) / statistics.median(results["neither"])
    print(f"ratio auth+limits / neither: {ratio:.2f}")


if __name__ == "__main__":
    main()
