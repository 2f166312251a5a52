"""Summary statistics of timed samples (the timer itself: tests/frameworks/test_timing.py)."""

import pytest

from speed_benchmark.timing import summarize


def test_summary_statistics_nearest_rank_p90():
    s = summarize([float(x) for x in range(10, 0, -1)])  # 10..1, unsorted on purpose
    assert (s.n, s.min, s.median, s.p90, s.mean) == (10, 1.0, 5.5, 9.0, 5.5)
    assert summarize([3.0, 1.0]).p90 == 3.0 and summarize([2.0]).std == 0.0
    assert summarize([float(x) for x in range(1, 21)]).p90 == 18.0


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        summarize([])
