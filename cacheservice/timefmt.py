"""Timestamps as the contract writes them: RFC 3339, UTC, ``Z``, whole seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def to_ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)
