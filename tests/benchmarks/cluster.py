"""One Redis server against a three-master Redis Cluster, on this machine, in one run.

    python -m tests.benchmarks.cluster [--rounds 3] [--seconds 5] [--connections 32] [--write]

What runs: two copies of the service under the repository's gunicorn configuration (2 gevent
workers each, JWT on, rate limits on with a quota no run reaches), one on a private
``redis-server``, one on a private three-master cluster (``redis-server --cluster-enabled
yes``, no replicas) through a ``redis+cluster://`` URL. Each round runs GET hits over 1,000
keys and batch-sets of 100 entries against both, alternating which goes first, so both see the
same machine; figures are the median (min-max) over the rounds.

It also reports where one namespace's data lands (its buckets and keys per master) and the Redis
round trips of a GET, a batch GET and a batch-set of 100, counted per node in process with the
tests' counting connection.

On one 2-core machine the cluster cannot show its real gain: its three masters share the two
cores with gunicorn and wrk, and a batch pays for a pipeline per master instead of one. What it
buys (memory and CPU of several machines, a namespace spread over them) needs several machines
to see. Side effects: the Postgres database ``cacheservice_bench_cluster`` is dropped and
recreated; every process started here is stopped at the end. Needs ``wrk``, ``redis-server``,
``redis-cli`` and Postgres on 127.0.0.1:5432. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from cacheservice import create_app
from cacheservice.services import EXTENSION_NAME
from cacheservice.store.keys import KeySpace
from tests.benchmarks.suite import (
    DASH,
    HIGH_QUOTA,
    TTL,
    Gunicorn,
    Wrk,
    WrkResult,
    X,
    batch_set_body,
    batch_set_http,
    log,
    lua_batch_set,
    lua_get,
    machine,
    markdown_table,
    recreate_database,
    revision,
    spread,
    write_section,
)
from tests.conftest import app_settings
from tests.support.auth import TEST_JWT_SECRET, authorized_client, make_token
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.roundtrips import count_round_trips, count_round_trips_per_node
from tests.support.topology import is_cluster_url

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cacheservice_bench_cluster"
SECTION = "## One Redis vs a three-master cluster"
NS = "bench"
GET_KEYS = 1000
BATCH = 100
WORKERS = 2
BATCH_CONNECTIONS = 4
BUCKETS = 16  # The deployment default (CACHE_NAMESPACE_BUCKETS).
TOPOLOGIES = ("single", "cluster")


@dataclass
class Figures:
    get_rps: list[float] = field(default_factory=list)
    get_p99_ms: list[float] = field(default_factory=list)
    batch_rps: list[float] = field(default_factory=list)
    batch_p99_ms: list[float] = field(default_factory=list)

    def add(self, get: WrkResult, batch: WrkResult) -> None:
        self.get_rps.append(get.rps)
        self.get_p99_ms.append(get.p99_ms)
        self.batch_rps.append(batch.rps)
        self.batch_p99_ms.append(batch.p99_ms)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--write", action="store_true", help=f"replace {SECTION!r}")
    return parser.parse_args(argv)


def seed(base_url: str, token: str) -> list[str]:
    keys = [f"{NS}:get:{i}" for i in range(GET_KEYS)]
    batch_set_http(base_url, token, iter([batch_set_body(NS, keys, "get")]))
    return keys


def measure_round(
    servers: dict[str, Gunicorn], wrk: Wrk, args: argparse.Namespace, token: str, first: str
) -> dict[str, tuple[WrkResult, WrkResult]]:
    order = [first, *(name for name in TOPOLOGIES if name != first)]
    results: dict[str, tuple[WrkResult, WrkResult]] = {}
    get_script = lua_get(f"/cache/{NS}:get:", f"?namespace={NS}", token, GET_KEYS)
    for name in order:
        url = servers[name].base_url
        get = wrk.run(url, get_script, args.seconds, args.connections)
        batch = wrk.run(url, lua_batch_set(BATCH, token), args.seconds, BATCH_CONNECTIONS)
        log(f"  {name}: GET {get.rps:,.0f}/s, batch-set {batch.rps:,.0f}/s")
        results[name] = (get, batch)
    return results


def distribution(cluster: RedisCluster) -> str:
    """Which master holds each of the namespace's buckets and how many keys each holds."""
    client: Any = cluster.client()
    try:
        buckets_per_master: Counter[str] = Counter()
        for bucket in KeySpace(BUCKETS).all_buckets(NS):
            node = client.get_node_from_key(bucket.prefix)
            buckets_per_master[node.name] += 1
        rows = []
        for node in sorted(client.get_primaries(), key=lambda n: n.name):
            connection = client.get_redis_connection(node)
            slots = sum(
                int(end) - int(start) + 1
                for start, end, master, *_ in connection.execute_command("CLUSTER SLOTS")
                if f"{master[0].decode()}:{master[1]}" == node.name
            )
            keys = sum(1 for _ in connection.scan_iter(match=f"cs:{{{NS}:*", count=1000))
            rows.append([node.name, str(slots), str(buckets_per_master[node.name]), f"{keys:,}"])
    finally:
        client.close()
    return markdown_table(["Master", "Slots", f"Buckets of `{NS}`", f"Keys of `{NS}`"], rows)


def per_node_round_trips(url: str, keys: list[str]) -> str:
    """Round trips of one GET, a batch GET and a batch-set of ``BATCH``, per node."""
    app: Flask = create_app(
        app_settings(url, database_url=DATABASE_URL, rate_limit_cache=HIGH_QUOTA,
                     rate_limit_batch=HIGH_QUOTA)
    )  # fmt: skip
    http = authorized_client(app, sub="bench-round-trips")
    some = keys[:BATCH]
    entries = [{"key": key, "value": {"n": n}, "ttl": TTL} for n, key in enumerate(some)]
    operations: list[tuple[str, Callable[[], Any]]] = [
        ("GET hit", lambda: http.get(f"/cache/{some[0]}?namespace={NS}")),
        (f"batch GET of {BATCH}", lambda: http.post("/cache/batch", json={"namespace": NS,
                                                                         "keys": some})),
        (f"batch-set of {BATCH}", lambda: http.post("/cache/batch-set", json={"namespace": NS,
                                                                             "entries": entries})),
    ]  # fmt: skip
    rows = []
    try:
        for operation, call in operations:
            call()  # Warm: connections opened and scripts loaded outside the count.
            if is_cluster_url(url):
                counts = count_round_trips_per_node(app)
                assert call().status_code == 200
                bursts = {n: t.count for n, t in counts.items() if t.count}
                described = ", ".join(f"{bursts[n]} on {n}" for n in sorted(bursts))
                total = sum(bursts.values())
            else:
                trips = count_round_trips(app)
                assert call().status_code == 200
                total, described = trips.count, "one server"
            rows.append([operation, str(total), described])
    finally:
        app.extensions[EXTENSION_NAME].shutdown()
    return markdown_table(["Operation", "Round trips", "Where"], rows)


def report(
    args: argparse.Namespace,
    figures: dict[str, Figures],
    tables: dict[str, str],
    command_line: str,
    code: str,
) -> str:
    single, cluster = figures["single"], figures["cluster"]
    ratio = statistics.median(cluster.get_rps) / statistics.median(single.get_rps)
    batch_ratio = statistics.median(cluster.batch_rps) / statistics.median(single.batch_rps)
    rows = [
        [name, spread(f.get_rps, 0, "/s"), spread(f.get_p99_ms, 1, " ms"),
         spread(f.batch_rps, 0, "/s"), spread(f.batch_p99_ms, 1, " ms")]
        for name, f in figures.items()
    ]  # fmt: skip
    throughput = markdown_table(
        ["Redis", "GET hit", "GET p99", f"Batch-set of {BATCH}", "Batch-set p99"], rows
    )
    return (
        f"{SECTION}\n\n"
        f"`{command_line}` {DASH} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {code}, {machine()}; "
        f"{WORKERS} gevent workers per service, GET with {args.connections} connections, "
        f"batch-set with {BATCH_CONNECTIONS}, {args.seconds} s per run, {args.rounds} rounds "
        f"alternating which goes first; median (min{DASH}max over rounds).\n\n"
        f"{throughput}\n\n"
        f"The cluster served GET at {ratio:.2f}{X} and batch-sets at {batch_ratio:.2f}{X} "
        "the single server's rate. **On one 2-core machine the cluster cannot show its real "
        "gain**: its three masters share the two cores with both gunicorns and wrk, so it adds "
        "processes to schedule without adding CPU, and a batch pays one pipeline per master "
        "holding some of its keys instead of one in all. Its gain (the memory, CPU and network "
        "of several machines, a namespace spread over them) needs several machines to "
        "measure.\n\n"
        f"Where the namespace `{NS}` landed after seeding {GET_KEYS:,} entries and the batch "
        f"runs ({BUCKETS} buckets; each bucket is one hash tag, so one slot and one master):\n\n"
        f"{tables['distribution']}\n\n"
        "Redis round trips per request, counted per node in process (the limit check is its "
        "own call on a cluster, where the limiter's key and an entry are in different slots; "
        "on one server it rides inside the entry script):\n\n"
        f"Single server:\n\n{tables['single']}\n\nCluster:\n\n{tables['cluster']}\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    code = revision()
    command_line = "python -m tests.benchmarks.cluster " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    log(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    recreate_database(DATABASE_URL)
    token = make_token(sub="bench", scope="cache:write", ttl=6 * 3600)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cluster-")))
        wrk = Wrk(workdir)
        stack.callback(wrk.kill_background)
        log("starting a redis-server and a three-master cluster")
        (workdir / "single").mkdir()
        single = RedisServer(workdir / "single").start()
        stack.callback(single.stop)
        cluster = RedisCluster(masters=3, replicas=0).start()
        stack.callback(cluster.stop)
        urls = {"single": single.url, "cluster": cluster.url}
        servers: dict[str, Gunicorn] = {}
        for name, url in urls.items():
            env = {
                "CACHE_REDIS_URL": url,
                "CACHE_DATABASE_URL": DATABASE_URL,
                "CACHE_WEB_WORKERS": str(WORKERS),
                "CACHE_JWT_SECRET": TEST_JWT_SECRET,
                "CACHE_RATE_LIMIT_CACHE": HIGH_QUOTA,
                "CACHE_RATE_LIMIT_BATCH": HIGH_QUOTA,
            }
            servers[name] = Gunicorn(name, "cacheservice.wsgi:app", env, workdir, "/openapi.json")
            stack.callback(servers[name].stop)
            servers[name].start()
        keys = {name: seed(server.base_url, token) for name, server in servers.items()}
        figures = {name: Figures() for name in TOPOLOGIES}
        began = time.monotonic()
        for index in range(args.rounds):
            log(f"round {index + 1} of {args.rounds}")
            first = TOPOLOGIES[index % 2]
            for name, (get, batch) in measure_round(servers, wrk, args, token, first).items():
                figures[name].add(get, batch)
        log(f"throughput rounds took {time.monotonic() - began:.0f} s; counting round trips")
        tables = {
            "distribution": distribution(cluster),
            "single": per_node_round_trips(urls["single"], keys["single"]),
            "cluster": per_node_round_trips(urls["cluster"], keys["cluster"]),
        }
    markdown = report(args, figures, tables, command_line, code)
    print(markdown)
    if args.write:
        write_section(markdown, SECTION)
        log("wrote the section to BENCHMARKS.md")


if __name__ == "__main__":
    main()
