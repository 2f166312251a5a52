"""The per-second turn builder of LiveCC's streaming loop (frameworks-benchmarks.md §A4.2).

Frames arrive at 2 fps. The first turn waits for 3 s (6 frames); afterwards every 1 s of video (2
frames) is one user turn whose text starts with "Time={start:.1f}-{stop:.1f}s", where start is the
first frame's timestamp and stop the last frame's timestamp plus one frame interval (demo `infer.py`).
A builder holds the frames of one stream that do not yet fill a turn; it never looks at pixels.

    builder = TurnBuilder(first_frames=6, turn_frames=2, frame_interval=0.5)
    for turn in builder.push(frames, timestamps): ...     # complete turns, in order
    builder.pending()                                     # the incomplete turn (question time), or None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass
class Turn:
    """Frames [F, H, W, 3] uint8 of one user turn and its time span in seconds."""

    frames: torch.Tensor
    timestamps: list[float]
    frame_interval: float
    first: bool

    @property
    def start(self) -> float:
        return self.timestamps[0]

    @property
    def stop(self) -> float:
        return self.timestamps[-1] + self.frame_interval

    @property
    def label(self) -> str:
        return f"Time={self.start:.1f}-{self.stop:.1f}s"


class TurnBuilder:
    """Cuts one stream's frames into LiveCC turns (per-stream state: the frames of the open turn)."""

    def __init__(self, first_frames: int, turn_frames: int, frame_interval: float):
        self.first_frames, self.turn_frames, self.frame_interval = first_frames, turn_frames, frame_interval
        self.reset()

    def reset(self) -> None:
        self._frames: list[torch.Tensor] = []
        self._timestamps: list[float] = []
        self.turns_emitted = 0

    def _check_spacing(self, timestamps: list[float]) -> None:
        """Turns are 1 s = 2 frames only if frames come at the configured rate: refuse anything else
        (tolerance 25%, e.g. a 25 fps video sampled with stride 12 gives 0.48 s)."""
        stamps = self._timestamps[-1:] + timestamps
        for before, after in zip(stamps, stamps[1:]):
            if abs((after - before) - self.frame_interval) > 0.25 * self.frame_interval:
                raise ValueError(f"livecc streaming turns expect one frame every {self.frame_interval:g} s (framework.fps="
                                 f"{1 / self.frame_interval:g}); got frames {after - before:g} s apart (set benchmark.fps to match)")

    def _next_size(self) -> int:
        return self.first_frames if self.turns_emitted == 0 else self.turn_frames

    def push(self, frames: torch.Tensor, timestamps: Sequence[float] = ()) -> list[Turn]:
        """Add frames (timestamps default to continuing at the frame interval); return complete turns."""
        if len(timestamps) and len(timestamps) != frames.shape[0]:
            raise ValueError(f"ingest got {frames.shape[0]} frames but {len(timestamps)} timestamps")
        if not len(timestamps):
            last = self._timestamps[-1] if self._timestamps else None
            begin = 0.0 if last is None else last + self.frame_interval
            timestamps = [begin + i * self.frame_interval for i in range(frames.shape[0])]
        self._check_spacing([float(t) for t in timestamps])
        self._frames.extend(frames.unbind(0))
        self._timestamps.extend(float(t) for t in timestamps)
        turns = []
        while len(self._frames) >= self._next_size():
            turns.append(self._take(self._next_size()))
        return turns

    def _take(self, count: int) -> Turn:
        turn = Turn(torch.stack(self._frames[:count]), self._timestamps[:count], self.frame_interval,
                    first=self.turns_emitted == 0)
        del self._frames[:count], self._timestamps[:count]
        self.turns_emitted += 1
        return turn

    def take_pending(self) -> Optional[Turn]:
        """Consume the incomplete turn (it becomes a turn of the stream), or None."""
        return self._take(len(self._frames)) if self._frames else None

    def pending(self) -> Optional[Turn]:
        """The frames that do not fill a turn yet, as a turn (not consumed), or None."""
        if not self._frames:
            return None
        return Turn(torch.stack(self._frames), list(self._timestamps), self.frame_interval,
                    first=self.turns_emitted == 0)
