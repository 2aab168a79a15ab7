"""Timestamps are RFC 3339 with a four-digit year across the whole calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cacheservice.timefmt import format_ms, to_ms


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(171, 9, 10, 8, 7, 6, tzinfo=UTC), "0171-09-10T08:07:06Z"),
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z"),
        (datetime(2026, 11, 26, 15, 0, 1, 999000, tzinfo=UTC), "2026-11-26T15:00:01Z"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "9999-12-31T23:59:59Z"),
    ],
)
def test_format_ms_writes_every_year_with_four_digits(moment: datetime, text: str) -> None:
    assert format_ms(to_ms(moment)) == text
    assert datetime.fromisoformat(text) == moment.replace(microsecond=0)


def test_format_ms_of_nothing_is_nothing() -> None:
    assert format_ms(None) is None
