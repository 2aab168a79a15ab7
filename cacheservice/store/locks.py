"""Overlap locks of the periodic tasks, and when each last completed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from cacheservice.store.keys import TaskKeys

# Delete the lock only if it is still ours: a lock that expired and was taken by another run
# must not be released by the slow run that lost it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextmanager
def task_lock(client: redis.Redis, task: str, seconds: int) -> Iterator[bool]:
    """Yields True when this run holds the lock, False when another run does (skip then)."""
    token = secrets.token_hex(16)
    acquired = bool(client.set(TaskKeys.lock(task), token, nx=True, ex=seconds))
    try:
        yield acquired
    finally:
        if acquired:
            client.eval(_RELEASE, 1, TaskKeys.lock(task), token)


def mark_completed(client: redis.Redis, task: str) -> None:
    client.set(TaskKeys.last_run(task), int(time.time() * 1000))


def last_completed_ms(client: redis.Redis, tasks: list[str]) -> dict[str, int | None]:
    values = client.mget([TaskKeys.last_run(task) for task in tasks])
    return {task: int(value) if value else None for task, value in zip(tasks, values, strict=True)}
