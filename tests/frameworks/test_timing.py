"""The shared EventTimer on CPU: per-stage totals (what hosts read) and per-call samples (what the
speed harness reads) come from the same recorded intervals."""

import time

import torch

from frameworks.common.timing import EventTimer


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def test_stages_accumulate_per_name_and_reset_clears():
    timer = EventTimer("cpu")
    for _ in range(3):
        with timer.stage("vit"):
            _busy(1)
    with timer.stage("prefill"):
        pass
    totals = timer.totals()
    assert set(totals) == {"vit", "prefill"}
    assert totals["vit"] == sum(timer.samples("vit")) and len(timer.samples("vit")) == 3
    assert totals["vit"] >= 3.0 > totals["prefill"]
    timer.reset()
    assert timer.totals() == {} and timer.samples("vit") == []


def test_call_returns_the_result_and_finish_drops_only_its_name():
    timer = EventTimer(torch.device("cpu"))
    with timer.stage("vit"):
        pass
    outs = [timer.call(lambda i=i: torch.ones(8, 8).sum() + i) for i in range(3)]
    assert [int(o) for o in outs] == [64, 65, 66]
    first = timer.finish()
    assert len(first) == 3 and all(t >= 0 for t in first)
    assert timer.finish() == []                      # the next pass starts empty ...
    assert len(timer.samples("vit")) == 1            # ... and other names are kept


def test_an_exception_inside_a_stage_is_still_timed_and_propagates():
    timer = EventTimer("cpu")
    try:
        with timer.stage("answer"):
            raise KeyError("boom")
    except KeyError:
        pass
    assert len(timer.samples("answer")) == 1
