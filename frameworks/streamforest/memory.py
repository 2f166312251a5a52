"""The Persistent Event Memory Forest: StreamForest's per-video visual memory (frameworks-benchmarks §A2.2).

    memory = EventMemoryForest(MemorySettings(), heads=16)
    memory.insert(frame_tokens)        # [T, C] one frame (after the position embeddings)
    memory.maintain()                  # short-term ToMe, event split, long-term consolidation
    tokens = memory.tokens()           # [N, C]: long-term events ++ short-term frames ++ current frame

Three tiers:
  now    the newest frame(s) at full size (729 tokens);
  short  older frames, each ToMe-merged to 128 tokens, kept while fewer than 18 + 8 frames are held;
  long   events: the oldest short-term frames are cut off at the least similar of the first 8
         frame-to-frame transitions and merged jointly to 64 tokens per frame. While the events hold
         more than 5120 tokens, the adjacent pair with the lowest penalty
         0.4·(1 - similarity) + 0.2·(time position / elapsed frames) + 0.4·(merge count / max count)
         is merged into ceil((n1 + n2) / 2) frames.
Since ceil((n1 + n2) / 2) <= max(n1, n2), no event ever grows beyond `split_window` frames, so after
`maintain()` the events hold <= quota tokens and the output is bounded by
quota + (window + split_window - 1)·short_tokens + now_tokens (5120 + 25·128 + 729 = 9049).

Schedules. Upstream feeds all frames with `update` and maintains ONCE when the memory is read (the
projector rebuilds the memory for every question). `insert` + `maintain` per frame is the streaming
schedule: the memory stays bounded at every step and depends only on the frames, not on how they were
chunked into calls. The two schedules give identical tokens until the events first exceed the quota
(consolidation then sees the events one at a time instead of all at once).

Each instance is the state of ONE stream; nothing is shared between instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from frameworks.common.settings import settings_from_mapping
from frameworks.streamforest.tome import merge_tokens, pair_similarity


@dataclass(frozen=True)
class MemorySettings:
    """Constants of the memory (defaults = the released MemoryManager constructor).

    Attributes:
        now_window: frames kept at full size (1).
        now_tokens: tokens of a full-size frame (729; ToMe-merged when the frame has more).
        short_window: short-term frames that are never cut into events (18).
        short_tokens: tokens per short-term frame (128).
        split_window: frame-to-frame similarities searched for an event boundary (8).
        long_tokens: tokens per frame of a long-term event (64).
        quota: long-term token budget (5120).
        sim_weight, time_weight, merge_weight: consolidation penalty weights (0.4 / 0.2 / 0.4).
    """

    now_window: int = 1
    now_tokens: int = 729
    short_window: int = 18
    short_tokens: int = 128
    split_window: int = 8
    long_tokens: int = 64
    quota: int = 5120
    sim_weight: float = 0.4
    time_weight: float = 0.2
    merge_weight: float = 0.4

    def __post_init__(self):
        positive = ("now_window", "now_tokens", "short_window", "short_tokens", "split_window", "long_tokens")
        for name in positive:
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"invalid StreamForest memory setting {name}={getattr(self, name)!r}: must be an integer >= 1")
        if self.quota < self.split_window * self.long_tokens:
            raise ValueError(f"invalid StreamForest memory setting quota={self.quota!r}: must hold one event "
                             f"(split_window x long_tokens = {self.split_window * self.long_tokens})")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "MemorySettings":
        return settings_from_mapping(cls, mapping, "StreamForest memory", ignore=())

    def token_bound(self, tokens_per_frame: int | None = None) -> int:
        """Most tokens `tokens()` returns after `maintain()` (any stream length)."""
        frame = self.now_tokens if tokens_per_frame is None else min(self.now_tokens, tokens_per_frame)
        short = min(self.short_tokens, frame)
        return self.quota + (self.short_window + self.split_window - 1) * short + self.now_window * frame


@dataclass
class Event:
    """One long-term event: `tokens` [frames, long_tokens, C], mean frame position, merge count."""

    tokens: torch.Tensor
    time: float
    merges: int

    @property
    def frames(self) -> int:
        return self.tokens.shape[0]


class EventMemoryForest:
    """The memory of one stream. `heads` = the vision tower's attention heads (ToMe metric groups)."""

    def __init__(self, settings: MemorySettings | None = None, heads: int = 16):
        self.settings = settings or MemorySettings()
        self.heads = heads
        self.now: list[torch.Tensor] = []          # [T, C] each
        self.short: list[torch.Tensor] = []        # [short_tokens, C] each
        self.events: list[Event] = []
        self.event_similarity: list[float] = []    # between events i and i+1
        self.transitions: list[torch.Tensor] = []  # cosine(frame i, frame i+1) for the frames in short/now
        self.frames_in_events = 0
        self.consolidations = 0
        self._previous: torch.Tensor | None = None

    # ---- input ---------------------------------------------------------------------------------
    def insert(self, frame: torch.Tensor) -> None:
        """Add one frame [T, C] (position embeddings already added)."""
        flat = frame.reshape(-1)
        if self._previous is not None:
            if self._previous.shape != flat.shape:
                raise ValueError(f"frames must keep one token count per stream: {self._previous.numel()} values, "
                                 f"then {flat.numel()}")
            self.transitions.append(F.cosine_similarity(self._previous, flat, dim=0))
        self._previous = flat
        target = min(self.settings.now_tokens, frame.shape[0])
        self.now.append(merge_tokens(frame[None], target, self.heads)[0])

    @property
    def frames_seen(self) -> int:
        return self.frames_in_events + len(self.short) + len(self.now)

    # ---- maintenance ---------------------------------------------------------------------------
    def maintain(self) -> None:
        self._update_short()
        self._split_events()
        self._consolidate()

    def _update_short(self) -> None:
        overflow = len(self.now) - self.settings.now_window
        if overflow <= 0:
            return
        leaving, self.now = torch.stack(self.now[:overflow]), self.now[overflow:]
        target = min(self.settings.short_tokens, leaving.shape[1])
        self.short.extend(merge_tokens(leaving, target, self.heads).unbind(0))

    def _split_events(self) -> None:
        s = self.settings
        while len(self.short) >= s.short_window + s.split_window:
            cut = int(torch.argmin(torch.stack(self.transitions[:s.split_window]))) + 1
            frames = torch.stack(self.short[:cut])
            self.short, self.transitions = self.short[cut:], self.transitions[cut:]
            per_frame = min(s.long_tokens, frames.shape[1])
            merged = merge_tokens(frames.reshape(1, -1, frames.shape[-1]), per_frame * cut, self.heads)
            event = Event(merged.reshape(cut, per_frame, -1), time=self.frames_in_events - 1 + (cut + 1) / 2, merges=1)
            self.frames_in_events += cut
            self.events.append(event)
            if len(self.events) > 1:
                self.event_similarity.append(self._similarity(self.events[-2], self.events[-1]))

    def _similarity(self, first: Event, second: Event) -> float:
        per_frame = first.tokens.shape[1]
        target = math.ceil((first.frames + second.frames) / 2) * per_frame
        return pair_similarity(first.tokens, second.tokens, target, self.heads)

    def long_tokens(self) -> int:
        return sum(event.tokens.shape[0] * event.tokens.shape[1] for event in self.events)

    def penalties(self) -> list[float]:
        """Consolidation penalty of every adjacent event pair (lower = merged first)."""
        s = self.settings
        elapsed = self.frames_in_events - 1 + len(self.short) + len(self.now)
        counts = [(a.merges + b.merges) / 2 for a, b in zip(self.events, self.events[1:])]
        most = max(counts)
        out = []
        for i, (a, b) in enumerate(zip(self.events, self.events[1:])):
            time = (a.time + b.time) / 2 / elapsed
            out.append(s.sim_weight * (1 - self.event_similarity[i]) + s.time_weight * time
                       + s.merge_weight * (counts[i] / most + 1e-6))
        return out

    def _consolidate(self) -> None:
        while self.long_tokens() > self.settings.quota and len(self.events) > 1:
            penalties = self.penalties()
            i = min(range(len(penalties)), key=penalties.__getitem__)
            self.merge_pair(i)

    def merge_pair(self, i: int) -> None:
        """Merge events i and i+1 into ceil((n1 + n2) / 2) frames; refresh the neighbours' similarities."""
        a, b = self.events[i], self.events[i + 1]
        per_frame, channels = a.tokens.shape[1], a.tokens.shape[2]
        frames = math.ceil((a.frames + b.frames) / 2)
        joined = torch.cat([a.tokens, b.tokens]).reshape(1, -1, channels)
        merged = merge_tokens(joined, frames * per_frame, self.heads).reshape(frames, per_frame, channels)
        time = (a.time * a.frames + b.time * b.frames) / (a.frames + b.frames)
        self.events[i:i + 2] = [Event(merged, time, a.merges + b.merges)]
        del self.event_similarity[i]
        if i > 0:
            self.event_similarity[i - 1] = self._similarity(self.events[i - 1], self.events[i])
        if i < len(self.events) - 1:
            self.event_similarity[i] = self._similarity(self.events[i], self.events[i + 1])
        self.consolidations += 1

    # ---- output --------------------------------------------------------------------------------
    def tokens(self) -> torch.Tensor:
        """[N, C]: events (oldest first, frame by frame) ++ short-term frames ++ current frame(s)."""
        parts = [event.tokens.reshape(-1, event.tokens.shape[-1]) for event in self.events]
        parts += self.short + self.now
        if not parts:
            raise RuntimeError("the StreamForest memory is empty: ingest frames before answering")
        return torch.cat(parts)

    def counts(self) -> dict[str, int]:
        """Token and frame counts per tier (reported in host timings)."""
        return {"long_tokens": self.long_tokens(), "short_tokens": sum(t.shape[0] for t in self.short),
                "now_tokens": sum(t.shape[0] for t in self.now), "events": len(self.events),
                "short_frames": len(self.short), "frames": self.frames_seen, "consolidations": self.consolidations}
