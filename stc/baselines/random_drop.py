"""random-drop: keep k tokens per frame chosen uniformly at random (the budget-matched control).

Per stream, a seeded generator (re-seeded at `reset()`), so a run is reproducible and two streams do not
share random state. Kept tokens stay in raster order (indices sorted), like every pruning method here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stc.baselines.budget import TokenCounts, check_budget, check_positive
from stc.compression.base import TokenMethod, TokenSide


@dataclass(frozen=True)
class RandomDropConfig:
    """tokens_per_frame: k kept per frame (49 = 25 % of LLaVA-OV's 196). seed: per-stream generator seed."""

    tokens_per_frame: int = 49
    seed: int = 0

    def __post_init__(self):
        check_positive("random_drop", "tokens_per_frame", self.tokens_per_frame)


class RandomDropMethod(TokenMethod):
    name = "random_drop"
    config_class = RandomDropConfig

    def __init__(self, config: RandomDropConfig):
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.counts = TokenCounts()

    def tokens_out(self, tokens_in: int) -> int:
        return check_budget(self.name, self.config.tokens_per_frame, tokens_in)

    def compress(self, tokens: torch.Tensor, side: TokenSide):
        frames, count, _ = tokens.shape
        k = check_budget(self.name, self.config.tokens_per_frame, count)
        scores = torch.rand(frames, count, generator=self.generator)  # CPU generator: device-independent
        indices = torch.topk(scores, k, dim=1).indices.sort(dim=1).values.to(tokens.device)
        kept = torch.gather(tokens, 1, indices[..., None].expand(-1, -1, tokens.shape[-1]))
        self.counts.add(frames, frames * count, frames * k)
        return kept, indices

    def stats(self) -> dict:
        return self.counts.as_dict()
