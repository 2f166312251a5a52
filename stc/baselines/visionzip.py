"""VisionZip (Yang et al., CVPR 2025): dominant tokens by attention + contextual tokens by merging.

Released algorithm (dvlab-research/VisionZip, per image), reproduced per frame (computed for all frames
of a call at once, `visionzip_frames`):
  1. dominant: the D tokens that receive the most attention in the tower's feature layer (CLS row for
     towers with a CLS token; for SigLIP, which has none, the attention each token receives averaged over
     heads and queries, as the release's LLaVA-OV demo does). Kept in raster order; equal attention at
     the cut keeps the lowest index (the release's torch.topk leaves that order unspecified).
  2. contextual: of the remaining R tokens, C targets taken uniformly (every max(1, R // C)-th), every
     other remaining token assigned to its most similar target (dot product of L2-normalised keys,
     head-averaged, of that same layer; equal similarity -> the first target); contextual token =
     target + MEAN of its assignees (the release adds the target to the mean, it does not average over
     all members).
  3. output [dominant ; contextual].
Budget split as released (54+10 = 64, 108+20 = 128): C = round(k * contextual_ratio), ratio 10/64,
so 49 -> 41 + 8 and 64 -> 54 + 10.

Where a stream host differs (docs/baselines/README.md): the release acts on the tower's 729 tokens before
the projector; LLaVA-OV hosts pool to 196 after the projector, so here the scores and keys are pooled to
the host's grid by the host (bilinear, like the tokens, as STC's own VisionZip port does) and selection/
merging act on projected tokens. `contextual_ratio=0` is STC's port (dominant tokens only).
Needs `TokenSide.attention` and `TokenSide.keys` (hosts compute them only when a method requires them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stc.baselines.batched import complement_indices, gather_rows, split_indices
from stc.baselines.budget import TokenCounts, check_budget, check_positive
from stc.compression.base import TokenMethod, TokenSide


@dataclass(frozen=True)
class VisionZipConfig:
    """tokens_per_frame: k = dominant + contextual. contextual_ratio: share of k that is contextual
    (released 10/64; 0 = dominant only, STC's port)."""

    tokens_per_frame: int = 49
    contextual_ratio: float = 10 / 64

    def __post_init__(self):
        check_positive("visionzip", "tokens_per_frame", self.tokens_per_frame)
        if not 0.0 <= self.contextual_ratio < 1.0:
            raise ValueError(f"compression.visionzip.contextual_ratio={self.contextual_ratio}: must be in [0, 1)")

    def split(self) -> tuple[int, int]:
        """(dominant, contextual) token counts; dominant >= 1."""
        contextual = min(int(round(self.tokens_per_frame * self.contextual_ratio)), self.tokens_per_frame - 1)
        return self.tokens_per_frame - contextual, contextual


def visionzip_frames(tokens: torch.Tensor, attention: torch.Tensor, keys: torch.Tensor, dominant: int,
                     contextual: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All frames of a call at once: tokens [F, T, D], attention [F, T], keys [F, T, C] ->
    ([F, dominant + contextual, D], dominant indices [F, dominant] in raster order).

    Batched over frames (one sort, one gather, one batched matmul each, no per-frame loop and no host
    sync); every frame has the same number of remaining tokens, so the target slots are shared.
    Against the former per-frame loop: same dominant tokens, order and indices (ties at the cut: lowest
    index); the contextual sums and similarities run in a batched matmul, whose float summation order
    may differ from a per-frame matmul in the last bit (identical whenever the sums are exact). Targets
    with exactly equal keys tie only up to that rounding, as before."""
    frames, count, _ = tokens.shape
    top, rest = split_indices(attention.float(), dominant)  # rest: [F, R], raster order
    if contextual == 0:
        return gather_rows(tokens, top), top
    remaining = count - dominant
    metric = F.normalize(gather_rows(keys, rest).float(), dim=-1)  # [F, R, C]
    step = max(1, remaining // contextual)
    targets = torch.arange(0, remaining, step, device=tokens.device)[:contextual]
    sources = complement_indices(targets[None], remaining)[0]  # the other slots, ascending
    similarity = metric[:, sources] @ metric[:, targets].transpose(1, 2)  # [F, S, C]
    assign = similarity.argmax(dim=2)  # target slot of every source; first maximum on ties
    one_hot = F.one_hot(assign, targets.numel()).to(tokens.dtype)  # [F, S, C]
    counts = one_hot.sum(1).clamp(min=1)[..., None]  # [F, C, 1]
    merged = (one_hot.transpose(1, 2) @ gather_rows(tokens, rest[:, sources])) / counts
    context = gather_rows(tokens, rest[:, targets]) + merged
    return torch.cat([gather_rows(tokens, top), context], dim=1), top


class VisionZipMethod(TokenMethod):
    name = "visionzip"
    config_class = VisionZipConfig
    requires = ("attention", "keys")

    def __init__(self, config: VisionZipConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        self.counts = TokenCounts()
        self.merged = 0

    def tokens_out(self, tokens_in: int) -> int:
        return check_budget(self.name, self.config.tokens_per_frame, tokens_in)

    def compress(self, tokens: torch.Tensor, side: TokenSide):
        frames, count, _ = tokens.shape
        check_budget(self.name, self.config.tokens_per_frame, count)
        for field in self.requires:
            value = getattr(side, field)
            if value is None or value.shape[:2] != (frames, count):
                got = None if value is None else tuple(value.shape)
                raise ValueError(f"compression.visionzip: the host must provide TokenSide.{field} of shape "
                                 f"[{frames}, {count}, ...], got {got}")
        dominant, contextual = self.config.split()
        kept, top = visionzip_frames(tokens, side.attention, side.keys, dominant, contextual)
        self.counts.add(frames, frames * count, frames * (dominant + contextual))
        self.merged += frames * (count - dominant - contextual)
        return kept, (top if contextual == 0 else None)

    def stats(self) -> dict:
        dominant, contextual = self.config.split()
        return {**self.counts.as_dict(), "dominant_per_frame": dominant, "contextual_per_frame": contextual,
                "tokens_merged": self.merged}
