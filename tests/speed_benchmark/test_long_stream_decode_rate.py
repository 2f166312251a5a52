"""The long-stream case's decode rate comes from the host's decode stage (full answer minus the 1-token
answer, paired within a repeat), not from medians of wall times of different samples: a slow first
token (a capture, a retrieval outlier) made the 05:22 H200 run print -17.98 ms per token."""

import time
from types import SimpleNamespace

import torch

from speed_benchmark.case_long_stream import WARMUP_ANSWERS, run
from speed_benchmark.records import Row


class _Host:
    """Fake host: a 1-token answer decodes for 1 ms, a T-token answer for 1 + 2 (T - 1) ms (stage times);
    the 1st and 3rd timed 1-token answers are slow in wall time (40 ms of retrieval stalls)."""

    def __init__(self):
        self.decode = self.tokens = 0.0
        self.singles = 0

    def reset(self):
        pass

    def fill_history(self, frames):
        return 2

    def answer(self, query):
        self.stall(query)
        self.decode += 1.0 + 2.0 * (query.max_new_tokens - 1)
        self.tokens += query.max_new_tokens
        return "x"

    def stall(self, query):
        if query.max_new_tokens == 1:
            self.singles += 1
            if self.singles - WARMUP_ANSWERS in (1, 3):  # after the untimed warm-ups: timed repeats 1 and 3
                time.sleep(0.04)

    @property
    def timings(self):
        return SimpleNamespace(to_dict=lambda: {"decode_ms": self.decode, "retrieval_ms": 0.0,
                                                "extra": {"generated_tokens": self.tokens, "answer_prefill_ms": 0.0}})


def test_decode_rate_is_the_paired_decode_stage_difference():
    cfg = SimpleNamespace(e2e=SimpleNamespace(long_frames=8, long_repeats=3, max_new_tokens=6, host="fake"))
    ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), skip=lambda *a: None)
    ingest = Row("e2e", "stc", "stc", "eager", {"k": 4}, "ms/frame", [1.0]).finalize()
    row = run(ctx, _Host(), "stc", ingest)[0]
    assert row.extra["generated_tokens"] == 6
    assert row.extra["decode_ms_per_token"] == 2.0
    assert max(row.samples) > 30.0  # the slow first tokens are still reported as measured


class _CapturingHost(_Host):
    """Fake graphed host: the first two answers of each length are slow (warm-up, then a capture at the
    second sighting of the shape), every later one takes no time."""

    def __init__(self):
        super().__init__()
        self.seen: dict[int, int] = {}

    def stall(self, query):
        self.seen[query.max_new_tokens] = self.seen.get(query.max_new_tokens, 0) + 1
        if self.seen[query.max_new_tokens] <= 2:
            time.sleep(0.05)


def test_no_timed_answer_carries_a_capture():
    """With one warm-up answer, the first timed question of a graphed host was the capture (191-272 ms of
    ~30 in the H200 runs): both answer kinds now run twice untimed before anything is timed."""
    cfg = SimpleNamespace(e2e=SimpleNamespace(long_frames=8, long_repeats=3, max_new_tokens=6, host="fake"))
    ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), skip=lambda *a: None)
    ingest = Row("e2e", "stc", "stc", "eager", {"k": 4}, "ms/frame", [1.0]).finalize()
    row = run(ctx, _CapturingHost(), "stc", ingest)[0]
    assert max(row.samples) < 30.0 and max(row.extra["full_answer_ms"]) < 30.0
