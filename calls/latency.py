"""Latency histograms with fixed buckets, shared by the operations page's minute rollups
(`calls.models.CallMinute`) and the Prometheus histograms, so both tell the same story.

A minute's figures are counts per bucket; summing buckets over any span (an hour, a week) and
reading a percentile from the sum is exact to the bucket, however many calls went in.
"""

import bisect
from collections.abc import Iterable, Sequence

# Upper bounds in milliseconds, roughly 1.5x apart; a last, open bucket takes everything slower.
BUCKETS_MS: tuple[int, ...] = (
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)  # fmt: skip
BUCKET_COUNT = len(BUCKETS_MS) + 1


def bucket_index(milliseconds: float) -> int:
    """The bucket a duration falls in: the first whose upper bound it does not exceed."""
    return bisect.bisect_left(BUCKETS_MS, milliseconds)


def empty_buckets() -> list[int]:
    return [0] * BUCKET_COUNT


def added(buckets: Sequence[int], other: Sequence[int]) -> list[int]:
    """Two histograms summed (either may be shorter, as an empty JSON list is)."""
    size = max(len(buckets), len(other), BUCKET_COUNT)
    return [
        (buckets[i] if i < len(buckets) else 0) + (other[i] if i < len(other) else 0) for i in range(size)
    ]


def summed(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = empty_buckets()
    for histogram in histograms:
        total = added(total, histogram)
    return total


def percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The duration (ms) below which `fraction` of the calls fell, interpolated inside its bucket;
    None with no calls. The open last bucket answers its lower bound (a floor, not a guess)."""
    count = sum(buckets)
    if count == 0:
        return None
    rank = fraction * count
    seen = 0
    for index, in_bucket in enumerate(buckets):
        if in_bucket and seen + in_bucket >= rank:
            lower = BUCKETS_MS[index - 1] if index > 0 else 0
            if index >= len(BUCKETS_MS):
                return float(lower)
            upper = BUCKETS_MS[index]
            return lower + (upper - lower) * max(rank - seen, 0) / in_bucket
        seen += in_bucket
    return float(BUCKETS_MS[-1])
