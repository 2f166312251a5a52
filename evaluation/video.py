"""decord-based frame sampling: a fixed fps grid per video, read by time window.

Sampling follows ReKV `load_video`: native fps is rounded, every int(round(avg_fps) / fps)-th frame is
kept starting at frame 0 (so fps=1 on a 30 fps video keeps frames 0, 30, 60, ...). The grid is computed
once per video; a streaming question at time t reads only grid frames with timestamp <= t, and a later
question reads only the frames after the previous one (`window(prev_t, t)`), so no pre-cut files are
needed. Pre-cut prefix clips (OVO-Bench `chunked_videos`) are read whole.

Frames come back as uint8 tensors [F, H, W, 3] (RGB) with timestamps in seconds. Anything that
prevents reading raises `VideoError` with the path and the reason; the runner records it per item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from evaluation.types import VideoError

_EPS = 1e-6


def sample_stride(native_fps: float, fps: float) -> int:
    """ReKV: int(round(avg_fps) / sample_fps), at least 1."""
    return max(1, int(round(native_fps) / fps))


def thin(positions: Sequence[int], max_frames: int) -> list[int]:
    """Keep at most `max_frames` positions, uniformly spread and always including the last one."""
    positions = list(positions)
    if max_frames <= 0 or len(positions) <= max_frames:
        return positions
    picks = np.linspace(0, len(positions) - 1, max_frames).round().astype(int)
    return [positions[i] for i in picks]


class VideoSource:
    """One opened video with its sampling grid. Not thread-safe; one per worker.

    Attributes:
        path: the file.
        indices: native frame indices of the sampling grid.
        timestamps: seconds of each grid frame (index / native fps).
        duration: seconds (frame count / native fps).
    """

    def __init__(self, path: str | Path, fps: float, height: int = 0, width: int = 0, num_threads: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        try:
            import decord

            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), width=width or -1,
                                              height=height or -1, num_threads=num_threads)
            native_fps = float(self._reader.get_avg_fps())
            count = len(self._reader)
        except Exception as err:  # decord raises its own DECORDError / RuntimeError types
            raise VideoError(f"{self.path}: cannot open video ({type(err).__name__}: {err})") from None
        if count <= 0 or not native_fps > 0:
            raise VideoError(f"{self.path}: no decodable frames (frames={count}, fps={native_fps})")
        stride = sample_stride(native_fps, fps)
        self.native_fps = native_fps
        self.indices = list(range(0, count, stride))
        self.timestamps = [i / native_fps for i in self.indices]
        self.duration = count / native_fps

    def window(self, start: float | None, end: float | None) -> list[int]:
        """Grid positions with start < t <= end (start None = from the beginning; end None = to the end)."""
        lo = -np.inf if start is None else start + _EPS
        hi = np.inf if end is None else end + _EPS
        return [p for p, t in enumerate(self.timestamps) if lo <= t <= hi]

    def read(self, positions: Sequence[int]) -> tuple[torch.Tensor, list[float]]:
        """Decode grid positions -> (uint8 [F, H, W, 3], timestamps)."""
        if not positions:
            return torch.empty(0, 0, 0, 3, dtype=torch.uint8), []
        try:
            batch = self._reader.get_batch([self.indices[p] for p in positions]).asnumpy()
        except Exception as err:
            raise VideoError(f"{self.path}: decoding failed ({type(err).__name__}: {err})") from None
        return torch.from_numpy(np.ascontiguousarray(batch)), [self.timestamps[p] for p in positions]
