"""The service against a bare Flask baseline, measured in one run: throughput, latency, round
trips, invalidation, memory, flush and worker balance, with the performance issue's targets.

    python -m tests.benchmarks.suite [--rounds 3] [--seconds 5] [--connections 32] [--quick]
        [--write]

What runs: the service the way the Procfile runs it (gunicorn with
``cacheservice.gunicorn_conf``, 2 gevent workers, JWT auth on, rate limits on with a quota of
100000000/hour, request log on, log level INFO), a Celery worker (concurrency 2) and beat with
the deployment intervals, and the baseline ``tests/benchmarks/bare_app.py`` (one Redis GET or
SET per request) under the same gunicorn configuration and environment. Each round runs every
wrk scenario against the service and the baseline back to back, alternating which goes first,
so both see the same machine load; figures are the median (min-max) over the rounds.
Redis round trips per request are counted in process with the tests' counting connection
(``tests/support/roundtrips.py``); per-worker CPU comes from ``/proc/<pid>/stat``; and each
phase reports the share of the machine other processes used meanwhile, so a run disturbed by
someone else's test suite says so.

Side effects: **Redis database 9 on 127.0.0.1:6379 is flushed** (cache and Celery broker);
the Postgres database ``cacheservice_bench`` is dropped and recreated (migrated). Memory and
flush figures use a private ``redis-server`` (its ``used_memory`` is this run's alone) and the
scratch database of ``tests/benchmarks/flush_throughput.py``, dropped at the end. Every process
started here is stopped at the end, also on failure or Ctrl-C.

Needs ``wrk`` (built with LuaJIT, as Debian's is), ``redis-server`` on PATH, Redis on
127.0.0.1:6379 and Postgres on 127.0.0.1:5432 (user postgres, trust). The markdown report goes
to stdout, progress to stderr; ``--write`` also replaces the "Service vs bare Flask" section
of BENCHMARKS.md. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cacheservice import create_app
from cacheservice.config import Settings
from cacheservice.db import Database
from cacheservice.metrics import flush
from cacheservice.migrations import upgrade
from cacheservice.services import EXTENSION_NAME, Services
from tests.benchmarks import compression, flush_throughput
from tests.support.auth import TEST_JWT_SECRET, authorized_client, make_token
from tests.support.celery_processes import CeleryProcess, celery_env
from tests.support.gunicorn_server import REPO_ROOT
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.roundtrips import count_round_trips

REDIS_URL = "redis://127.0.0.1:6379/9"
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cacheservice_bench"
HIGH_QUOTA = "100000000/hour"
NS = "bench"
TTL = 3600
GET_KEYS = 1000  # keys the GET scenarios cycle over (service and baseline alike)
POST_KEYS = 20000  # POST keys per wrk thread cycle over this many (creates, then replaces)
WORKERS = 2
# Batch calls take tens to hundreds of ms each: 2 per worker keep both busy without queueing.
BATCH_CONNECTIONS = 4
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
SECTION = "## Service vs bare Flask"
STARTUP_TIMEOUT = 90.0
X, DASH = "\u00d7", "\u2013"  # multiplication sign, en dash (markdown)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Data


def record(i: int) -> dict[str, Any]:
    """A user record of ~320 bytes of compact JSON, distinct per ``i``: the Compression
    section's generator (seeded with ``i``) without ``last_login_at``."""
    value = compression.user_record(random.Random(i))
    del value["last_login_at"]
    return value


@functools.cache
def record_text(i: int) -> str:
    return compact(record(i))


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def tags_of(i: int, first: str) -> list[str]:
    return [first, f"team:{i % 100}"]


def entry_json(key: str, i: int, first_tag: str) -> str:
    tags = compact(tags_of(i, first_tag))
    return f'{{"key":{compact(key)},"value":{record_text(i)},"ttl":{TTL},"tags":{tags}}}'


def batch_set_body(namespace: str, keys: Sequence[str], first_tag: str, offset: int = 0) -> str:
    """The JSON text of a batch-set body; each value is the exact text plain SET gets too."""
    items = ",".join(entry_json(key, offset + n, first_tag) for n, key in enumerate(keys))
    return f'{{"namespace":{compact(namespace)},"entries":[{items}]}}'


# --------------------------------------------------------------------------------------------
# Processes


def proc_children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    except OSError:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
        return found


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process from ``/proc/<pid>/stat``, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        children = proc_children(stack.pop())
        found += children
        stack += children
    return found


def tree_ticks(pid: int) -> int:
    """CPU ticks of a process's live descendants, each with its already reaped children."""
    total = 0
    for child in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total


def server_ticks(pid: int) -> int:
    """CPU ticks of a server process and of its children, live or reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15]) + tree_ticks(pid)


def shared_server_pids() -> list[int]:
    """The shared redis-server and the Postgres postmaster, whose work is mostly ours."""
    pids = []
    with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
        pids.append(int(client.info("server")["process_id"]))
    with contextlib.suppress(psycopg.Error, OSError, IndexError, ValueError, TypeError):
        with psycopg.connect(make_conninfo(DATABASE_URL, dbname="postgres")) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        stat = Path(f"/proc/{backend}/stat").read_text()
        pids.append(int(stat.rsplit(")", 1)[1].split()[1]))  # the postmaster
    return pids


class CpuMeter:
    """How much CPU processes other than this run used: the whole machine's busy time
    (``/proc/stat``) minus this process tree's and the shared Redis and Postgres servers'."""

    def __init__(self, server_pids: Sequence[int]) -> None:
        self.server_pids = list(server_pids)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.phases: list[tuple[str, float]] = []
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(values[:8]) - values[3] - values[4]  # all but idle and iowait (no guest)
        own = os.times()
        ours = (own.user + own.system + own.children_user + own.children_system) * self.tick
        ours += tree_ticks(os.getpid()) + sum(server_ticks(pid) for pid in self.server_pids)
        return time.monotonic(), busy, ours

    def mark(self, phase: str) -> float:
        """Share of the machine (0-1) used by other processes since the last mark."""
        now = self._snapshot()
        elapsed = now[0] - self._last[0]
        others = (now[1] - self._last[1]) - (now[2] - self._last[2])
        self._last = now
        share = max(0.0, others / self.tick / (elapsed * (os.cpu_count() or 1)))
        self.phases.append((phase, share))
        return share


class Gunicorn:
    """``gunicorn -c python:cacheservice.gunicorn_conf <app>`` on a free loopback port."""

    def __init__(self, name: str, app: str, env: dict[str, str], workdir: Path, ready: str):
        self.name, self.app, self.env, self.ready_path = name, app, env, ready
        self.log_path = workdir / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        for _ in range(3):
            self.port = free_port()
            env = {**os.environ, **self.env, "CACHE_WEB_BIND": f"127.0.0.1:{self.port}"}
            command = [sys.executable, "-m", "gunicorn", "-c", "python:cacheservice.gunicorn_conf"]
            with self.log_path.open("ab") as out:
                self.process = subprocess.Popen(
                    [*command, self.app],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_until_ready():
                return self
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def _wait_until_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # Port taken in between: retried on another one.
            with contextlib.suppress(requests.RequestException):
                requests.get(self.base_url + self.ready_path, timeout=5)
                if len(self.worker_pids()) == int(self.env["CACHE_WEB_WORKERS"]):
                    return True
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {STARTUP_TIMEOUT} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return sorted(proc_children(self.process.pid))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ProcfileWorker(CeleryProcess):
    """The Celery worker with the Procfile's ``--concurrency 2``."""

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("--concurrency") + 1] = "2"
        return command


# --------------------------------------------------------------------------------------------
# wrk

LUA_COMMON = r"""
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
n = 0
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  if dump_samples then dump_samples(threads) end
end
"""

# ``now()``: CLOCK_MONOTONIC in seconds (as Python's time.monotonic), in wrk's LuaJIT.
LUA_CLOCK = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
"""

# Per-request latency with start times (CLOCK_MONOTONIC, as Python's time.monotonic), for the
# invalidation scenario; exact only with one connection per wrk thread.
LUA_SAMPLES = (
    LUA_CLOCK
    + r"""
starts, lats = {}, {}
local started = 0
local plain_request = request
request = function()
  started = now()
  return plain_request()
end
function response(status, headers, body)
  local i = #lats + 1
  starts[i] = started
  lats[i] = now() - started
end
function dump_samples(threads)
  for _, t in ipairs(threads) do
    local s, l = t:get("starts"), t:get("lats")
    for i = 1, #l do io.write(string.format("S %.6f %.6f\n", s[i], l[i])) end
  end
end
"""
)


def lua_string(text: str) -> str:
    assert "]==]" not in text
    return f"[==[{text}]==]"


def lua_get(prefix: str, suffix: str, token: str | None, keys: int | None) -> str:
    """GETs over ``keys`` keys (cycled) or, with ``keys`` None, never the same key twice."""
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    name = 'id .. ":" .. n' if keys is None else f"((n * 7 + id * 131) % {keys})"
    return (
        f"{auth}local prefix, suffix = {lua_string(prefix)}, {lua_string(suffix)}\n"
        "function request()\n  n = n + 1\n"
        f'  return wrk.format("GET", prefix .. {name} .. suffix)\nend\n'
    )


def lua_post(path: str, body_head: str, body_tail: str, token: str | None) -> str:
    """POSTs of ``body_head .. <thread>:<n> .. body_tail`` (n cycling over POST_KEYS)."""
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    return (
        f'{auth}wrk.headers["Content-Type"] = "application/json"\n'
        f"local head, tail = {lua_string(body_head)}, {lua_string(body_tail)}\n"
        "function request()\n  n = n + 1\n"
        f'  local body = head .. id .. ":" .. (n % {POST_KEYS}) .. tail .. (n % 100) .. \'"]}}\'\n'
        f'  return wrk.format("POST", {lua_string(path)}, nil, body)\nend\n'
    )


def lua_static(path: str, body: str, token: str) -> str:
    return (
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local body = {lua_string(body)}\n"
        f'function request()\n  return wrk.format("POST", {lua_string(path)}, nil, body)\nend\n'
    )


def lua_batch_set(size: int, token: str, bodies: int = 10) -> str:
    """``bodies`` batch-set bodies per wrk thread, built once, sent in turn (replacing)."""
    value = record_text(7)
    return (
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local value = {lua_string(value)}\nlocal bodies = {{}}\n"
        "function init(args)\n"
        f"  for b = 1, {bodies} do\n    local items = {{}}\n"
        f"    for i = 1, {size} do\n"
        f'      items[i] = \'{{"key":"{NS}:bs{size}:\' .. id .. ":" .. b .. ":" .. i .. '
        f'\'","ttl":{TTL},"tags":["bs","team:\' .. (i % 100) .. \'"],"value":\' .. value .. "}}"\n'
        "    end\n"
        f'    bodies[b] = \'{{"namespace":"{NS}","entries":[\''
        ' .. table.concat(items, ",") .. "]}"\n'
        "  end\nend\n"
        "function request()\n  n = n + 1\n"
        f'  return wrk.format("POST", "/cache/batch-set", nil, bodies[n % {bodies} + 1])\nend\n'
    )


@dataclass
class WrkResult:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


class Wrk:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.scripts = 0
        self.background: list[subprocess.Popen[str]] = []

    def command(self, url: str, script: str, seconds: int, connections: int, threads: int):
        self.scripts += 1
        path = self.workdir / f"scenario-{self.scripts}.lua"
        path.write_text(script + LUA_COMMON)
        return [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(path), url,
        ]  # fmt: skip

    @staticmethod
    def parse(output: str, expect_status_errors: bool) -> WrkResult:
        found = re.search(r"^BENCH (\{.*\})$", output, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"unexpected wrk output:\n{output[-3000:]}")
        data = json.loads(found.group(1))
        result = WrkResult(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            status_errors=data["status_errors"],
            socket_errors=data["socket_errors"],
            timeouts=data["timeouts"],
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
        )
        wanted = result.requests if expect_status_errors else 0
        if result.requests == 0 or result.status_errors != wanted:
            raise RuntimeError(
                f"wrk: {result.status_errors} of {result.requests} responses had an error "
                f"status (expected {wanted}):\n{output[-2000:]}"
            )
        if result.socket_errors or result.timeouts:
            log(f"  wrk: {result.socket_errors} socket errors, {result.timeouts} timeouts")
        result.samples = [
            (float(start), float(latency))
            for start, latency in re.findall(r"^S (\S+) (\S+)$", output, re.MULTILINE)
        ]
        return result

    def run(
        self,
        url: str,
        script: str,
        seconds: int,
        connections: int,
        threads: int = 2,
        expect_status_errors: bool = False,
    ) -> WrkResult:
        command = self.command(url, script, seconds, connections, min(threads, connections))
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"wrk failed: {completed.stderr}\n{completed.stdout[-2000:]}")
        return self.parse(completed.stdout, expect_status_errors)

    def start(self, url: str, script: str, seconds: int, connections: int):
        """wrk in the background, one connection per thread; ``finish`` collects it."""
        command = self.command(url, script + LUA_SAMPLES, seconds, connections, connections)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.background.append(process)
        return process

    def finish(self, process: subprocess.Popen[str]) -> WrkResult:
        stdout, stderr = process.communicate(timeout=120)
        self.background.remove(process)
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed: {stderr}\n{stdout[-2000:]}")
        return self.parse(stdout, False)

    def kill_background(self) -> None:
        for process in self.background:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)
        self.background.clear()


# --------------------------------------------------------------------------------------------
# Results


def spread(values: Sequence[float], digits: int = 0, unit: str = "") -> str:
    if not values:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    median = fmt.format(statistics.median(values)) + unit
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}{DASH}{fmt.format(max(values))})"


@dataclass
class Row:
    scenario: str
    service: str
    baseline: str
    ratio: str
    target: str = "-"
    met: bool | None = None

    def cells(self) -> list[str]:
        met = "-" if self.met is None else ("**yes**" if self.met else "**NO**")
        return [self.scenario, self.service, self.baseline, self.ratio, self.target, met]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: int = 1) -> str:
    align = ["---"] * right + ["---:"] * (len(header) - right)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ratio_row(
        self,
        scenario: str,
        service: list[float],
        baseline: list[float],
        target: float | None = None,
        higher_is_better: bool = True,
        digits: int = 0,
        unit: str = "",
    ) -> float:
        """A row whose ratio is median(service) / median(baseline) (per-round ratios beside)."""
        ratio = statistics.median(service) / statistics.median(baseline)
        per_round = [s / b for s, b in zip(service, baseline, strict=True)]
        text = f"{ratio:.2f}{X}"
        if len(per_round) > 1:
            text += f" ({min(per_round):.2f}{DASH}{max(per_round):.2f})"
        met = None
        target_text = "-"
        if target is not None:
            met = ratio >= target if higher_is_better else ratio <= target
            target_text = f"{'≥' if higher_is_better else '≤'} {target:g}{X}"
        self.rows.append(
            Row(
                scenario,
                spread(service, digits, unit),
                spread(baseline, digits, unit),
                text,
                target_text,
                met,
            )
        )
        return ratio

    def markdown(self) -> str:
        header = ["scenario", "service", "baseline", "ratio", "target", "met?"]
        parts = [markdown_table(header, [row.cells() for row in self.rows])]
        parts += self.sections
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------
# Phases


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    service: Gunicorn
    bare: Gunicorn
    wrk: Wrk
    token: str
    report: Report
    series: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.series.setdefault(name, []).append(value)

    def wrk_run(self, server: Gunicorn, script: str, **kwargs: Any) -> WrkResult:
        return self.wrk.run(
            server.base_url, script, self.args.seconds, self.args.connections, **kwargs
        )


def session(token: str | None = None) -> requests.Session:
    http = requests.Session()
    if token:
        http.headers["Authorization"] = f"Bearer {token}"
    return http


def batch_set_http(base_url: str, token: str, bodies: Iterator[str], parallel: int = 4) -> None:
    sessions = [session(token) for _ in range(parallel)]

    def send(job: tuple[int, str]) -> None:
        index, body = job
        response = sessions[index % parallel].post(
            f"{base_url}/cache/batch-set",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        if response.status_code != 200 or response.json()["total_failed"]:
            raise RuntimeError(f"batch-set failed: {response.status_code} {response.text[:500]}")

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(send, enumerate(bodies)))
    for http in sessions:
        http.close()


def seed(bench: Bench) -> None:
    keys = [f"{NS}:get:{i}" for i in range(GET_KEYS)]
    batch_set_http(bench.service.base_url, bench.token, iter([batch_set_body(NS, keys, "get")]))
    client = redis.Redis.from_url(REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for i in range(GET_KEYS):
        pipe.set(f"bare:get:{i}", record_text(i), ex=TTL)
    pipe.execute()
    client.close()


def throughput_round(bench: Bench, round_index: int) -> None:
    token, service, bare = bench.token, bench.service, bench.bare
    value = record_text(7)
    first_service = round_index % 2 == 0
    service_post_head = f'{{"namespace":"{NS}","ttl":{TTL},"value":{value},"key":"{NS}:post:'
    bare_post_head = f'{{"ttl":{TTL},"value":{value},"key":"bare:post:'
    pairs: list[tuple[str, Callable[[], WrkResult], Callable[[], WrkResult]]] = [
        (
            "get_hit",
            lambda: bench.wrk_run(
                service, lua_get(f"/cache/{NS}:get:", f"?namespace={NS}", token, GET_KEYS)
            ),
            lambda: bench.wrk_run(bare, lua_get("/bare/bare:get:", "", None, GET_KEYS)),
        ),
        (
            "get_miss",
            lambda: bench.wrk_run(
                service,
                lua_get(f"/cache/{NS}:miss:", f"?namespace={NS}", token, None),
                expect_status_errors=True,
            ),
            lambda: bench.wrk_run(
                bare, lua_get("/bare/bare:miss:", "", None, None), expect_status_errors=True
            ),
        ),
        (
            "post",
            lambda: bench.wrk_run(
                service,
                lua_post("/cache", service_post_head, '","tags":["post","team:', token),
            ),
            lambda: bench.wrk_run(bare, lua_post("/bare", bare_post_head, '","x":["', None)),
        ),
    ]
    for name, run_service, run_bare in pairs:
        order = [("service", run_service), ("bare", run_bare)]
        for side, run in order if first_service else reversed(order):
            result = run()
            bench.add(f"{name}_{side}", result.rps)
            log(f"  {name:<9} {side:<8} {result.rps:8.0f} req/s  p50 {result.p50_ms:.2f} ms")
    for size in (100, 1000):
        keys = [f"{NS}:get:{i}" for i in range(size)]
        body = compact({"namespace": NS, "keys": keys})
        result = bench.wrk.run(
            service.base_url,
            lua_static("/cache/batch", body, token),
            bench.args.seconds,
            BATCH_CONNECTIONS,
        )
        bench.add(f"batch_get_{size}_keys", result.rps * size)
        log(f"  batch get {size:<5} {result.rps * size:10.0f} keys/s")
        result = bench.wrk.run(
            service.base_url, lua_batch_set(size, token), bench.args.seconds, BATCH_CONNECTIONS
        )
        bench.add(f"batch_set_{size}_keys", result.rps * size)
        log(f"  batch-set {size:<5} {result.rps * size:10.0f} entries/s")
    # Latency without queueing: one connection.
    single = [
        (
            "lat_get_service",
            service,
            lua_get(f"/cache/{NS}:get:", f"?namespace={NS}", token, GET_KEYS),
        ),
        ("lat_get_bare", bare, lua_get("/bare/bare:get:", "", None, GET_KEYS)),
    ]
    for size in (100, 1000):
        body = compact({"namespace": NS, "keys": [f"{NS}:get:{i}" for i in range(size)]})
        single.append((f"lat_batch_{size}", service, lua_static("/cache/batch", body, token)))
    for name, server, script in single:
        result = bench.wrk.run(server.base_url, script, bench.args.latency_seconds, 1, threads=1)
        bench.add(name, result.p50_ms)
        log(f"  {name:<16} p50 {result.p50_ms:.3f} ms (1 connection)")


def invalidation_round(bench: Bench, round_index: int, sizes: Sequence[int]) -> None:
    """Fill a tag of each size, then invalidate it while wrk runs GETs on other keys."""
    for size in sizes:
        tag = f"inv{size}"
        keys = [f"{NS}:{tag}:{round_index}:{i}" for i in range(size)]
        started = time.monotonic()
        bodies = (
            batch_set_body(NS, keys[start : start + 1000], tag, offset=start)
            for start in range(0, size, 1000)
        )
        batch_set_http(bench.service.base_url, bench.token, bodies)
        log(f"  filled tag {tag} with {size} entries in {time.monotonic() - started:.1f} s")
        time.sleep(1)
        before_seconds = 3.0
        window = 8 if size < 50_000 else 14
        script = lua_get(f"/cache/{NS}:get:", f"?namespace={NS}", bench.token, GET_KEYS)
        load_started = time.monotonic()
        process = bench.wrk.start(bench.service.base_url, script, window, 8)
        time.sleep(before_seconds)
        with session(bench.token) as http:
            inv_started = time.monotonic()
            response = http.post(
                f"{bench.service.base_url}/cache/invalidate",
                json={"namespace": NS, "tags": [tag]},
                timeout=120,
            )
            inv_ended = time.monotonic()
        result = bench.wrk.finish(process)
        if response.status_code != 200 or response.json()["total_invalidated"] != size:
            raise RuntimeError(f"invalidate: {response.status_code} {response.text[:300]}")
        before = [lat for start, lat in result.samples if load_started + 1 <= start < inv_started]
        during = [lat for start, lat in result.samples if inv_started <= start <= inv_ended]
        if inv_ended > load_started + window:
            bench.report.notes.append(
                f"invalidating {size} entries outlasted the GET load window ({window} s)."
            )
        p99_before, p99_during = percentile(before, 99) * 1000, percentile(during, 99) * 1000
        took = inv_ended - inv_started
        bench.add(f"inv{size}_seconds", took)
        bench.add(f"inv{size}_p99_before", p99_before)
        bench.add(f"inv{size}_p99_during", p99_during)
        bench.add(f"inv{size}_p99_ratio", p99_during / p99_before)
        bench.add(f"inv{size}_gets_during", len(during))
        log(
            f"  invalidate {size}: {took:.2f} s; GET p99 before {p99_before:.2f} ms "
            f"({len(before)} GETs), during {p99_during:.2f} ms ({len(during)} GETs)"
        )


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def balance(bench: Bench, runs: int, seconds: int) -> None:
    """Per-worker CPU (utime + stime deltas) over repeated GET-hit runs on the service."""
    script = lua_get(f"/cache/{NS}:get:", f"?namespace={NS}", bench.token, GET_KEYS)
    tick = os.sysconf("SC_CLK_TCK")
    rows = []
    ratios = []
    for run in range(runs):
        pids = bench.service.worker_pids()
        before = {pid: cpu_ticks(pid) for pid in pids}
        result = bench.wrk.run(
            bench.service.base_url, script, seconds, bench.args.connections, threads=2
        )
        after = {pid: cpu_ticks(pid) for pid in bench.service.worker_pids()}
        used = {}
        for pid, start in before.items():
            end = after.get(pid)
            if start is None or end is None:
                bench.report.notes.append(f"worker {pid} was replaced during balance run {run}.")
                continue
            used[pid] = (end - start) / tick
        shares = sorted(used.values())
        ratio = shares[-1] / shares[0] if len(shares) > 1 and shares[0] > 0 else float("inf")
        ratios.append(ratio)
        cells = ", ".join(f"{pid}: {cpu:.2f} s" for pid, cpu in sorted(used.items()))
        rows.append([str(run + 1), f"{result.rps:,.0f}", cells, f"{ratio:.2f}"])
        log(f"  balance run {run + 1}: {result.rps:.0f} req/s, CPU {cells}, max/min {ratio:.2f}")
    bench.series["balance_ratio"] = ratios
    bench.report.rows.append(
        Row(
            f"per-worker CPU max/min over {runs} GET-hit runs",
            spread(ratios, 2),
            "-",
            "-",
            "≤ 1.5 in every run",
            max(ratios) <= 1.5,
        )
    )
    bench.report.sections.append(
        f"Per-worker CPU (utime + stime of each gunicorn worker, `/proc/<pid>/stat`), "
        f"{runs} GET-hit runs of {seconds} s, {bench.args.connections} connections:\n\n"
        + markdown_table(["run", "req/s", "CPU per worker pid", "max/min"], rows)
    )


def round_trips(bench: Bench, repeat: int) -> None:
    """Redis round trips per request, counted in process by the tests' counting connection."""
    app = create_app(
        {
            "redis_url": REDIS_URL,
            "database_url": DATABASE_URL,
            "jwt_secret": TEST_JWT_SECRET,
            "rate_limit_cache": HIGH_QUOTA,
            "rate_limit_batch": HIGH_QUOTA,
        }
    )
    try:
        client = authorized_client(app, sub="bench-rt", scope="cache:write")
        counter = count_round_trips(app)
        ns = "rt"
        rows = []

        def measure(name: str, call: Callable[[int], Any], baseline: str) -> None:
            trips, commands = [], []
            for i in range(repeat):
                counter.reset()
                response = call(i)
                assert response.status_code < 500, response.get_json()
                trips.append(counter.count)
                commands.append(sum(counter.commands().values()))
            per_request = statistics.median(trips)
            rows.append(
                [
                    name,
                    f"{per_request:g} (max {max(trips)})",
                    f"{statistics.median(commands):g}",
                    baseline,
                    "1",
                    "**yes**" if per_request == 1 else "**NO**",
                ]
            )
            bench.series[f"rt_{name}"] = [float(per_request)]
            log(f"  {name}: {per_request:g} round trips, {statistics.median(commands):g} commands")

        def post_one(i: int) -> Any:
            body = entry_json(f"rt:{i}", i, "post")
            return client.post(
                "/cache", data=body[:-1] + f',"namespace":"{ns}"}}', content_type="application/json"
            )

        def batch_set(size: int) -> Callable[[int], Any]:
            def call(i: int) -> Any:
                keys = [f"rt:b{size}:{i}:{k}" for k in range(size)]
                body = batch_set_body(ns, keys, "bs")
                return client.post("/cache/batch-set", data=body, content_type="application/json")

            return call

        def batch_get(size: int) -> Callable[[int], Any]:
            def call(i: int) -> Any:
                keys = [f"rt:b1000:{i}:{k}" for k in range(size)]
                return client.post("/cache/batch", json={"namespace": ns, "keys": keys})

            return call

        measure("POST /cache (2 tags)", post_one, "1 (SET)")
        measure("GET hit", lambda i: client.get(f"/cache/rt:{i}?namespace={ns}"), "1 (GET)")
        measure("GET miss", lambda i: client.get(f"/cache/rt:none:{i}?namespace={ns}"), "1 (GET)")
        measure("DELETE", lambda i: client.delete(f"/cache/rt:{i}?namespace={ns}"), "-")
        measure("batch-set 100", batch_set(100), "-")
        measure("batch-set 1000", batch_set(1000), "-")
        measure("batch get 100", batch_get(100), "-")
        measure("batch get 1000", batch_get(1000), "-")
        bench.report.sections.append(
            "Redis round trips per request (each write burst of a connection; the median of "
            f"{repeat} requests each, the max shows a background metrics push landing in one), "
            "counted in process with `tests/support/roundtrips.py` on the same settings "
            "(auth and limits on):\n\n"
            + markdown_table(
                ["operation", "round trips", "commands", "bare app", "target", "met?"], rows
            )
        )
    finally:
        app.extensions[EXTENSION_NAME].shutdown()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


KEY_CLASSES = ("entry hashes", "indexes", "tag sets", "tag registries", "other cs:*", "strings")


def key_class(key: bytes) -> str:
    if b":e:" in key:
        return "entry hashes"
    if key.endswith(b":idx"):
        return "indexes"
    if b":t:" in key:
        return "tag sets"
    if key.endswith(b":tags"):
        return "tag registries"
    return "other cs:*" if key.startswith(b"cs:") else "strings"


@dataclass
class Footprint:
    """Bytes per entry: ``used_memory`` delta, and ``MEMORY USAGE`` summed per kind of key."""

    total: float
    before_flush: float
    kinds: dict[str, float]
    encoding: str

    @classmethod
    def of(cls, client: redis.Redis, entries: int, start: int, before_flush: int) -> Footprint:
        kinds: Counter[str] = Counter()
        encodings: Counter[str] = Counter()
        keys = list(client.scan_iter(count=1000))
        for offset in range(0, len(keys), 1000):
            chunk = keys[offset : offset + 1000]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            for key, size in zip(chunk, pipe.execute(), strict=True):
                kinds[key_class(key)] += size or 0
        for key in [k for k in keys if key_class(k) in ("entry hashes", "strings")][:200]:
            encodings[client.object("encoding", key).decode()] += 1
        return cls(
            total=(used_memory(client) - start) / entries,
            before_flush=(before_flush - start) / entries,
            kinds={kind: kinds[kind] / entries for kind in KEY_CLASSES},
            encoding="/".join(encodings),
        )


def memory(bench: Bench, private: RedisServer, entries: int) -> None:
    """Bytes per entry in a private Redis: service (plain and zstd+dict) vs plain SET EX."""
    app = create_app(
        {
            "redis_url": private.url,
            "database_url": DATABASE_URL,
            "jwt_secret": TEST_JWT_SECRET,
            "rate_limit_cache": HIGH_QUOTA,
            "rate_limit_batch": HIGH_QUOTA,
        }
    )
    services: Services = app.extensions[EXTENSION_NAME]
    client = private.client()
    admin = authorized_client(app, sub="bench-admin", scope="cache:admin")
    layouts: dict[str, Footprint] = {}
    try:

        def fill(namespace: str, count: int, offset: int = 0) -> None:
            for start in range(offset, offset + count, 1000):
                keys = [f"user:{i}" for i in range(start, min(offset + count, start + 1000))]
                body = batch_set_body(namespace, keys, "user", offset=start)
                response = admin.post(
                    "/cache/batch-set", data=body, content_type="application/json"
                )
                assert response.status_code == 200, response.get_json()
                assert response.get_json()["total_failed"] == 0, response.get_json()

        def measured(namespace: str) -> Footprint:
            fill(namespace, 10)  # Scripts loaded, connections open, rate limit key present.
            client.flushall(asynchronous=False)
            start = used_memory(client)
            fill(namespace, entries)
            filled = used_memory(client)
            # What the workers do every 5 s: pending hit/metadata marks leave Redis.
            flush.flush_entry_stats(services.pending, services.database, services.queries)
            return Footprint.of(client, entries, start, filled)

        log(f"  service, no compression: {entries} entries")
        layouts["service"] = measured("mem")
        metadata = admin.get("/cache/user:1?namespace=mem&include_metadata=true").get_json()

        log("  service, no compression, Redis hash-max-listpack-value 1024")
        client.config_set("hash-max-listpack-value", 1024)
        try:
            layouts["service, hash-max-listpack-value 1024"] = measured("mem")
        finally:
            client.config_set("hash-max-listpack-value", 64)

        log("  plain SET key json EX ttl")
        client.flushall(asynchronous=False)
        start = used_memory(client)
        pipe = client.pipeline(transaction=False)
        for i in range(entries):
            pipe.set(f"user:{i}", record_text(i), ex=TTL)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        layouts["plain SET EX"] = Footprint.of(client, entries, start, used_memory(client))

        log("  service, zstd + trained dictionary")
        client.flushall(asynchronous=False)
        fill("memz", 5000, offset=10**6)  # Trained on other records than those measured.
        trained = admin.post("/namespaces/memz/dictionary")
        assert trained.status_code == 201, trained.get_json()
        configured = admin.put(
            "/namespaces/memz", json={"compression": {"algorithm": "zstd", "dictionary": True}}
        )
        assert configured.status_code in (200, 201), configured.get_json()
        layouts["service, zstd + dictionary"] = measured("memz")
        client.config_set("hash-max-listpack-value", 1024)
        try:
            layouts["service, zstd + dictionary, hash-max-listpack-value 1024"] = measured("memz")
        finally:
            client.config_set("hash-max-listpack-value", 64)
        zmeta = admin.get("/cache/user:1?namespace=memz&include_metadata=true").get_json()
        if zmeta.get("compression") != "zstd+dict":
            bench.report.notes.append(f"zstd namespace stored {zmeta.get('compression')!r}.")
        version = redis_version(client)
    finally:
        client.close()
        services.shutdown()
    plain = layouts["plain SET EX"].total
    for name, value in layouts.items():
        bench.series[f"mem {name}"] = [value.total]
    mean_value = statistics.mean(len(record_text(i)) for i in range(0, entries, 97))
    service, zstd = layouts["service"].total, layouts["service, zstd + dictionary"].total
    bench.report.rows += [
        Row(
            f"Redis bytes per entry ({entries:,} {X} {mean_value:.0f} B JSON, 2 tags, TTL)",
            f"{service:,.0f}",
            f"{plain:,.0f} (SET EX)",
            f"{service / plain:.2f}{X}",
            f"≤ 1.5{X}",
            service / plain <= 1.5,
        ),
        Row(
            "… with zstd + trained dictionary",
            f"{zstd:,.0f}",
            f"{plain:,.0f} (SET EX)",
            f"{zstd / plain:.2f}{X}",
            f"≤ 1.0{X}",
            zstd / plain <= 1.0,
        ),
    ]
    rows = []
    for name, value in layouts.items():
        rest = value.total - sum(value.kinds.values())
        cells = [f"{value.kinds[kind]:,.0f}" for kind in KEY_CLASSES]
        rows.append(
            [name, value.encoding, *cells, f"{rest:,.0f}", f"**{value.total:,.0f}**",
             f"{value.total / plain:.2f}{X}"]
        )  # fmt: skip
    bench.report.sections.append(
        f"Redis memory per entry ({entries:,} entries; private redis-server {version}; "
        "`used_memory` delta after the entry-stats flush, split by `MEMORY USAGE` per kind "
        "of key; *rest* is the keyspace and expiry dictionaries and allocator slack):\n\n"
        + markdown_table(
            ["layout", "value encoding", *KEY_CLASSES, "rest", "total", f"{X} plain"], rows
        )
    )
    bench.report.notes.append(
        f"Memory: before the entry-stats flush (which the workers run every 5 s) the pending "
        f"change marks add {layouts['service'].before_flush - service:,.0f} B per entry. "
        f"`user:1` is {metadata.get('size_bytes', '?')} B of JSON, stored as "
        f"{metadata.get('stored_bytes', '?')} B plain and {zmeta.get('stored_bytes', '?')} B "
        f"with `compression` {zmeta.get('compression')!r}. An entry hash holds the value and "
        "12 metadata fields; Redis keeps a hash as a compact listpack only while every field "
        "is at most `hash-max-listpack-value` (64) bytes, so any value over 64 bytes turns "
        "the entry into a real hash table."
    )


def redis_version(client: redis.Redis) -> str:
    with contextlib.suppress(redis.RedisError):
        return str(client.info("server")["redis_version"])
    return "?"


def flush_figures(bench: Bench, private: RedisServer, entries: int, updates: int) -> None:
    """``flush_entry_stats`` throughput, with ``tests/benchmarks/flush_throughput.py``'s fill."""
    url = flush_throughput.DEFAULT_DATABASE_URL
    flush_throughput.recreate_database(url)
    with contextlib.closing(private.client()) as client:
        client.flushall()
    app = create_app(
        {
            "redis_url": private.url,
            "database_url": url,
            "auth_mode": "disabled",
            "rate_limit_cache": flush_throughput.UNLIMITED,
            "rate_limit_batch": flush_throughput.UNLIMITED,
        }
    )
    services: Services = app.extensions[EXTENSION_NAME]
    database = Database(Settings(database_url=url, database_timeout=30))
    try:
        keys = flush_throughput.fill(app, entries, 10)
        total = sum(len(names) for names in keys.values())
        elapsed, report = flush_throughput.timed_flush(services, database)
        assert report.rows == total, report
        bench.add("flush_insert", total / elapsed)
        log(f"  flush (inserts): {total / elapsed:,.0f} entries/s")
        for _ in range(updates):
            flush_throughput.hit_all(app, keys)
            elapsed, report = flush_throughput.timed_flush(services, database)
            assert report.rows == total, report
            bench.add("flush_update", total / elapsed)
            log(f"  flush (updates): {total / elapsed:,.0f} entries/s")
    finally:
        database.close()
        services.shutdown()
        flush_throughput.drop_database(url)
    for name, label in (("flush_insert", "new rows"), ("flush_update", "updated rows")):
        values = bench.series[name]
        bench.report.rows.append(
            Row(
                f"flush to Postgres, {label} ({total:,} entries, entries/s)",
                spread(values),
                "-",
                "-",
                "≥ 20,000/s",
                statistics.median(values) >= 20_000,
            )
        )


def recreate_database(url: str) -> None:
    name = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    upgrade(url)


# --------------------------------------------------------------------------------------------
# Report


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} {X} {model}, Python {platform.python_version()}, {platform.machine()}"


def revision() -> str:
    """The commit measured, and whether the service code differs from it."""
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        sha = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "cacheservice", "schemas", "workers", "sql"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {sha}" + (" with uncommitted service changes" if changed else "")


def throughput_rows(bench: Bench) -> None:
    s, report = bench.series, bench.report
    report.ratio_row("GET hit (req/s)", s["get_hit_service"], s["get_hit_bare"], 0.8)
    report.ratio_row("GET miss (req/s)", s["get_miss_service"], s["get_miss_bare"])
    report.ratio_row(
        "POST /cache, 2 tags (req/s; baseline SET EX)", s["post_service"], s["post_bare"], 0.7
    )
    for size in (100, 1000):
        report.ratio_row(
            f"batch get {size} (keys/s; baseline: service single GET)",
            s[f"batch_get_{size}_keys"],
            s["get_hit_service"],
        )
    for size in (100, 1000):
        report.ratio_row(
            f"batch-set {size} (entries/s; baseline: service POST)",
            s[f"batch_set_{size}_keys"],
            s["post_service"],
        )
    report.ratio_row(
        "GET hit p50 latency, 1 connection (ms)",
        s["lat_get_service"],
        s["lat_get_bare"],
        higher_is_better=False,
        digits=2,
    )
    for size in (100, 1000):
        report.ratio_row(
            f"batch get {size} p50 latency, 1 connection (ms; baseline: service GET)",
            s[f"lat_batch_{size}"],
            s["lat_get_service"],
            20 if size == 1000 else None,
            higher_is_better=False,
            digits=2,
        )


def invalidation_rows(bench: Bench, sizes: Sequence[int]) -> None:
    s = bench.series
    for size in sizes:
        seconds = s[f"inv{size}_seconds"]
        bench.report.rows.append(
            Row(
                f"invalidate a {size:,}-entry tag (s)",
                spread(seconds, 2),
                "-",
                "-",
                "≤ 3 s" if size >= 100_000 else "-",
                statistics.median(seconds) <= 3 if size >= 100_000 else None,
            )
        )
        ratios = s[f"inv{size}_p99_ratio"]
        bench.report.rows.append(
            Row(
                f"… GET p99 during / before (ms; 8 connections, "
                f"{statistics.median(s[f'inv{size}_gets_during']):.0f} GETs during)",
                spread(s[f"inv{size}_p99_during"], 2),
                spread(s[f"inv{size}_p99_before"], 2),
                f"{statistics.median(ratios):.2f}{X}"
                + (f" ({min(ratios):.2f}{DASH}{max(ratios):.2f})" if len(ratios) > 1 else ""),
                f"≤ 2{X}",
                statistics.median(ratios) <= 2,
            )
        )


def write_section(markdown: str, section: str = SECTION) -> None:
    """Replace the ``section`` (a ``## `` heading) of BENCHMARKS.md, or append it."""
    text = BENCHMARKS_MD.read_text()
    start = text.find(section + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + markdown.rstrip("\n") + "\n"
    else:
        following = text.find("\n## ", start + len(section))
        tail = text[following + 1 :] if following != -1 else ""
        text = text[:start] + markdown.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    BENCHMARKS_MD.write_text(text)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--seconds", type=int, default=None, help="per wrk run; default 5 (2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (2 if args.quick else 5)
    args.memory_entries = 20_000 if args.quick else 100_000
    args.flush_entries = 20_000 if args.quick else 100_000
    args.invalidate_sizes = (10_000, 100_000)
    args.balance_runs, args.balance_seconds = 10, (1 if args.quick else 3)
    args.latency_seconds = min(args.seconds, 3)
    args.round_trip_repeat = 5 if args.quick else 20
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.monotonic()
    load_before = os.getloadavg()
    code = revision()
    command_line = "python -m tests.benchmarks.suite " + shlex.join(
        sys.argv[1:] if argv is None else list(argv)
    )
    log(f"load average {load_before[0]:.2f} on {os.cpu_count()} CPUs")
    redis.Redis.from_url(REDIS_URL).flushdb()
    recreate_database(DATABASE_URL)
    token = make_token(sub="bench", scope="cache:write", ttl=6 * 3600)
    report = Report()
    meter = CpuMeter(shared_server_pids())
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        wrk = Wrk(workdir)
        stack.callback(wrk.kill_background)
        env = {
            "CACHE_REDIS_URL": REDIS_URL,
            "CELERY_BROKER_URL": REDIS_URL,
            "CACHE_DATABASE_URL": DATABASE_URL,
            "CACHE_WEB_WORKERS": str(WORKERS),
            "CACHE_JWT_SECRET": TEST_JWT_SECRET,
            "CACHE_RATE_LIMIT_CACHE": HIGH_QUOTA,
            "CACHE_RATE_LIMIT_BATCH": HIGH_QUOTA,
        }
        celery = celery_env(
            redis_url=REDIS_URL,
            broker_url=REDIS_URL,
            database_url=DATABASE_URL,
            schedule_file=workdir / "beat-schedule",
        )
        for name in ("CACHE_FLUSH_INTERVAL", "CACHE_PROBE_INTERVAL", "CACHE_TASK_LOCK_SECONDS"):
            celery.pop(name)  # The deployment's intervals.
        log("starting the service, the baseline, a celery worker and beat")
        service = Gunicorn("service", "cacheservice.wsgi:app", env, workdir, "/openapi.json")
        bare = Gunicorn("bare", "tests.benchmarks.bare_app:app", env, workdir, "/bare/ready")
        worker = ProcfileWorker("worker", celery, workdir / "worker.log")
        beat = CeleryProcess("beat", celery, workdir / "beat.log")
        for process in (service, bare, worker, beat):
            stack.callback(process.stop)
            process.start()
        private = RedisServer(workdir).start()
        stack.callback(private.stop)
        bench = Bench(args, workdir, service, bare, wrk, token, report)
        seed(bench)
        first_pids = service.worker_pids()

        log("round trips")
        round_trips(bench, args.round_trip_repeat)
        meter.mark("setup")
        for round_index in range(args.rounds):
            log(f"round {round_index + 1} of {args.rounds}: throughput and latency")
            throughput_round(bench, round_index)
            log(f"  other processes used {meter.mark(f'round {round_index + 1}'):.0%} of the CPUs")
            log(f"round {round_index + 1} of {args.rounds}: invalidation")
            invalidation_round(bench, round_index, args.invalidate_sizes)
            meter.mark(f"invalidation {round_index + 1}")
        throughput_rows(bench)
        invalidation_rows(bench, args.invalidate_sizes)
        log("worker balance")
        balance(bench, args.balance_runs, args.balance_seconds)
        meter.mark("balance")
        log("memory per entry")
        memory(bench, private, args.memory_entries)
        meter.mark("memory")
        log("flush throughput")
        flush_figures(bench, private, args.flush_entries, updates=1 if args.quick else 2)
        meter.mark("flush")
        for process, name in ((worker, "celery worker"), (beat, "celery beat")):
            if not process.is_running():
                report.notes.append(f"{name} was not running at the end: {process.log_tail(5)}")
        if service.worker_pids() != first_pids:
            report.notes.append(
                f"gunicorn replaced a worker during the run ({first_pids} -> "
                f"{service.worker_pids()}): max_requests recycling or a crash."
            )
    minutes = (time.monotonic() - began) / 60
    shares = ", ".join(f"{phase} {share:.0%}" for phase, share in meter.phases)
    disturbed = [f"{phase} ({share:.0%})" for phase, share in meter.phases if share > 0.1]
    report.notes.insert(
        0,
        f"Load average before the run {load_before[0]:.2f} (1 min) / {load_before[1]:.2f} "
        f"(5 min). Share of the machine's CPU used by other processes (busy time in /proc/stat "
        f"minus this run's process tree and the Redis and Postgres servers): {shares}. "
        + (
            f"**Other work competed for the CPUs during {', '.join(disturbed)}: figures "
            "from those phases are less reliable.**"
            if disturbed
            else "The machine was otherwise quiet."
        )
        + f" The run took {minutes:.1f} min.",
    )
    markdown = (
        f"{SECTION}\n\n"
        f"`{command_line}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {code}, {machine()}; "
        f"{WORKERS} gevent workers per server, {args.connections} connections (2 wrk "
        f"threads), {args.seconds} s per run, {args.rounds} rounds interleaving service and "
        f"baseline; median (min{DASH}max over rounds).\n\n" + report.markdown() + "\n"
    )
    print(markdown)
    if args.write:
        write_section(markdown)
        log(f"wrote the section to {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
