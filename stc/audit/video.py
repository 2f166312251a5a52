"""Read a video file as RGB frames sampled at a given rate (decord when installed, else PyAV).

Sampling: frame i of the output is the source frame shown at time i / fps (the last source frame whose
timestamp is <= i / fps), for i = 0, 1, ... while i / fps < duration; `max_frames` caps the count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sample_times(duration_s: float, fps: float, max_frames: int | None) -> list[float]:
    count = int(np.floor(duration_s * fps - 1e-9)) + 1 if duration_s > 0 else 0
    if max_frames is not None:
        count = min(count, max_frames)
    return [i / fps for i in range(count)]


def _pick(source_times: np.ndarray, times: list[float]) -> list[int]:
    """Index of the last source frame at or before each sampling time."""
    return [max(0, int(np.searchsorted(source_times, t + 1e-6, side="right")) - 1) for t in times]


def read_frames(path: str | Path, fps: float, max_frames: int | None = None) -> tuple[np.ndarray, list[float]]:
    """(frames uint8 [F, H, W, 3], timestamps in seconds). Raises ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"video={path}: no such file")
    if fps <= 0:
        raise ValueError(f"fps={fps}: must be > 0")
    try:
        import decord
    except ImportError:
        decord = None
    try:
        if decord is not None:
            reader = decord.VideoReader(str(path))
            rate = reader.get_avg_fps()
            source_times = np.arange(len(reader)) / rate
            times = sample_times(len(reader) / rate, fps, max_frames)
            frames = reader.get_batch(_pick(source_times, times)).asnumpy() if times else np.zeros((0, 1, 1, 3), np.uint8)
            return frames, times
        return _read_pyav(path, fps, max_frames)
    except ValueError:
        raise
    except Exception as error:  # decoder errors: one line naming the file
        raise ValueError(f"video={path}: cannot decode ({error})") from None


def _read_pyav(path: Path, fps: float, max_frames: int | None):
    import av

    decoded, stamps = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            decoded.append(frame.to_ndarray(format="rgb24"))
            rate = float(stream.average_rate or 25)
            stamps.append(float(frame.pts * stream.time_base) if frame.pts is not None else len(stamps) / rate)
    if not decoded:
        raise ValueError(f"video={path}: no frames")
    source_times = np.asarray(stamps) - stamps[0]
    rate = float(stream.average_rate or 25)
    times = sample_times(source_times[-1] + 1.0 / rate, fps, max_frames)
    return np.stack([decoded[i] for i in _pick(source_times, times)]), times
