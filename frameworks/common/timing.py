"""The one timer of the project: named intervals on one device, CUDA events on GPU, perf_counter on CPU.

Hosts use it for per-stage totals of a video (`with timer.stage("vit"): ...`, then `timer.totals()`);
the speed harness uses it for per-call samples (`timer.call(fn)` per frame, then `timer.finish()`).

Why events and lazy resolution: a streaming host never synchronises between frames, so the timer must
not either (a sync per frame would hide launch overlap and inflate eager numbers). Each interval records
a pair of CUDA events on the device's current stream; elapsed times are resolved with ONE
synchronisation when they are read, or in batches once `max_pending` pairs are waiting (bounded event
memory on long streams). On CPU intervals are resolved immediately.

Lives in `frameworks/common` because hosts must not import the harness; the harness imports it from here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

T = TypeVar("T")


class EventTimer:
    """Intervals in milliseconds, grouped by name, since the last `reset()`.

        timer = EventTimer(device)
        with timer.stage("vit"):                 # hosts: accumulate per stage
            features = tower(pixels)
        timer.totals()                           # {"vit": 12.3}   (one sync on CUDA)

        for frame in frames:                     # harness: one sample per call
            timer.call(lambda: tower(frame))
        per_call_ms = timer.finish()             # [ms, ms, ...]; the "call" intervals are dropped
    """

    def __init__(self, device: torch.device | str, max_pending: int = 512):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.max_pending = max_pending
        self.reset()

    def reset(self) -> None:
        """Forget every interval (pending CUDA events are dropped unread)."""
        self._samples: dict[str, list[float]] = defaultdict(list)
        self._pending: list[tuple[str, object, object]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Record the time spent inside the block as one interval of `name`."""
        if not self.cuda:
            begin = time.perf_counter()
            try:
                yield
            finally:
                self._samples[name].append((time.perf_counter() - begin) * 1000.0)
            return
        # the host device's stream, not the process's current device (cuda:LOCAL_RANK may differ)
        stream = torch.cuda.current_stream(self.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        try:
            yield
        finally:
            end.record(stream)
            self._pending.append((name, start, end))
            if len(self._pending) >= self.max_pending:
                self._resolve()

    def call(self, fn: Callable[[], T], name: str = "call") -> T:
        """Run `fn()` as one interval of `name`; returns what `fn` returns."""
        with self.stage(name):
            return fn()

    def _resolve(self) -> None:
        if not self._pending:
            return
        self._pending[-1][2].synchronize()  # events complete in stream order: the last one covers all
        for name, start, end in self._pending:
            self._samples[name].append(start.elapsed_time(end))
        self._pending.clear()

    def samples(self, name: str = "call") -> list[float]:
        """Every interval of `name` in recording order, ms (synchronises pending CUDA events)."""
        self._resolve()
        return list(self._samples.get(name, ()))

    def totals(self) -> dict[str, float]:
        """Sum of the intervals of every name, ms (synchronises pending CUDA events)."""
        self._resolve()
        return {name: sum(values) for name, values in self._samples.items()}

    def finish(self, name: str = "call") -> list[float]:
        """`samples(name)`, then forget that name (the next pass of a repeat loop starts empty)."""
        out = self.samples(name)
        self._samples.pop(name, None)
        return out
