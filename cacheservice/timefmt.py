"""Timestamps as the contract writes them: RFC 3339, UTC, ``Z``, whole seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = time.gmtime(ms // 1000)
    # Not strftime's %Y: glibc writes the year 171 as "171", which is no RFC 3339 date.
    return f"{moment.tm_year:04d}" + time.strftime("-%m-%dT%H:%M:%SZ", moment)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, for every year 1-9999.

    Subtracting instead of converting to UTC first: ``astimezone`` overflows at the edges of
    the calendar (9999-12-31T23:59:59-01:00 is in the year 10000 in UTC).
    """
    return (moment - EPOCH) // timedelta(milliseconds=1)
