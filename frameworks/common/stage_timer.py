"""Per-stage wall-time accumulation that does not stall the GPU.

On CUDA each `with timer.stage(name):` records a pair of CUDA events; elapsed times are resolved (one
synchronisation) only when `totals()` is read, or in batches once many pairs are pending, so timing does
not serialise the pipeline frame by frame. On CPU it uses `time.perf_counter`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch

_MAX_PENDING = 512


class StageTimer:
    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.reset()

    def reset(self) -> None:
        self._totals: dict[str, float] = defaultdict(float)
        self._pending: list[tuple[str, object, object]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to stage `name` (milliseconds)."""
        if self.cuda:
            # record on the host device's stream, not the process's current device (cuda:LOCAL_RANK)
            stream = torch.cuda.current_stream(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            try:
                yield
            finally:
                end.record(stream)
                self._pending.append((name, start, end))
                if len(self._pending) >= _MAX_PENDING:
                    self._resolve()
        else:
            begin = time.perf_counter()
            try:
                yield
            finally:
                self._totals[name] += (time.perf_counter() - begin) * 1000.0

    def _resolve(self) -> None:
        if not self._pending:
            return
        self._pending[-1][2].synchronize()
        for name, start, end in self._pending:
            self._totals[name] += start.elapsed_time(end)
        self._pending.clear()

    def totals(self) -> dict[str, float]:
        """Milliseconds per stage since the last reset (synchronises pending CUDA events)."""
        self._resolve()
        return dict(self._totals)
