"""Refresh policies: which frame of a stream is a reference frame, and how many tokens a selective
frame recomputes. Chosen by `CacherConfig.refresh`; `plan_call` asks the policy once per row, in frame
order, before any encoder layer runs.

- fixed (as released, `build_policy` returns None and `plan_call` keeps its original branch): frame i
  is a reference when i % N == 0 (or when no reference exists); the CUDA-graph runner predicts it.
- `AdaptiveRefresh`: why — with a fixed N a reference taken before a scene cut serves every frame
  after the cut until the next multiple of N, and those frames are garbage. The policy measures the
  change of each frame against its stream's reference with the signal STC already trusts to pick
  dynamic tokens: layer-0 keys, centred per frame (minus the frame's mean key; raw key cosines stay
  ~1 even across a cut). change = share of tokens whose centred layer-0 key cosine to the reference's
  is below `change_tau`. The frame becomes a reference when change > `refresh_threshold` (and at
  least `min_interval` frames have passed), or when `max_interval` frames have passed; with
  `max_update_ratio`, a selective frame recomputes more tokens when more changed. Measured effect:
  docs/stc/fidelity.md.

Cost and causality: the signal is computed at plan time from the call's layer-0 input (LayerNorm-1 +
key projection of layer 0 for every row: T·2d² FLOPs, 2d²/(8d²+4Td+4dm) of one dense layer, i.e.
0.6 % of a dense DINOv2-S frame; layer 0 then computes the same keys again, the one duplicated piece),
compared only with references of EARLIER frames (the stored one, or an earlier row of the same call),
so the decision for frame t never reads a frame after t, and a call of several frames decides exactly
as one frame per call does. Each row's decision is a device-to-host read (one sync per frame), which
is why the CUDA-graph runner runs adaptive calls eager (their modes are not known before the call).

Per-stream policy state lives in `CacherState.refresh` (`RefreshState`); nothing is global.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

RATIO_STEP = 1.0 / 16  # adaptive ratios are rounded up to this grid: few distinct k (compile/graph keys)


@dataclass
class RefreshState:
    """What the adaptive policy keeps per stream: the reference frame's unit layer-0 keys [T, D] and its
    frame index, plus the last decision's signal (read by the audit)."""

    features: Optional[torch.Tensor] = None
    frame: int = 0
    last_change: Optional[float] = None
    changes: list = field(default_factory=list)  # (frame, change) since reset, for reports

    def reset(self) -> None:
        self.features, self.frame, self.last_change = None, 0, None
        self.changes = []


@dataclass(frozen=True)
class Decision:
    reference: bool
    tokens: int  # k for a selective row; T for a reference row
    change: Optional[float] = None


class AdaptiveRefresh:
    """Change-triggered references with [min_interval, max_interval] bounds; see the module docstring.

    `features(hidden, rows)` returns [B, T, D] layer-0 keys of the call's rows (built by the handle from
    the tower's anatomy adapter; tests may pass any causal per-row function)."""

    def __init__(self, config, features: Callable):
        self.config = config
        self.features = features
        self._unit = None
        self._latest: dict = {}
        self._states: dict = {}

    def begin_call(self, states, hidden, rows=None) -> None:
        self._states = {s.id: s for s in states}
        with torch.no_grad():
            keys = self.features(hidden, rows).float()
            # centred: the key bias and the frame-wide common part make raw key cosines ~1 on every
            # frame (median 0.95-1.0 on bikes.mp4 even across a scene cut); what moves is the rest
            self._unit = F.normalize(keys - keys.mean(dim=1, keepdim=True), dim=-1)
        self._latest = {}

    def change(self, row: int, reference: torch.Tensor) -> float:
        """Share of tokens of `row` whose unit layer-0 key has cosine < change_tau with the reference's."""
        cosine = torch.linalg.vecdot(self._unit[row], reference)
        return float((cosine < self.config.change_tau).float().mean())

    def decide(self, row: int, state, frame: int, has_reference: bool, num_tokens: int) -> Decision:
        cfg = self.config
        reference, ref_frame = self._latest.get(state.id, (state.refresh.features, state.refresh.frame))
        valid = has_reference and reference is not None and reference.shape == self._unit[row].shape
        if not valid:
            decision = Decision(True, num_tokens)
        else:
            since = frame - ref_frame
            change = self.change(row, reference)
            if since >= cfg.max_interval or (since >= cfg.min_interval and change > cfg.refresh_threshold):
                decision = Decision(True, num_tokens, change)
            else:
                decision = Decision(False, self._tokens(change, num_tokens), change)
        if decision.reference:
            self._latest[state.id] = (self._unit[row], frame)
        state.refresh.last_change = decision.change
        state.refresh.changes.append((frame, decision.change))
        return decision

    def _tokens(self, change: float, num_tokens: int) -> int:
        cfg = self.config
        ratio = cfg.update_ratio
        if cfg.max_update_ratio is not None:
            wanted = math.ceil(cfg.ratio_gain * change / RATIO_STEP - 1e-9) * RATIO_STEP
            ratio = min(cfg.max_update_ratio, max(cfg.update_ratio, wanted))
        return max(1, min(num_tokens, math.floor(num_tokens * ratio)))

    def end_call(self) -> None:
        """The call's last reference row of each stream becomes the stream's policy reference (cloned:
        the call's feature tensor is freed)."""
        for state_id, (features, frame) in self._latest.items():
            state = self._states[state_id]
            state.refresh.features, state.refresh.frame = features.clone(), frame
        self._unit, self._latest, self._states = None, {}, {}


def build_policy(config, features: Callable | None = None):
    """The policy object of a handle (one per handle; per-stream data stays in the states), or None for
    the released fixed interval (planned by `plan_call` itself, exactly as before policies existed)."""
    if config.refresh == "fixed":
        return None
    if config.refresh == "adaptive":
        if features is None:
            raise ValueError("refresh='adaptive' needs a layer-0 feature function (attach through attach_cacher)")
        return AdaptiveRefresh(config, features)
    raise ValueError(f"invalid STC setting refresh={config.refresh!r}: must be 'fixed' or 'adaptive'")
