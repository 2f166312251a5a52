"""DyCoke TTM (Tao et al., CVPR 2025): temporal token merging in 4-frame windows — as a causal stream.

Released (KD-TAO/DyCoke `llava_arch.py::dycole_ttm`, on a whole video of F frames x N tokens, K = 0.7):
  pass 1: for every pair (f_2i, f_2i+1): per-position cosine of the two frames; f_2i+1 keeps only its
          m = int((1 - K) N) LEAST similar positions, f_2i stays whole;
  pass 2: for every window start i = 0, 4, 8, ... (`range(0, F - 4, 4)`: the last window is skipped):
          f_i+2 is compared with f_i per position and replaced by its m least similar tokens.
  -> per window [N, m, m, m] tokens (47.5 % at K = 0.7). Tokens are DROPPED, not averaged.

Every comparison is against an earlier frame, so frame t is decided when it arrives, from the full
features of frames t-1 and t-2 (window position j = t mod 4: j = 0 whole, j = 1 vs t-1, j = 2 vs t-2,
j = 3 vs t-1). Stream differences (docs/baselines/README.md): the release skips pass 2 on the video's
last window (and drops a trailing odd frame) — a stream has no last window, so every window gets both
passes; kept positions are in raster order (`sort_kept`; the release keeps them in similarity order).
`released_ttm` reproduces the release on a whole clip, for parity tests.

The token count per frame varies ([N, m, m, m]): `tokens_out` is None and `compress` returns one tensor
per frame; hosts that store fixed-size frame blocks must support variable blocks (the ReKV host does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from stc.baselines.budget import TokenCounts
from stc.compression.base import TokenMethod, TokenSide

WINDOW = 4


@dataclass(frozen=True)
class DyCokeTTMConfig:
    """merge_ratio: K, the share of a non-anchor frame's positions dropped (released 0.7).
    sort_kept: keep the surviving positions in raster order (False = the release's similarity order)."""

    merge_ratio: float = 0.7
    sort_kept: bool = True

    def __post_init__(self):
        if not 0.0 <= self.merge_ratio < 1.0:
            raise ValueError(f"compression.dycoke_ttm.merge_ratio={self.merge_ratio}: must be in [0, 1)")

    def kept(self, tokens: int) -> int:
        """m = int((1 - K) N) as released; at least one token."""
        return max(1, int((1 - self.merge_ratio) * tokens))


def least_similar(frame: torch.Tensor, reference: torch.Tensor, keep: int, sort: bool) -> torch.Tensor:
    """Positions of `frame` [N, D] least similar (cosine, per position) to `reference` [N, D]."""
    similarity = F.cosine_similarity(frame.float(), reference.float(), dim=-1)
    picked = torch.topk(similarity, keep, largest=False).indices
    return picked.sort().values if sort else picked


def released_ttm(features: torch.Tensor, merge_ratio: float = 0.7) -> list[torch.Tensor]:
    """The released whole-video TTM on [F, N, D] -> per-frame kept positions (similarity order), with its
    quirks: pass 2 over `range(0, F - 4, 4)` only, and a trailing odd frame is dropped (empty)."""
    frames, tokens, _ = features.shape
    keep = max(1, int((1 - merge_ratio) * tokens))
    out = [torch.empty(0, dtype=torch.long) for _ in range(frames)]
    for i in range(0, frames - 1, 2):
        out[i] = torch.arange(tokens)
        out[i + 1] = least_similar(features[i + 1], features[i], keep, sort=False)
    for i in range(0, frames - 4, 4):
        out[i + 2] = least_similar(features[i + 2], features[i], keep, sort=False)
    return out


class DyCokeTTMMethod(TokenMethod):
    name = "dycoke_ttm"
    config_class = DyCokeTTMConfig

    def __init__(self, config: DyCokeTTMConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        self.frame_index = 0
        self.previous: list[torch.Tensor] = []  # full features of the last two frames, newest last
        self.counts = TokenCounts()

    def tokens_out(self, tokens_in: int) -> Optional[int]:
        self.config.kept(tokens_in)
        return None  # [N, m, m, m] per window

    def select(self, frame: torch.Tensor) -> torch.Tensor:
        """Kept positions of the next frame of the stream [N, D] (advances the stream)."""
        tokens = frame.shape[0]
        position = self.frame_index % WINDOW
        keep = self.config.kept(tokens)
        if position == 0:
            picked = torch.arange(tokens, device=frame.device)
        else:
            reference = self.previous[-2] if position == 2 else self.previous[-1]
            picked = least_similar(frame, reference, keep, self.config.sort_kept)
        self.previous = (self.previous + [frame])[-2:]
        self.frame_index += 1
        return picked

    def compress(self, tokens: torch.Tensor, side: TokenSide):
        frames, count, _ = tokens.shape
        picked = [self.select(tokens[f]) for f in range(frames)]
        kept = [tokens[f, picked[f]] for f in range(frames)]
        self.counts.add(frames, frames * count, sum(p.numel() for p in picked))
        return kept, picked

    def stats(self) -> dict:
        return self.counts.as_dict()
