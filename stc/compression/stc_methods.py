"""STC's two halves as registered compression methods: `cacher` (VISION) and `pruner` (TOKENS).

Thin adapters: the algorithms live in `stc.cacher` / `stc.pruner` and stay usable on their own
(`attach_cacher`, `STCPruner`); these classes only give them the common method contract.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from stc.compression.base import TokenMethod, TokenSide, VisionMethod
from stc.config import CacherConfig, PrunerConfig


class CacherMethod(VisionMethod):
    """STC-Cacher on the host's vision tower (one stream: the handle's default stream)."""

    name = "cacher"
    config_class = CacherConfig

    def __init__(self, config: CacherConfig):
        super().__init__(config)
        self.handle = None

    def attach(self, tower: nn.Module) -> None:
        from stc.integrations.hf_vit import attach_cacher  # transformers-aware; imported on use

        if self.handle is not None:
            raise RuntimeError("cacher: already attached; call detach() first")
        self.handle = attach_cacher(tower, self.config)

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.detach()
            self.handle = None

    @contextmanager
    def bypass(self) -> Iterator[None]:
        if self.handle is None:
            yield
        else:
            with self.handle.bypass():
                yield

    def reset(self) -> None:
        if self.handle is not None:
            self.handle.stream.reset()

    def stats(self) -> dict:
        if self.handle is None:
            return {}
        s = self.handle.stream.stats
        return {"reference_frames": s.reference_frames, "selective_frames": s.selective_frames,
                "tokens_recomputed": s.tokens_recomputed, "tokens_per_frame": s.tokens_per_frame,
                "last_frame_reference": s.last_frame_reference}


class PrunerMethod(TokenMethod):
    """STC-Pruner: the k most novel tokens of every frame."""

    name = "pruner"
    config_class = PrunerConfig

    def __init__(self, config: PrunerConfig):
        super().__init__(config)
        from stc.pruner.pruner import STCPruner

        self.pruner = STCPruner(config)
        self._tokens_in = self._tokens_kept = 0

    def tokens_out(self, tokens_in: int) -> Optional[int]:
        k, cfg = self.config.tokens_per_frame, self.config
        if cfg.layout == "grid_newline":
            rows, cols = cfg.grid
            if tokens_in != rows * (cols + 1):
                raise ValueError(f"compression.pruner.grid={tuple(cfg.grid)}: layout 'grid_newline' needs "
                                 f"{rows * (cols + 1)} tokens per frame, the host gives {tokens_in}")
            tokens_in = rows * cols
        if k > tokens_in:
            raise ValueError(f"compression.pruner.tokens_per_frame={k} exceeds the {tokens_in} tokens per frame")
        return self.pruner.tokens_out_per_frame

    @property
    def graph_safe(self) -> bool:  # every strategy but "gaussian_released" (stc/pruner/pruner.py)
        return self.pruner.graph_safe

    def compress(self, tokens: torch.Tensor, side: TokenSide):
        kept, indices = self.pruner.compress(tokens)
        self._count(tokens.shape[0], tokens.shape[1])
        return kept, indices

    def begin(self, shape, device, side: TokenSide):
        plan = self.pruner.begin(shape, device)
        self._count(shape[0], shape[1])
        return plan

    def run(self, tokens: torch.Tensor, side: TokenSide, plan):
        return self.pruner.run(tokens, plan)

    def state_buffers(self) -> list[torch.Tensor]:
        return self.pruner.state_buffers()

    def _count(self, frames: int, tokens: int) -> None:
        self._tokens_in += frames * tokens
        self._tokens_kept += frames * self.pruner.tokens_out_per_frame

    def reset(self) -> None:
        self.pruner.reset()
        self._tokens_in = self._tokens_kept = 0

    def stats(self) -> dict:
        return {"tokens_in": self._tokens_in, "tokens_kept": self._tokens_kept}
