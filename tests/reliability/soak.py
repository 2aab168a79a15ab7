"""Soak: the whole stack under a steady mixed load for a long time, watched for slow drift.

    python -m tests.reliability.soak [--duration 600] [--rate R | --share 0.7]
        [--connections 8] [--mix full|get] [--sample-interval 10] [--p99-ms 15]
        [--workdir DIR] [--output F]

What runs: a private deployment (``tests/support/stack.py``: private ``redis-server`` and
Postgres, gunicorn with the repository's configuration and 2 gevent workers, JWT on, every
rate limit very high, the Procfile's Celery worker with ``--concurrency 2`` and beat) with the
deployment's intervals (flush every 5 s, prune every 30 s, probe every 10 s, task lock 60 s).
gunicorn's worker recycling is off (``CACHE_WEB_MAX_REQUESTS=0``) so that a leak shows as
growth instead of being reset by a recycle.

The load is ``wrk`` with a Lua script that paces each connection (one connection per wrk
thread) on a fixed schedule: the same idea as wrk2, whose latency figures are also corrected
for coordinated omission; here latency is measured from the moment a request is written, which
at 70% of capacity is almost always on schedule. The mix per 100 requests: 60 GETs of 1,000
seeded keys, 20 POSTs replacing entries over a fixed key set (500 keys per connection), 10
batch GETs of 20 keys, 8 session reads (sliding) of 200 seeded sessions, 2 session creations
with a 60 s TTL. So after the first minute the number of keys is steady, and memory should be.
``--mix get`` sends GETs only, the benchmark's scenario, to compare p99 like for like.

Capacity is measured first (``--measure-seconds`` of the same mix, unpaced) unless ``--rate``
gives it; the soak runs at ``--share`` (0.7) of it. Every ``--sample-interval`` seconds the
script records the RSS of each gunicorn worker and of the Celery worker's processes, Redis's
``used_memory`` and key count, the Celery queue's length (the broker's ``celery`` list) and
the service's own request counts by status (``/metrics``).

At the end it checks: no error (every response 2xx, no socket error or timeout); GET p99
within ``--p99-ms`` (default: BENCHMARKS.md's GET p99 at full load, 8 connections, the larger
of its two runs); growth under 10% of web and worker RSS, Redis memory and key count, from the
first minute after the warm-up to the last minute; a flat queue. It prints a markdown report
(stdout), writes every sample as JSON (``--output``) and exits 1 when a check failed.
Needs ``wrk`` (Debian's ``apt-get install wrk``), ``redis-server`` and Postgres binaries. The
load is ``paced_load.py``, the sampling and checks ``soak_checks.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tests.benchmarks.suite import CpuMeter, ProcfileWorker, log, record_text
from tests.reliability.paced_load import (
    ENTRY_TTL,
    GET_KEYS,
    MIXES,
    NS,
    LoadResult,
    lua_mix,
    run_wrk,
)
from tests.reliability.soak_checks import (
    BENCHMARK_GET_P99_MS,
    WARMUP_SECONDS,
    Check,
    Sample,
    Sampler,
    evaluate,
)
from tests.support.auth import make_token
from tests.support.stack import TIMEOUT, Stack, start_stack

SESSIONS = 200


def seed(stack: Stack) -> list[str]:
    """The GET keys and the sessions the mix reads."""
    value = json.loads(record_text(0))
    entries = [{"key": f"g{n}", "value": value, "ttl": ENTRY_TTL} for n in range(GET_KEYS)]
    response = stack.http.post(
        stack.url("/cache/batch-set"), json={"namespace": NS, "entries": entries}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["total_failed"] == 0, response.text
    sessions = []
    for n in range(SESSIONS):
        user = str(uuid.UUID(int=n % 20))
        body = {"user_id": user, "data": {"n": n}, "ttl": ENTRY_TTL}
        created = stack.http.post(stack.url("/sessions"), json=body, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        sessions.append(created.json()["session_id"])
    return sessions


def log_problems(stack: Stack) -> dict[str, int]:
    """Tracebacks and failed tasks in the processes' logs (each one a defect to look at)."""
    web = stack.web.log_path.read_text(errors="replace")
    worker = stack.worker.log_text()
    return {
        "gunicorn tracebacks": web.count("Traceback"),
        "gunicorn 5xx request log lines": len(re.findall(r'"status": 5\d\d', web)),
        "worker tracebacks": worker.count("Traceback"),
        "failed task runs": len(re.findall(r"raised unexpected", worker)),
    }


def _verdict(passed: bool) -> str:
    return "yes" if passed else "**NO**"


def report(
    args: argparse.Namespace,
    rate: float,
    capacity: float | None,
    load: LoadResult,
    samples: Sequence[Sample],
    checks: Sequence[Check],
    problems: dict[str, int],
    warmup: float,
) -> str:
    lines = [
        f"Soak: {load.seconds:.0f} s at {rate:,.0f} req/s target"
        + (f" ({args.share:.0%} of a measured {capacity:,.0f} req/s)" if capacity else "")
        + f", {args.connections} connections, mix {args.mix}; {load.requests:,} requests, "
        f"{load.rate:,.0f} req/s"
        " achieved.",
        "",
        "| check | measured | limit | passed |",
        "| --- | --- | --- | --- |",
        *(f"| {c.name} | {c.value} | {c.limit} | {_verdict(c.passed)} |" for c in checks),
        "",
        "| kind | requests | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    per_kind: Counter[str] = Counter()
    for key, count in load.statuses.items():
        per_kind[key.split()[0]] += count
    for kind, figures in sorted(load.latency_ms.items()):
        count = per_kind.total() if kind == "all" else per_kind[kind]
        lines.append(
            f"| {kind} | {count:,} | {figures['p50']:.2f} | {figures['p99']:.2f} "
            f"| {figures['max']:.2f} |"
        )
    lines += ["", f"Statuses: {dict(sorted(load.statuses.items()))}", f"Log problems: {problems}"]
    first, last = samples[0], samples[-1]
    steady = next((s for s in samples if s.elapsed >= warmup), first)
    growing = sorted(
        ((last.key_classes.get(k, 0) - steady.key_classes.get(k, 0), k) for k in last.key_classes),
        reverse=True,
    )[:5]
    lines.append(f"Key classes growing most after the warm-up: {growing}")
    lines.append(
        f"Samples: {len(samples)}; queue lengths {[s.queue_length for s in samples]}; "
        f"Redis keys {first.redis_keys} -> {last.redis_keys}; "
        f"Redis clients {first.redis_clients} -> {last.redis_clients}; "
        f"/metrics non-2xx/3xx {last.error_responses} of {last.requests}"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of soak (600)")
    parser.add_argument("--rate", type=float, help="req/s to run at (default: measured x share)")
    parser.add_argument("--share", type=float, default=0.7, help="share of capacity (0.7)")
    parser.add_argument("--measure-seconds", type=int, default=20, help="capacity run (20)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="full", help="requests (full)")
    parser.add_argument("--sample-interval", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--p99-ms", type=float, default=BENCHMARK_GET_P99_MS, help="GET p99")
    parser.add_argument("--workdir", type=Path, help="logs and scripts (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="JSON results (default: <workdir>/soak.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cacheservice-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    warmup = min(WARMUP_SECONDS, args.duration / 5)
    log(f"soak: working in {workdir}")
    with start_stack(
        workdir,
        flush_interval=5,
        probe_interval=10,
        task_lock_seconds=60,
        database_timeout=2,
        web_overrides={"CACHE_WEB_MAX_REQUESTS": "0"},
        worker_class=ProcfileWorker,
    ) as stack:
        stack.token = make_token(sub="soak", ttl=args.duration + 7200)
        sessions = seed(stack)
        token = stack.token
        capacity = None
        rate = args.rate
        if rate is None:
            log(f"measuring capacity for {args.measure_seconds} s")
            script = lua_mix(token, 0.0, sessions, args.mix)
            measured = run_wrk(
                workdir, stack.web.base_url, script, args.measure_seconds, args.connections
            )
            capacity = measured.rate
            rate = capacity * args.share
            log(f"capacity {capacity:,.0f} req/s (errors {measured.errors}); soak at {rate:,.0f}")
        interval = args.connections / rate
        # Postgres runs outside this process tree (pg_ctl daemonises it): count it as ours.
        postmaster = int((stack.postgres.data_dir / "postmaster.pid").read_text().split()[0])
        meter = CpuMeter([postmaster])
        sampler = Sampler(stack, args.sample_interval)
        sampler.start()
        log(f"soak for {args.duration} s")
        try:
            load = run_wrk(
                workdir,
                stack.web.base_url,
                lua_mix(token, interval, sessions, args.mix),
                args.duration,
                args.connections,
            )
        finally:
            sampler.stopping.set()
            sampler.join(timeout=60)
        others = meter.mark("soak")
        problems = log_problems(stack)
    samples = sampler.samples
    checks = evaluate(load, samples, args.p99_ms, warmup)
    text = report(args, rate, capacity, load, samples, checks, problems, warmup)
    text += f"\nOther processes used {others:.0%} of the machine's CPU during the soak."
    print(text)
    output = args.output or workdir / "soak.json"
    output.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "rate": rate,
                "capacity": capacity,
                "load": {**asdict(load), "statuses": dict(load.statuses)},
                "checks": [asdict(check) for check in checks],
                "problems": problems,
                "other_processes_cpu_share": others,
                "sampler_failures": sampler.failures,
                "samples": [asdict(sample) for sample in samples],
            },
            indent=1,
        )
    )
    log(f"samples and figures in {output}")
    return 0 if all(check.passed for check in checks) and not sampler.failures else 1


if __name__ == "__main__":
    sys.exit(main())
