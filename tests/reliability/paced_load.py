"""The soak's load: ``wrk`` with a Lua script that sends a mix of requests on a schedule.

Each connection (one per wrk thread) is paced on a fixed schedule: the idea of wrk2, which
Debian does not package. Latency is measured from the moment a request is written (wrk2 would
also correct for coordinated omission). Per request kind the script counts statuses and keeps a
latency histogram of 10-microsecond buckets; ``run_wrk`` parses both.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.suite import LUA_CLOCK, lua_string, record_text

NS = "soak"
GET_KEYS = 1000
POST_KEYS = 500  # per connection
BATCH_KEYS = 20
ENTRY_TTL = 86400
# Requests per 100 of each kind; the order is shuffled once so kinds interleave.
MIXES = {
    "full": {"get": 60, "post": 20, "batch": 10, "session_get": 8, "session_create": 2},
    # The benchmark's GET scenario alone, to compare p99 with BENCHMARKS.md like for like.
    "get": {"get": 100},
}

LUA_MIX = (
    LUA_CLOCK
    + r"""

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

n = 0
counts = {}
hist = {}
local kind, started, next_at = "get", 0, nil

function init(args)
  math.randomseed(id * 7919 + 1)
end

function request()
  n = n + 1
  kind = mix[n % #mix + 1]
  started = now()
  if kind == "get" then
    return wrk.format("GET", "/cache/g" .. ((n * 7 + id * 131) % get_keys) .. "?namespace=" .. ns)
  elseif kind == "post" then
    local body = '{"namespace":"' .. ns .. '","key":"w' .. id .. ':' .. (n % post_keys) ..
      '","ttl":' .. entry_ttl .. ',"tags":["w","t' .. (n % 50) .. '"],"value":' .. value .. '}'
    return wrk.format("POST", "/cache", nil, body)
  elseif kind == "batch" then
    local keys = {}
    for i = 1, batch_keys do keys[i] = '"g' .. ((n * 13 + i * 17 + id) % get_keys) .. '"' end
    local body = '{"namespace":"' .. ns .. '","keys":[' .. table.concat(keys, ",") .. ']}'
    return wrk.format("POST", "/cache/batch", nil, body)
  elseif kind == "session_get" then
    return wrk.format("GET", "/sessions/" .. sessions[(n + id) % #sessions + 1])
  else
    local user = string.format("00000000-0000-4000-8000-%06d%06d", id, n % 100)
    local body = '{"user_id":"' .. user .. '","ttl":60,"data":{"n":' .. n .. '}}'
    return wrk.format("POST", "/sessions", nil, body)
  end
end

function response(status, headers, body)
  local key = kind .. " " .. status
  counts[key] = (counts[key] or 0) + 1
  -- 10-microsecond buckets; flat string keys (wrk crashes copying nested tables out of threads).
  local bucket = kind .. " " .. math.floor((now() - started) * 1e5)
  hist[bucket] = (hist[bucket] or 0) + 1
end

if interval > 0 then
  -- A fixed schedule per connection: a slow response is caught up on, never skipped, unless
  -- the connection fell more than a second behind (then it restarts from now, no burst).
  function delay()
    local t = now()
    if next_at == nil then
      next_at = t + math.random() * interval
    else
      next_at = next_at + interval
    end
    if next_at < t - 1 then next_at = t end
    local wait = (next_at - t) * 1000
    if wait < 0 then return 0 end
    return wait
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SOAK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
  for _, t in ipairs(threads) do
    for key, count in pairs(t:get("counts")) do io.write("C " .. key .. " " .. count .. "\n") end
    for bucket, count in pairs(t:get("hist")) do
      io.write("H " .. bucket .. " " .. count .. "\n")
    end
  end
end
"""
)


def lua_mix(token: str, interval: float, sessions: Sequence[str], mix: str = "full") -> str:
    """The wrk script: the mix above, paced at one request per ``interval`` s per connection."""
    kinds = [kind for kind, share in MIXES[mix].items() for _ in range(share)]
    random.Random(7).shuffle(kinds)
    listed = ", ".join(lua_string(session) for session in sessions)
    value = record_text(1)
    return (
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'ns, get_keys, post_keys, batch_keys = "{NS}", {GET_KEYS}, {POST_KEYS}, {BATCH_KEYS}\n'
        f"entry_ttl, interval = {ENTRY_TTL}, {interval!r}\n"
        f"value = {lua_string(value)}\n"
        f"sessions = {{{listed}}}\n"
        f"mix = {{{', '.join(json.dumps(kind) for kind in kinds)}}}\n" + LUA_MIX
    )


@dataclass
class LoadResult:
    requests: int
    seconds: float
    socket_errors: int
    timeouts: int
    statuses: Counter[str]  # "<kind> <status>" -> count
    latency_ms: dict[str, dict[str, float]]  # kind -> p50, p99, max

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        bad = sum(n for key, n in self.statuses.items() if not key.split()[1].startswith("2"))
        return bad + self.socket_errors + self.timeouts


def percentiles(histogram: Counter[int]) -> dict[str, float]:
    """p50, p99 and max (ms) of a histogram of 10-microsecond buckets."""
    total = histogram.total()
    found: dict[str, float] = {}
    ordered = sorted(histogram.items())
    for name, share in (("p50", 0.50), ("p99", 0.99)):
        rank, seen = share * total, 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                found[name] = (bucket + 1) / 100
                break
    found["max"] = (ordered[-1][0] + 1) / 100 if ordered else 0.0
    return found


def run_wrk(
    workdir: Path, base_url: str, script: str, seconds: int, connections: int
) -> LoadResult:
    path = workdir / f"mix-{time.monotonic_ns()}.lua"
    path.write_text(script)
    command = [
        "wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(path), base_url,
    ]  # fmt: skip
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 120
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr}\n{completed.stdout[-2000:]}")
    output = completed.stdout
    found = re.search(r"^SOAK (\{.*\})$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{output[-3000:]}")
    summary = json.loads(found.group(1))
    statuses: Counter[str] = Counter()
    for kind, status, count in re.findall(r"^C (\S+) (\d+) (\d+)$", output, re.MULTILINE):
        statuses[f"{kind} {status}"] += int(count)
    histograms: dict[str, Counter[int]] = {}
    for kind, bucket, count in re.findall(r"^H (\S+) (\d+) (\d+)$", output, re.MULTILINE):
        histograms.setdefault(kind, Counter())[int(bucket)] += int(count)
    everything: Counter[int] = Counter()
    for histogram in histograms.values():
        everything.update(histogram)
    latency = {kind: percentiles(histogram) for kind, histogram in histograms.items()}
    latency["all"] = percentiles(everything)
    return LoadResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        socket_errors=summary["connect"] + summary["read"] + summary["write"],
        timeouts=summary["timeout"],
        statuses=statuses,
        latency_ms=latency,
    )
