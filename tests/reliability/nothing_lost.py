"""Nothing lost: every write the service acknowledged can be read back, and every session
survives Redis losing everything.

    python -m tests.reliability.nothing_lost [--duration 60] [--writers 4] [--maxmemory 64mb]
        [--workdir DIR]

What runs: a private deployment (``tests/support/stack.py``: private ``redis-server`` and
Postgres, gunicorn with two workers and JWT on, a Celery worker and beat flushing every 0.5 s).
For ``--duration`` seconds, ``--writers`` threads write unique keys with a one-day TTL (every
fifth call a batch-set of 20, the others single POSTs) and one thread creates sessions; every
2xx is logged to ``<workdir>/acknowledged.jsonl``, and only items the response reports as
stored count as acknowledged. Then:

1. every acknowledged key is read back (batch GETs) and its value compared. A key that is
   missing is explained only by eviction: the check passes when there are no more missing
   keys than Redis's ``evicted_keys`` (``INFO stats``; 0 unless ``--maxmemory`` makes Redis
   evict, with the recommended ``volatile-lru``);
2. Redis is emptied (``FLUSHALL``, which also empties the Celery broker), and every
   acknowledged session is read through the API (``touch=false``) with its data.

Prints a summary; exits 1 if anything acknowledged was lost or read back wrong.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cacheservice.store.sessions import parse_session_id
from tests.support.stack import TIMEOUT, Stack, start_stack

NS = "nothing-lost"
ENTRY_TTL = 86400
SESSION_TTL = 86400
BATCH_SIZE = 20
BATCH_EVERY = 5
READ_CHUNK = 1000


@dataclass
class Options:
    duration: float = 60.0
    writers: int = 4
    # Redis maxmemory (e.g. "64mb"), so that eviction happens and must explain every absence.
    maxmemory: str | None = None


@dataclass
class Outcome:
    """What was acknowledged and what could be read back."""

    attempts: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: dict[str, Any] = field(default_factory=dict)  # key -> value
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    evicted_keys: int = 0
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> data
    sessions_missing: list[str] = field(default_factory=list)
    sessions_wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def absences_explained(self) -> bool:
        return len(self.missing) <= self.evicted_keys

    @property
    def ok(self) -> bool:
        return (
            self.absences_explained
            and not self.wrong
            and not self.sessions_missing
            and not self.sessions_wrong
            and not self.errors
        )

    def summary(self) -> str:
        return "\n".join(
            [
                f"writes: {self.attempts} calls, statuses {dict(sorted(self.statuses.items()))}",
                f"acknowledged keys: {len(self.acknowledged)}; missing {len(self.missing)} "
                f"(Redis evicted_keys {self.evicted_keys}: "
                f"{'explained' if self.absences_explained else 'NOT explained'}); "
                f"wrong value {len(self.wrong)}",
                f"acknowledged sessions: {len(self.sessions)}; after FLUSHALL missing "
                f"{len(self.sessions_missing)}, wrong data {len(self.sessions_wrong)}",
                f"client errors: {self.errors[:5]}",
                self.verdict(),
            ]
        )

    def verdict(self) -> str:
        if not self.ok:
            return "LOSS OR CORRUPTION FOUND"
        return "NOTHING LOST BEYOND EVICTION" if self.missing else "NOTHING LOST"


class Journal:
    """Every acknowledged write, appended as a JSON line, and kept in the outcome."""

    def __init__(self, path: Path, outcome: Outcome) -> None:
        self.file = path.open("a", encoding="utf-8")
        self.outcome = outcome
        self.lock = threading.Lock()

    def status(self, status: int) -> None:
        with self.lock:
            self.outcome.attempts += 1
            self.outcome.statuses[status] += 1

    def entry(self, key: str, value: Any) -> None:
        with self.lock:
            self.outcome.acknowledged[key] = value
            self.file.write(json.dumps({"entry": key, "value": value}) + "\n")

    def session(self, session_id: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.outcome.sessions[session_id] = data
            self.file.write(json.dumps({"session": session_id, "data": data}) + "\n")

    def error(self, error: BaseException) -> None:
        with self.lock:
            self.outcome.errors.append(repr(error))

    def close(self) -> None:
        self.file.close()


def value_for(writer: int, n: int) -> dict[str, Any]:
    return {"writer": writer, "n": n, "pad": secrets.token_hex(32)}


def write_entries(stack: Stack, journal: Journal, writer: int, deadline: float) -> None:
    n = 0
    try:
        while time.monotonic() < deadline:
            if n % BATCH_EVERY == 0:
                items = {f"w{writer}-{n}-{i}": value_for(writer, n * 100 + i) for i in range(20)}
                body = {
                    "namespace": NS,
                    "entries": [
                        {"key": key, "value": value, "ttl": ENTRY_TTL}
                        for key, value in items.items()
                    ],
                }
                response = stack.http.post(
                    stack.url("/cache/batch-set"), json=body, timeout=TIMEOUT
                )
                journal.status(response.status_code)
                if response.status_code == 200:
                    for item in response.json()["entries"]:
                        if "error" not in item:  # Each item fails alone; only stored ones count.
                            journal.entry(item["key"], items[item["key"]])
            else:
                key, value = f"w{writer}-{n}", value_for(writer, n)
                body = {"namespace": NS, "key": key, "value": value, "ttl": ENTRY_TTL}
                response = stack.http.post(stack.url("/cache"), json=body, timeout=TIMEOUT)
                journal.status(response.status_code)
                if 200 <= response.status_code < 300:
                    journal.entry(key, value)
            n += 1
    except Exception as error:  # Reported in the outcome, which then fails.
        journal.error(error)


def create_sessions(stack: Stack, journal: Journal, deadline: float) -> None:
    n = 0
    try:
        while time.monotonic() < deadline:
            data = {"n": n, "pad": secrets.token_hex(16)}
            body = {"user_id": str(uuid.UUID(int=n % 50)), "data": data, "ttl": SESSION_TTL}
            response = stack.http.post(stack.url("/sessions"), json=body, timeout=TIMEOUT)
            journal.status(response.status_code)
            if response.status_code == 201:
                journal.session(response.json()["session_id"], data)
            n += 1
    except Exception as error:  # Reported in the outcome, which then fails.
        journal.error(error)


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def verify_entries(stack: Stack, outcome: Outcome) -> None:
    keys = sorted(outcome.acknowledged)
    for chunk in chunks(keys, READ_CHUNK):
        response = stack.http.post(
            stack.url("/cache/batch"), json={"namespace": NS, "keys": list(chunk)}, timeout=60
        )
        if response.status_code != 200:
            raise RuntimeError(f"batch read failed: {response.status_code} {response.text}")
        found = {entry["key"]: entry["value"] for entry in response.json()["entries"]}
        for key in chunk:
            if key not in found:
                outcome.missing.append(key)
            elif found[key] != outcome.acknowledged[key]:
                outcome.wrong.append(key)
    client = stack.redis()
    try:
        outcome.evicted_keys = int(client.info("stats")["evicted_keys"])
    finally:
        client.close()


def hot_key(session_id: str) -> str:
    parsed = parse_session_id(session_id)
    if parsed is None:
        raise ValueError(f"malformed session id {session_id[:7]}...")
    bucket, secret = parsed
    return bucket.session(secret)


def verify_sessions_after_flushall(stack: Stack, outcome: Outcome) -> None:
    hot_keys = [hot_key(session_id) for session_id in outcome.sessions]
    client = stack.redis()
    try:
        client.flushall()
        # The stack goes on writing its own keys at once (metrics, locks): look at the
        # sessions' hot copies alone, which only the reads below could bring back.
        left = sum(int(client.exists(*chunk)) for chunk in chunks(hot_keys, READ_CHUNK) if chunk)
    finally:
        client.close()
    if left:
        raise RuntimeError(f"{left} session hot copies survived FLUSHALL")
    for session_id, data in outcome.sessions.items():
        response = stack.http.get(
            stack.url(f"/sessions/{session_id}"), params={"touch": "false"}, timeout=TIMEOUT
        )
        if response.status_code == 404:
            outcome.sessions_missing.append(session_id)
        elif response.status_code != 200:
            raise RuntimeError(f"session read failed: {response.status_code} {response.text}")
        elif response.json()["data"] != data:
            outcome.sessions_wrong.append(session_id)


def run(options: Options, workdir: Path) -> Outcome:
    """Start a private stack in ``workdir``, write, verify, stop; the outcome."""
    outcome = Outcome()
    with start_stack(workdir) as stack:
        if options.maxmemory:
            client = stack.redis()
            client.config_set("maxmemory", options.maxmemory)
            client.config_set("maxmemory-policy", "volatile-lru")
            client.close()
        journal = Journal(workdir / "acknowledged.jsonl", outcome)
        deadline = time.monotonic() + options.duration
        threads = [
            threading.Thread(target=write_entries, args=(stack, journal, n, deadline))
            for n in range(options.writers)
        ]
        threads.append(threading.Thread(target=create_sessions, args=(stack, journal, deadline)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        journal.close()
        verify_entries(stack, outcome)
        verify_sessions_after_flushall(stack, outcome)
    return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of writes (60)")
    parser.add_argument("--writers", type=int, default=4, help="entry writer threads (4)")
    parser.add_argument("--maxmemory", help="Redis maxmemory, e.g. 64mb (default: none)")
    parser.add_argument("--workdir", type=Path, help="logs and journal (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cacheservice-nothing-lost-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"working in {workdir}", file=sys.stderr)
    started = time.monotonic()
    outcome = run(Options(args.duration, args.writers, args.maxmemory), workdir)
    print(outcome.summary())
    print(f"total time {time.monotonic() - started:.0f} s; journal {workdir}/acknowledged.jsonl")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
