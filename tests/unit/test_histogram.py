"""Latency histograms as metric samples: buckets, percentiles and averages from counts."""

from __future__ import annotations

import pytest

from cacheservice.metrics.histogram import (
    BOUNDS_MS,
    OVERFLOW,
    average,
    bucket_of,
    percentile,
    sample_names,
)


def observed(op: str, *latencies_ms: float) -> dict[str, float]:
    """The totals a list of observations adds up to, as the recorder sums them."""
    totals: dict[str, float] = {}
    for ms in latencies_ms:
        count, total, bucket = sample_names(op, ms)
        totals[count] = totals.get(count, 0) + 1
        totals[total] = totals.get(total, 0) + ms
        totals[bucket] = totals.get(bucket, 0) + 1
    return totals


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [
        (0, "0.25"),
        (0.1, "0.25"),
        (0.25, "0.25"),  # A bound belongs to the bucket it closes.
        (0.2501, "0.5"),
        (1, "1"),
        (1.5, "2"),
        (10, "10"),
        (999.9, "1000"),
        (5000, "5000"),
        (5000.01, OVERFLOW),
        (1e9, OVERFLOW),
    ],
)
def test_bucket_of(ms: float, bucket: str) -> None:
    assert bucket_of(ms) == bucket


def test_every_bound_has_its_own_label() -> None:
    labels = [bucket_of(bound) for bound in BOUNDS_MS]

    assert labels == [
        *("0.25", "0.5", "1", "2", "5", "10", "25", "50", "100", "250", "500"),
        *("1000", "2500", "5000"),
    ]


def test_sample_names() -> None:
    assert sample_names("get", 3.2) == ("get_ms_count", "get_ms_sum", "get_ms_le_5")
    assert sample_names("set", 6000) == ("set_ms_count", "set_ms_sum", "set_ms_le_inf")


def test_percentile_is_the_bound_of_the_bucket_holding_it() -> None:
    totals = observed("get", *([0.8] * 90), *([7] * 9), 40)

    assert percentile("get", totals, 0.5) == 1
    assert percentile("get", totals, 0.9) == 1
    assert percentile("get", totals, 0.95) == 10
    assert percentile("get", totals, 0.99) == 10
    assert percentile("get", totals, 1.0) == 50


def test_percentile_of_the_open_bucket_is_the_largest_bound() -> None:
    totals = observed("get", 9000, 12000)

    assert percentile("get", totals, 0.5) == 5000
    assert percentile("get", totals, 0.99) == 5000


def test_percentile_reads_only_its_operation() -> None:
    totals = observed("get", 0.1) | observed("set", 300, 300)

    assert percentile("get", totals, 0.99) == 0.25
    assert percentile("set", totals, 0.99) == 500
    assert percentile("delete", totals, 0.99) is None


def test_percentile_without_samples_is_none() -> None:
    assert percentile("get", {}, 0.95) is None
    assert percentile("get", {"get_ms_le_1": 0.0}, 0.95) is None


def test_average() -> None:
    totals = observed("get", 1, 2, 6)

    assert average("get", totals) == pytest.approx(3)
    assert average("set", totals) is None
    assert average("get", {"get_ms_sum": 5.0}) is None
