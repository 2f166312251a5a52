"""StreamDyCoke's causal sliding-window TTM (anantteotia/StreamDyCoke `streamdycoke/ttm.py`).

Per frame t of the stream (window w = 4, threshold 0.9, anchor every 4):
  - t is an anchor (kept whole) if t mod anchor_every == 0 or no earlier frame is buffered;
  - otherwise m_p = max over the buffered frames of cos(x_t[p], x_past[p]) per position p; keep the
    positions with m_p < threshold (raster order); if none survive, keep argmin m;
  - push the FULL frame into a buffer of the last w - 1 frames.
The count per frame is variable (a threshold, not a budget): `tokens_out` is None and `compress` returns
one tensor per frame, like DyCoke's TTM. Causal: frame t reads only frames t-3..t.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stc.baselines.budget import TokenCounts, check_positive
from stc.compression.base import TokenMethod, TokenSide


@dataclass(frozen=True)
class StreamDyCokeTTMConfig:
    window_size: int = 4
    similarity_threshold: float = 0.9
    anchor_every: int = 4

    def __post_init__(self):
        check_positive("streamdycoke_ttm", "window_size", self.window_size)
        check_positive("streamdycoke_ttm", "anchor_every", self.anchor_every)
        if not -1.0 <= self.similarity_threshold <= 1.0:
            raise ValueError(f"compression.streamdycoke_ttm.similarity_threshold={self.similarity_threshold}: "
                             "must be in [-1, 1]")


class StreamDyCokeTTMMethod(TokenMethod):
    name = "streamdycoke_ttm"
    config_class = StreamDyCokeTTMConfig

    def __init__(self, config: StreamDyCokeTTMConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        self.frame_index = 0
        self.buffer: deque = deque(maxlen=max(1, self.config.window_size - 1))
        self.counts = TokenCounts()
        self.anchors = 0

    def tokens_out(self, tokens_in: int):
        return None

    def select(self, frame: torch.Tensor) -> torch.Tensor:
        """Kept positions of the next frame [N, D] of the stream (advances the stream)."""
        cfg = self.config
        if self.frame_index % cfg.anchor_every == 0 or not self.buffer or cfg.window_size == 1:
            picked = torch.arange(frame.shape[0], device=frame.device)
            self.anchors += 1
        else:
            similarity = torch.stack([F.cosine_similarity(frame.float(), past.float(), dim=-1) for past in self.buffer])
            best = similarity.max(dim=0).values
            picked = (best < cfg.similarity_threshold).nonzero().squeeze(1)
            if picked.numel() == 0:
                picked = best.argmin().view(1)
        self.buffer.append(frame)
        self.frame_index += 1
        return picked

    def compress(self, tokens: torch.Tensor, side: TokenSide):
        frames, count, _ = tokens.shape
        picked = [self.select(tokens[f]) for f in range(frames)]
        self.counts.add(frames, frames * count, sum(p.numel() for p in picked))
        return [tokens[f, picked[f]] for f in range(frames)], picked

    def stats(self) -> dict:
        return {**self.counts.as_dict(), "anchors": self.anchors}
