"""The Lua scripts in ``scripts/`` and how they are run: EVALSHA, reloading on NOSCRIPT.

A Redis restart or ``SCRIPT FLUSH`` empties the script cache; every call path here notices the
``NOSCRIPT`` reply, loads the script again and retries only the calls that did not run, so a
pipelined batch is never applied twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

from cacheservice.store.connection import is_cluster

KeyOrArg = str | bytes | int | float


def _read(name: str) -> bytes:
    return resources.files("cacheservice.store").joinpath(f"scripts/{name}.lua").read_bytes()


@dataclass(frozen=True)
class Script:
    name: str
    source: bytes
    sha: str

    @classmethod
    def from_source(cls, name: str, source: bytes) -> Script:
        # SHA-1 here is Redis's script identifier, not a security measure.
        return cls(name, source, hashlib.sha1(source, usedforsecurity=False).hexdigest())

    @classmethod
    def load(cls, name: str) -> Script:
        return cls.from_source(name, _read(name))

    @classmethod
    def with_rate_limit_library(cls, name: str) -> Script:
        return cls.from_source(name, _read("rate_limit") + b"\n" + _read(name))

    def guarded(self) -> Script:
        """This script behind a rate limit check, in the same call (see guarded_prologue.lua).

        Call it with the limiter key before the script's keys and (limit, window_ms, now_ms)
        before its arguments; it replies ``[limit_reply]`` when refused, else
        ``[limit_reply, this_script_reply]``.
        """
        source = b"\n".join(
            (
                _read("rate_limit"),
                _read("guarded_prologue"),
                self.source,
                b"end",
                b"return {limited, operation()}",
            )
        )
        return Script.from_source(f"{self.name}+rate_limit", source)


@dataclass(frozen=True)
class ScriptCall:
    script: Script
    keys: Sequence[KeyOrArg]
    args: Sequence[KeyOrArg]


class Scripts:
    """Runs the service's scripts against one Redis client."""

    get_entries = Script.load("get_entries")
    set_entry = Script.load("set_entry")
    delete_entry = Script.load("delete_entry")
    invalidate_keys = Script.load("invalidate_keys")
    prune_bucket = Script.load("prune_bucket")
    session_get = Script.load("session_get")
    guarded_session_get = session_get.guarded()
    session_put = Script.load("session_put")
    session_delete = Script.load("session_delete")
    session_list = Script.load("session_list")
    claim_batch = Script.load("claim_batch")
    finish_batch = Script.load("finish_batch")
    push_metrics = Script.load("push_metrics")
    finish_metrics_batch = Script.load("finish_metrics_batch")
    metrics_snapshot = Script.load("metrics_snapshot")
    rate_limit = Script.with_rate_limit_library("rate_limit_only")
    guarded_get_entries = get_entries.guarded()
    guarded_set_entry = set_entry.guarded()
    guarded_delete_entry = delete_entry.guarded()
    patch_entry = Script.load("patch_entry")
    guarded_patch_entry = patch_entry.guarded()

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def run(self, call: ScriptCall) -> Any:
        """One script call: one round trip, two more only after a Redis restart."""
        try:
            return self.client.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        except NoScriptError:
            self.client.script_load(call.script.source)
            return self.client.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)

    def run_pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Many script calls in one round trip; results in call order.

        A reply other than NOSCRIPT that is an error is raised once the pipeline has run.
        """
        if len(calls) == 1:
            return [self.run(calls[0])]
        if is_cluster(self.client):
            return self._run_per_node(calls)
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for index in pending:
                call = calls[index]
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            replies = pipe.execute(raise_on_error=False)
            missing: list[int] = []
            for index, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(index)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[index] = reply
            if not missing:
                break
            for script in {calls[index].script for index in missing}:
                self.client.script_load(script.source)
            pending = missing
        return results

    def _run_per_node(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """On a cluster: one pipeline per node holding some of the calls' slots, concurrently.

        A batch then costs one round trip per node involved. (redis-py's cluster pipeline does
        not pipeline EVALSHA.) A MOVED reply means the slot map changed under us: the client
        re-reads it and the request fails as unavailable, to be retried by the caller; nothing
        of that call ran.
        """
        cluster: Any = self.client
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for index, call in enumerate(calls):
            node = cluster.get_node_from_key(call.keys[0])
            by_node.setdefault(node.name, (node, []))[1].append(index)
        results: list[Any] = [None] * len(calls)

        def run_on(node: Any, indexes: list[int]) -> None:
            node_scripts = Scripts(cluster.get_redis_connection(node))
            try:
                replies = node_scripts.run_pipelined([calls[index] for index in indexes])
            except redis.ResponseError as error:
                if str(error).startswith(("MOVED", "ASK")):
                    cluster.nodes_manager.initialize()
                    raise redis.ConnectionError(f"cluster slots moved: {error}") from error
                raise
            for index, reply in zip(indexes, replies, strict=True):
                results[index] = reply

        groups = list(by_node.values())
        if len(groups) == 1:
            run_on(*groups[0])
            return results
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            for future in [pool.submit(run_on, node, indexes) for node, indexes in groups]:
                future.result()
        return results
