"""Summary statistics and the CPU recorder."""

import pytest
import torch

from speed_benchmark.timing import Recorder, summarize


def test_summary_statistics_nearest_rank_p90():
    s = summarize([float(x) for x in range(10, 0, -1)])  # 10..1, unsorted on purpose
    assert (s.n, s.min, s.median, s.p90, s.mean) == (10, 1.0, 5.5, 9.0, 5.5)
    assert summarize([3.0, 1.0]).p90 == 3.0 and summarize([2.0]).std == 0.0
    assert summarize([float(x) for x in range(1, 21)]).p90 == 18.0


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def test_cpu_recorder_times_each_call_and_resets():
    rec = Recorder(torch.device("cpu"))
    outs = [rec.call(lambda i=i: torch.ones(64, 64).sum() + i) for i in range(3)]
    times = rec.finish()
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert [int(o) for o in outs] == [4096, 4097, 4098]
    assert rec.finish() == []
