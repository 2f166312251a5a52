"""STC-Pruner: keep the k most novel tokens of every frame before LLM pre-fill. One instance per stream.

    pruner = STCPruner(PrunerConfig(tokens_per_frame=64))
    kept, indices = pruner.compress(frame_tokens)   # [F, T, D] -> [F, k, D], [F, k] sorted
    pruner.reset()                                  # next video

Fixes relative to the released pruner (stc-method.md §8.1.2-4):
- history is per stream, a bounded FIFO of `history_window` frame entries, cleared by `reset()`
  (upstream's memory was unbounded, spanned videos and cost O(n) per frame);
- the "gaussian" scoring-channel subset is chosen ONCE per stream (the lowest-variance channels of its
  first frame) and then fixed, so history entries live in one coordinate system (upstream re-chose
  it per frame);
- history entries are per frame, so a call with F frames is causal frame by frame and gives the same
  result as F calls of one frame;
- one batched top-k over all frames; no Python loop over frames, no discarded scores, no host sync.

`strategy="gaussian_released"` switches the first three fixes off for paper reproduction: the history
is unbounded (one entry per `compress` call: the mean over all its frames and tokens), the memory mean
includes the current call, and the channel subset is re-chosen at every call from all its tokens, kept
in top-k order, so history entries mix channel subsets exactly as released. Still per stream (`reset()`
clears it): the released cross-video leak depends on video order and sharding, so it cannot be
reproduced meaningfully.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from stc.config import PrunerConfig
from stc.pruner.scoring import dual_anchor_scores, gaussian_scores, window_means


class STCPruner:
    """Per-stream pruner. See module docstring; config fields in `stc.config.PrunerConfig`."""

    def __init__(self, config: Optional[PrunerConfig] = None):
        self.config = config or PrunerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: history, scoring channels and counters."""
        self.history: Optional[torch.Tensor] = None  # [<=W, C] oldest first
        self.channels: Optional[torch.Tensor] = None  # fixed scoring channels ("gaussian")
        self.width: Optional[int] = None
        self.frames_seen = 0
        self.released_history: list[torch.Tensor] = []  # "gaussian_released": one [C] entry per call

    # ---- public --------------------------------------------------------------------------------
    @property
    def tokens_out_per_frame(self) -> int:
        """Tokens per frame after pruning (k, plus the kept row-newline tokens in 'grid_newline')."""
        cfg = self.config
        return cfg.tokens_per_frame + (cfg.grid[0] if cfg.layout == "grid_newline" else 0)

    @torch.no_grad()
    def compress(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prune each frame to its k most novel tokens.

        Args:
            features: [F, T, D] projector-space tokens of F consecutive frames of this stream
                (flat layout), or [F, rows·(cols+1), D] with a newline token ending every row.
        Returns:
            kept: [F, k', D] the kept tokens in their original order (k' = tokens_out_per_frame),
            indices: [F, k'] int64 ascending positions of the kept tokens within each frame.
        """
        grid_tokens, grid_positions = self._validate(features)
        scored = features if grid_positions is None else features[:, grid_positions]
        k = self.config.tokens_per_frame
        if self.config.strategy in ("gaussian", "gaussian_released"):
            scores = self._gaussian(scored) if self.config.strategy == "gaussian" else self._gaussian_released(scored)
            local = torch.topk(scores, k, dim=-1, largest=False, sorted=False).indices
        else:
            scores = self._dual_anchor(scored)
            local = torch.topk(scores, k, dim=-1, largest=True, sorted=False).indices
        if grid_positions is not None:
            local = grid_positions[local]
            newlines = self._newline_positions(features.device).expand(features.shape[0], -1)
            local = torch.cat([local, newlines], dim=-1)
        indices = torch.sort(local, dim=-1).values
        kept = torch.gather(features, 1, indices.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        self.frames_seen += features.shape[0]
        return kept, indices

    # ---- strategies ----------------------------------------------------------------------------
    def _gaussian(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.channels is None:  # chosen on the stream's first frame, so batching never changes them
            keep = max(1, math.floor(tokens.shape[-1] * self.config.channel_keep_ratio))
            variance = tokens[0].float().var(dim=0, unbiased=False)
            self.channels = torch.topk(variance, keep, largest=False).indices.sort().values
        scoring = tokens.index_select(-1, self.channels)  # [F, T, C]
        entries = scoring.float().mean(1)  # per-frame mean in scoring channels [F, C]
        memory = window_means(self._history_or_empty(entries), entries, self.config.history_window, include_current=True)
        self._push(entries)
        return gaussian_scores(scoring, memory, self.config.bandwidths)

    def _gaussian_released(self, tokens: torch.Tensor) -> torch.Tensor:
        """Released `STC_Pruner.compress` history (stc-method.md §3.2): per call, the lowest-variance
        channels over all F·T tokens (top-k order), one mean entry appended, memory = mean of all entries."""
        frames, count, width = tokens.shape
        keep = max(1, math.floor(width * self.config.channel_keep_ratio))
        variance = tokens.reshape(-1, width).float().var(dim=0, unbiased=False)
        channels = torch.topk(variance, keep, largest=False).indices  # top-k order, as released
        scoring = tokens.index_select(-1, channels)
        self.released_history.append(scoring.float().mean(dim=(0, 1)))
        memory = torch.stack([h.to(scoring.device) for h in self.released_history]).mean(0)
        return gaussian_scores(scoring, memory.expand(frames, -1), self.config.bandwidths)

    def _dual_anchor(self, tokens: torch.Tensor) -> torch.Tensor:
        entries = tokens.float().mean(1)  # raw spatial anchors [F, D]
        temporal = window_means(self._history_or_empty(entries), entries, self.config.history_window, include_current=False)
        self._push(entries)
        return dual_anchor_scores(tokens, temporal, self.config.alpha)

    # ---- helpers -------------------------------------------------------------------------------
    def _history_or_empty(self, like: torch.Tensor) -> torch.Tensor:
        if self.history is None:
            return like.new_zeros(0, like.shape[-1])
        return self.history.to(like.device)

    def _push(self, entries: torch.Tensor) -> None:
        merged = entries if self.history is None else torch.cat([self.history.to(entries.device), entries])
        self.history = merged[-self.config.history_window :]

    def _newline_positions(self, device) -> torch.Tensor:
        rows, cols = self.config.grid
        return (torch.arange(rows, device=device) * (cols + 1) + cols).unsqueeze(0)

    def _validate(self, features: torch.Tensor):
        cfg = self.config
        if not isinstance(features, torch.Tensor) or features.dim() != 3:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"STCPruner.compress expects features [frames, tokens, channels], got {shape}")
        frames, tokens, width = features.shape
        if self.width is not None and width != self.width:
            raise ValueError(f"STCPruner: channel count changed within a stream ({self.width} -> {width}); call reset() first")
        self.width = width
        grid_positions = None
        if cfg.layout == "grid_newline":
            rows, cols = cfg.grid
            if tokens != rows * (cols + 1):
                raise ValueError(f"STCPruner grid={cfg.grid} with newlines needs {rows * (cols + 1)} tokens per frame, got {tokens}")
            grid_positions = (torch.arange(rows, device=features.device).unsqueeze(1) * (cols + 1) + torch.arange(cols, device=features.device)).flatten()
            tokens = rows * cols
        if cfg.tokens_per_frame > tokens:
            raise ValueError(f"invalid STC setting tokens_per_frame={cfg.tokens_per_frame}: frames have only {tokens} tokens to choose from")
        return tokens, grid_positions
