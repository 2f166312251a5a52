"""Which frames make Dispider's clips: the released rule, and how a stream of runner frames maps onto it.

Released rule (inference.py / the OVO-Bench wrapper, spec §A3.2 step 1): a video of `duration` seconds
gets C = round(duration / 16) clips, clamped to [1, 100] (Python/NumPy round: half to even), and
16·C frames at the midpoints of 16·C equal segments of its frame range, so ~1 fps up to 1600 s and
sparser beyond. Non-square frames are squashed to a min(H, W) square (nearest, `F.interpolate`'s
default) before the CLIP processor.

In a stream the host receives whatever the evaluation runner sampled (`benchmark.fps` per second).
`sampling=stream` groups those frames, in arrival order, into clips of `frames_per_clip`; with the
benchmarks' 1 fps this is the released layout up to 1600 s (one clip per 16 s). `sampling=released`
re-applies the rule above to the frames ingested so far at every question (see docs/dispider).
"""

from __future__ import annotations

import statistics
from typing import Sequence

import torch
import torch.nn.functional as F


def clip_count(duration: float, frames_per_clip: int = 16, max_clips: int = 100) -> int:
    """Released clip count: round(duration / frames_per_clip) clamped to [1, max_clips]."""
    if duration < 0:
        raise ValueError(f"clip_count: duration must be >= 0 seconds, got {duration}")
    return min(max(int(round(duration / frames_per_clip)), 1), max_clips)


def midpoint_indices(total: int, desired: int) -> list[int]:
    """Released `get_seq_frames`: `desired` indices into `total` frames, one per equal segment of
    [0, total - 1], each the midpoint (floor) of its rounded segment ends. Repeats frames when
    desired > total."""
    if total <= 0 or desired <= 0:
        raise ValueError(f"midpoint_indices needs total >= 1 and desired >= 1, got total={total}, desired={desired}")
    segment = (total - 1) / desired
    return [(int(round(segment * i)) + int(round(segment * (i + 1)))) // 2 for i in range(desired)]


def thin_clips(clips: list, max_clips: int) -> list:
    """At most `max_clips` of `clips`, in time order: the distinct `midpoint_indices` picks when over the cap."""
    if len(clips) <= max_clips:
        return list(clips)
    return [clips[i] for i in sorted(set(midpoint_indices(len(clips), max_clips)))]


def stream_duration(timestamps: Sequence[float]) -> float:
    """Seconds covered by frames sampled at `timestamps`: span + one sampling step (the median gap;
    1 s for a single frame), i.e. the duration of the video prefix the frames were sampled from."""
    if not timestamps:
        return 0.0
    gaps = [b - a for a, b in zip(timestamps, timestamps[1:]) if b > a]
    step = statistics.median(gaps) if gaps else 1.0
    return float(timestamps[-1] - timestamps[0]) + step


def released_clips(timestamps: Sequence[float], frames_per_clip: int = 16, max_clips: int = 100) -> list[list[int]]:
    """The released sampling applied to the frames ingested so far: C clips of `frames_per_clip`
    indices into `timestamps` (exact when the runner samples at least as densely as the rule asks,
    e.g. `benchmark.fps=1` for videos up to 1600 s with whole 16 s clips)."""
    count = clip_count(stream_duration(timestamps), frames_per_clip, max_clips)
    picks = midpoint_indices(len(timestamps), frames_per_clip * count)
    return [picks[c * frames_per_clip:(c + 1) * frames_per_clip] for c in range(count)]


def squash_to_square(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> [F, s, s, 3], s = min(H, W), nearest-neighbour (the released squash)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3] RGB, got {tuple(frames.shape)} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height == width:
        return frames
    side = min(height, width)
    maps = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(side, side))
    return maps.permute(0, 2, 3, 1).to(torch.uint8)
