"""Latency histograms as metric samples: fixed bucket bounds, percentiles from counts."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

# Upper bounds in milliseconds; a final open bucket holds everything slower.
BOUNDS_MS = (0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
OVERFLOW = "inf"


def bound_label(bound: float | str) -> str:
    return bound if isinstance(bound, str) else f"{bound:g}"


def bucket_of(ms: float) -> str:
    index = bisect.bisect_left(BOUNDS_MS, ms)
    return bound_label(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else OVERFLOW


def sample_names(op: str, ms: float) -> tuple[str, str, str]:
    """The metric names one observation adds to: count, sum and its (non-cumulative) bucket."""
    return f"{op}_ms_count", f"{op}_ms_sum", f"{op}_ms_le_{bucket_of(ms)}"


def percentile(op: str, totals: Mapping[str, float], share: float) -> float | None:
    """The upper bound of the bucket holding the ``share`` quantile, or None with no samples.

    For the open last bucket the largest bound is reported: the figure is then "at least".
    """
    counts = [totals.get(f"{op}_ms_le_{bound_label(bound)}", 0.0) for bound in BOUNDS_MS]
    counts.append(totals.get(f"{op}_ms_le_{OVERFLOW}", 0.0))
    total = sum(counts)
    if total <= 0:
        return None
    rank = share * total
    running = 0.0
    for index, count in enumerate(counts):
        running += count
        if running >= rank:
            return float(BOUNDS_MS[min(index, len(BOUNDS_MS) - 1)])
    return float(BOUNDS_MS[-1])


def average(op: str, totals: Mapping[str, float]) -> float | None:
    count = totals.get(f"{op}_ms_count", 0.0)
    return totals.get(f"{op}_ms_sum", 0.0) / count if count else None
