"""Frames for the runner, decoded ahead in a background thread so the host never waits for decord.

Why: decoding a long video at native resolution runs at a few hundred frames/s on one CPU core, about
the rate a GPU host consumes them, so decoding in the main thread leaves the GPU idle for a large share
of the run (numbers in docs/evaluation.md). Here a worker thread decodes the NEXT reads (the rest of this
video, then the next video) while the host works on the current chunk.

How: the reads of a video group are deterministic when nothing fails (`next_read` is the single rule,
used by the worker to plan and by the runner to ask), so the worker decodes them in order into a bounded
queue (`depth` chunks of `CHUNK` frames: memory stays bounded on hour-long videos). The runner asks for
exactly what it needs; when a failure changed its plan (a host error resets the stream) it decodes that
read itself and skips the stale chunks. Errors travel through the queue as values, so a bad video is
still one recorded error per item, never a dead thread. `FrameFeed(depth=0)` decodes in the caller's
thread (the old behaviour). Each read reports the seconds the caller waited (`waited`): host idle time.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from evaluation.types import Sample, VideoError
from evaluation.video import VideoSource, thin

CHUNK = 128  # frames decoded and handed to the host at once (bounds host RAM on long videos)
_EPS = 1e-6


@dataclass
class StreamState:
    """Where the host's stream is for the open video: `until` seconds ingested (inf = whole video)."""

    valid: bool = False
    until: Optional[float] = None


@dataclass(frozen=True)
class Read:
    """Grid positions to ingest for one sample; `reset` = start a new stream first."""

    positions: tuple
    reset: bool
    until: float


class Grid:
    """The sampling grid of one video (timestamps of its sampled frames), shared by worker and runner."""

    def __init__(self, timestamps: Sequence[float]):
        self.timestamps = np.asarray(timestamps, dtype=np.float64)

    def window(self, start: Optional[float], end: Optional[float]) -> list[int]:
        """Grid positions with start < t <= end (None = open end)."""
        lo = 0 if start is None else int(np.searchsorted(self.timestamps, start + _EPS, side="left"))
        hi = len(self.timestamps) if end is None else int(np.searchsorted(self.timestamps, end + _EPS, side="right"))
        return list(range(lo, max(lo, hi)))


def next_read(sample: Sample, state: StreamState, grid: Grid, incremental: bool, max_frames: int) -> Read:
    """What to ingest before answering `sample` (the one rule for both the runner and the prefetcher).

    Whole-video questions after a whole-video ingest reuse the stream (ReKV offline); an incremental host
    gets only the frames after the previous question; otherwise the stream restarts at the window start.
    """
    end = math.inf if sample.query_time is None else sample.query_time
    start = None if sample.start_time <= 0 else sample.start_time - 1e-3
    if state.valid and state.until == math.inf and end == math.inf:
        return Read((), False, end)
    stop = None if end == math.inf else end
    if incremental and state.valid and start is None and state.until is not None and end >= state.until:
        return Read(tuple(grid.window(state.until, stop)), False, end)
    return Read(tuple(thin(grid.window(start, stop), max_frames)), True, end)


class FrameFeed:
    """Serves `grid(key, path)` and `read(key, path, positions)` to the runner, from the worker's queue
    when the request matches the plan, else by decoding in the calling thread.

    `planner(key, open_grid)` yields (path, [positions, ...]) for group `key` in the runner's order;
    `open_grid(path)` opens the video in the worker and returns its Grid (None if it cannot be read).
    """

    def __init__(self, opener: Callable[[Path], VideoSource], planner: Callable[[int, Callable], list],
                 keys: Sequence[int], depth: int):
        self.opener, self.depth = opener, depth
        self.waited = 0.0
        self._own: dict = {}  # path -> VideoSource opened in this thread (fallback / depth 0)
        self._errors: dict = {}  # (key, path) -> message
        self._grids: dict = {}
        self._head = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = None
        if depth > 0:
            self._thread = threading.Thread(target=self._work, args=(planner, list(keys)), daemon=True,
                                            name="frame-prefetch")
            self._thread.start()

    # ---- runner side ---------------------------------------------------------------------------
    def grid(self, key: int, path: Path) -> Grid:
        if (key, path) in self._grids:
            return self._grids[(key, path)]
        item = self._match(key, path, "grid")
        if item is not None:
            self._grids[(key, path)] = item[3]
            return item[3]
        self._raise_recorded(key, path)
        source = self._open_here(key, path)
        grid = Grid(source.timestamps)
        self._grids[(key, path)] = grid
        return grid

    def read(self, key: int, path: Path, positions: Sequence[int]) -> Iterator[tuple]:
        """Yield (frames, timestamps) chunks of `positions` in order; raises VideoError."""
        positions = list(positions)
        for i in range(0, len(positions), CHUNK):
            chunk = tuple(positions[i:i + CHUNK])
            item = self._match(key, path, chunk)
            if item is not None:
                yield item[3], item[4]
                continue
            self._raise_recorded(key, path)
            started = time.perf_counter()
            frames = self._open_here(key, path).read(list(chunk))
            self.waited += time.perf_counter() - started
            yield frames

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)

    # ---- matching ------------------------------------------------------------------------------
    def _next(self):
        if self._head is None and self._thread is not None:
            if not self._thread.is_alive() and self._queue.empty():
                return None
            started = time.perf_counter()
            while self._head is None:
                try:
                    self._head = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if not self._thread.is_alive():
                        break
            self.waited += time.perf_counter() - started
        return self._head

    def _match(self, key: int, path: Path, what):
        """The queued item for (key, path, what), skipping items the runner no longer needs."""
        while True:
            head = self._next()
            if head is None:
                return None
            kind, hkey, hpath = head[0], head[1], head[2]
            if hkey < key or kind == "done":
                self._head = None  # an earlier group (or its end marker): stale
                continue
            if hkey > key or hpath != path:
                return None  # belongs to a later read: decode this one here
            if kind == "error":
                self._errors[(key, path)] = head[3]
                self._head = None
                continue
            if kind == "grid":
                self._head = None
                if what == "grid":
                    return head
                self._grids[(key, path)] = head[3]
                continue
            if what != "grid" and head[3] == what:
                self._head = None
                return ("frames", key, path, head[4], head[5])
            if what != "grid" and head[3] and what and max(head[3]) <= max(what):
                self._head = None  # planned before a failure changed the runner's reads: stale
                continue
            return None

    def _raise_recorded(self, key: int, path: Path) -> None:
        if (key, path) in self._errors:
            raise VideoError(self._errors[(key, path)])

    def _open_here(self, key: int, path: Path) -> VideoSource:
        if path not in self._own:
            started = time.perf_counter()
            try:
                self._own[path] = self.opener(path)
            except VideoError as err:
                self._errors[(key, path)] = str(err)
                raise
            finally:
                self.waited += time.perf_counter() - started
        return self._own[path]

    # ---- worker side ---------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, planner, keys: list) -> None:
        for key in keys:
            grids: dict = {}
            opened: dict = {}
            try:
                for path, reads in planner(key, lambda p: self._worker_open(key, p, opened, grids)):
                    source = opened.get(path)
                    if source is None:
                        continue
                    for positions in reads:
                        for i in range(0, len(positions), CHUNK):
                            chunk = tuple(positions[i:i + CHUNK])
                            try:
                                frames, stamps = source.read(list(chunk))
                            except VideoError as err:
                                self._put(("error", key, path, str(err)))
                                break
                            if not self._put(("frames", key, path, chunk, frames, stamps)):
                                return
            except Exception as err:  # never let the worker die silently: the runner falls back
                self._put(("error", key, Path("<planner>"), f"prefetch failed: {type(err).__name__}: {err}"))
            if not self._put(("done", key, None)):
                return

    def _worker_open(self, key: int, path: Path, opened: dict, grids: dict) -> Optional[Grid]:
        """Open `path` in the worker, announce its grid (or its error); None when it cannot be read."""
        if path in grids:
            return grids[path]
        try:
            source = self.opener(path)
        except VideoError as err:
            grids[path] = None
            self._put(("error", key, path, str(err)))
            return None
        opened[path], grids[path] = source, Grid(source.timestamps)
        self._put(("grid", key, path, grids[path]))
        return grids[path]
