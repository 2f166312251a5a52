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

A call is split in two (`begin` on the host, `run` on the device) so it can be replayed as a CUDA graph:
`begin(shape, device)` validates, advances the host counters and returns a `PrunerPlan` (hashable: equal
plans launch the same kernels on the same buffers); `run(features, plan)` only launches kernels. The
stream's history and scoring channels live in device buffers allocated once (`state_buffers()`), written
in place, whose addresses do not change across `reset()`; the history length is a host integer in the
plan, so after `history_window` frames every call of F frames has the same plan. `compress` is
`run(features, begin(...))`: results are those of the earlier growing-tensor history, bit for bit.

`strategy="gaussian_released"` switches the first three fixes off for paper reproduction: the history
is unbounded (one entry per `compress` call: the mean over all its frames and tokens), the memory mean
includes the current call, and the channel subset is re-chosen at every call from all its tokens, kept
in top-k order, so history entries mix channel subsets exactly as released. Still per stream (`reset()`
clears it): the released cross-video leak depends on video order and sharding, so it cannot be
reproduced meaningfully.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from stc.config import PrunerConfig
from stc.pruner.scoring import dual_anchor_scores, gaussian_scores, window_means


@dataclass(frozen=True)
class PrunerPlan:
    """What one call does, known on the host before any kernel runs (see the module docstring).

    frames: F of the call. history: entries in the history buffer before the call (<= history_window).
    choose_channels: the call picks the stream's scoring channels ("gaussian", first call of a stream).
    generation: which allocation of the state buffers the call reads and writes."""

    frames: int
    history: int
    choose_channels: bool
    generation: int


class STCPruner:
    """Per-stream pruner. See module docstring; config fields in `stc.config.PrunerConfig`."""

    def __init__(self, config: Optional[PrunerConfig] = None):
        self.config = config or PrunerConfig()
        self._history_buffer: Optional[torch.Tensor] = None  # [W, C] float32, entries [:history_length]
        self._channel_buffer: Optional[torch.Tensor] = None  # [C] int64 scoring channels ("gaussian")
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget the stream: history, scoring channels and counters (the buffers are kept and reused)."""
        self.history_length = 0
        self.channels_chosen = False
        self.width: Optional[int] = None
        self.frames_seen = 0
        self.released_history: list[torch.Tensor] = []  # "gaussian_released": one [C] entry per call

    # ---- public --------------------------------------------------------------------------------
    @property
    def tokens_out_per_frame(self) -> int:
        """Tokens per frame after pruning (k, plus the kept row-newline tokens in 'grid_newline')."""
        cfg = self.config
        return cfg.tokens_per_frame + (cfg.grid[0] if cfg.layout == "grid_newline" else 0)

    @property
    def history(self) -> Optional[torch.Tensor]:
        """[<=W, C] the stream's history entries, oldest first (None before the first frame)."""
        if self.history_length == 0:
            return None
        return self._history_buffer[: self.history_length]

    @property
    def channels(self) -> Optional[torch.Tensor]:
        """The stream's fixed scoring channels ("gaussian"; None before the first frame)."""
        return self._channel_buffer if self.channels_chosen else None

    @property
    def graph_safe(self) -> bool:
        """`run` launches kernels only (no host sync, no Python state): every strategy except the
        released history, whose memory is a Python list that grows by one entry per call."""
        return self.config.strategy != "gaussian_released"

    def state_buffers(self) -> list[torch.Tensor]:
        """Device tensors `run` writes in place (a CUDA-graph runner saves/restores them around warm-ups)."""
        return [b for b in (self._history_buffer, self._channel_buffer) if b is not None]

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
        if not isinstance(features, torch.Tensor) or features.dim() != 3:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"STCPruner.compress expects features [frames, tokens, channels], got {shape}")
        return self.run(features, self.begin(features.shape, features.device))

    def begin(self, shape: tuple[int, int, int], device: torch.device) -> PrunerPlan:
        """Host half of a call on features of `shape` [F, T, D]: validate, (re)allocate the state buffers
        when the stream's width or device changed, advance the counters. No kernel runs here."""
        self._validate(shape)
        frames, _, width = shape
        cfg = self.config
        choose = False
        if cfg.strategy != "gaussian_released":
            scoring = self._scoring_width(width)
            history = self._history_buffer
            if history is None or history.shape[1] != scoring or not _same_device(history.device, device):
                # normal tensors even under inference_mode: written in place by later calls in any mode
                with torch.inference_mode(False):
                    self._history_buffer = torch.zeros(cfg.history_window, scoring, device=device)
                    gaussian = cfg.strategy == "gaussian"
                    self._channel_buffer = torch.zeros(scoring, dtype=torch.long, device=device) if gaussian else None
                self._generation += 1
            choose = cfg.strategy == "gaussian" and not self.channels_chosen
            self.channels_chosen = self.channels_chosen or choose
        plan = PrunerPlan(frames, self.history_length, choose, self._generation)
        if cfg.strategy != "gaussian_released":
            self.history_length = min(self.history_length + frames, cfg.history_window)
        self.frames_seen += frames
        return plan

    @torch.no_grad()
    def run(self, features: torch.Tensor, plan: PrunerPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Device half of a call planned by `begin` (see `compress` for arguments and results)."""
        grid_positions = self._grid_positions(features.device)
        scored = features if grid_positions is None else features[:, grid_positions]
        k = self.config.tokens_per_frame
        if self.config.strategy in ("gaussian", "gaussian_released"):
            scores = self._gaussian(scored, plan) if self.config.strategy == "gaussian" else self._gaussian_released(scored)
            local = torch.topk(scores, k, dim=-1, largest=False, sorted=False).indices
        else:
            scores = self._dual_anchor(scored, plan)
            local = torch.topk(scores, k, dim=-1, largest=True, sorted=False).indices
        if grid_positions is not None:
            local = grid_positions[local]
            newlines = self._newline_positions(features.device).expand(features.shape[0], -1)
            local = torch.cat([local, newlines], dim=-1)
        indices = torch.sort(local, dim=-1).values
        kept = torch.gather(features, 1, indices.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        return kept, indices

    # ---- strategies ----------------------------------------------------------------------------
    def _gaussian(self, tokens: torch.Tensor, plan: PrunerPlan) -> torch.Tensor:
        channels = self._channel_buffer
        if plan.choose_channels:  # chosen on the stream's first frame, so batching never changes them
            variance = tokens[0].float().var(dim=0, unbiased=False)
            channels.copy_(torch.topk(variance, channels.shape[0], largest=False).indices.sort().values)
        scoring = tokens.index_select(-1, channels)  # [F, T, C]
        entries = scoring.float().mean(1)  # per-frame mean in scoring channels [F, C]
        memory = window_means(self._history_buffer[: plan.history], entries, self.config.history_window,
                              include_current=True)
        self._push(entries, plan)
        return gaussian_scores(scoring, memory, self.config.bandwidths)

    def _gaussian_released(self, tokens: torch.Tensor) -> torch.Tensor:
        """Released `STC_Pruner.compress` history (stc-method.md §3.2): per call, the lowest-variance
        channels over all F·T tokens (top-k order), one mean entry appended, memory = mean of all entries."""
        frames, count, width = tokens.shape
        keep = self._scoring_width(width)
        variance = tokens.reshape(-1, width).float().var(dim=0, unbiased=False)
        channels = torch.topk(variance, keep, largest=False).indices  # top-k order, as released
        scoring = tokens.index_select(-1, channels)
        self.released_history.append(scoring.float().mean(dim=(0, 1)))
        memory = torch.stack([h.to(scoring.device) for h in self.released_history]).mean(0)
        return gaussian_scores(scoring, memory.expand(frames, -1), self.config.bandwidths)

    def _dual_anchor(self, tokens: torch.Tensor, plan: PrunerPlan) -> torch.Tensor:
        entries = tokens.float().mean(1)  # raw spatial anchors [F, D]
        temporal = window_means(self._history_buffer[: plan.history], entries, self.config.history_window,
                                include_current=False)
        self._push(entries, plan)
        return dual_anchor_scores(tokens, temporal, self.config.alpha)

    # ---- helpers -------------------------------------------------------------------------------
    def _scoring_width(self, width: int) -> int:
        """Channels a history entry has: the kept share ("gaussian*") or all of them ("dual_anchor")."""
        if self.config.strategy == "dual_anchor":
            return width
        return max(1, math.floor(width * self.config.channel_keep_ratio))

    def _push(self, entries: torch.Tensor, plan: PrunerPlan) -> None:
        """Append this call's entries to the FIFO in place: the buffer's first rows are its last W entries."""
        window = self.config.history_window
        merged = torch.cat([self._history_buffer[: plan.history], entries])[-window:]
        self._history_buffer[: merged.shape[0]].copy_(merged)

    def _newline_positions(self, device) -> torch.Tensor:
        rows, cols = self.config.grid
        return (torch.arange(rows, device=device) * (cols + 1) + cols).unsqueeze(0)

    def _grid_positions(self, device) -> Optional[torch.Tensor]:
        """Positions of the grid tokens (not the row newlines) in a 'grid_newline' frame; None if flat."""
        if self.config.layout != "grid_newline":
            return None
        rows, cols = self.config.grid
        return (torch.arange(rows, device=device).unsqueeze(1) * (cols + 1) + torch.arange(cols, device=device)).flatten()

    def _validate(self, shape) -> None:
        cfg = self.config
        if len(shape) != 3:
            raise ValueError(f"STCPruner.compress expects features [frames, tokens, channels], got {tuple(shape)}")
        frames, tokens, width = shape
        if self.width is not None and width != self.width:
            raise ValueError(f"STCPruner: channel count changed within a stream ({self.width} -> {width}); call reset() first")
        self.width = width
        if cfg.layout == "grid_newline":
            rows, cols = cfg.grid
            if tokens != rows * (cols + 1):
                raise ValueError(f"STCPruner grid={cfg.grid} with newlines needs {rows * (cols + 1)} tokens per frame, got {tokens}")
            tokens = rows * cols
        if cfg.tokens_per_frame > tokens:
            raise ValueError(f"invalid STC setting tokens_per_frame={cfg.tokens_per_frame}: frames have only {tokens} tokens to choose from")


def _same_device(have: torch.device, want) -> bool:
    """`want` may omit the index ("cuda"): then the current device of that type is meant."""
    want = torch.device(want)
    if want.type != have.type:
        return False
    if want.index is None and want.type == "cuda":
        return have.index == torch.cuda.current_device()
    return want.index is None or want.index == have.index
