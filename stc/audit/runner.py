"""The fidelity audit: run a tower over a clip twice (full recompute, STC-Cacher) and compare.

Per frame: mean and min over tokens of the cosine between the two final hidden states, whether the
frame was a reference, the tokens recomputed in each layer, the adaptive change signal, and the FLOPs
spent (stc/flops.py's model: dense layer for a reference, T·2d² + k·(...) for a selective one, plus
the adaptive policy's own decision cost, LayerNorm-1 + layer-0 keys = T·2d² per frame). Summary: mean
cosine over frames, worst frame, FLOP fraction = spent / (frames x dense tower).

Frames go through the tower in chunks of `chunk` frames per call in both passes; the cacher's
chunked calls equal one frame per call (tests/stc), so the chunk only changes speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stc.config import CacherConfig
from stc.flops import vit_layer_flops


@dataclass
class FrameRecord:
    index: int
    time_s: float
    mean_cosine: float
    min_cosine: float
    reference: bool
    recomputed_per_layer: list[int]
    change: float | None
    flops: float


@dataclass
class AuditResult:
    config: dict
    frames: list[FrameRecord] = field(default_factory=list)
    dense_frame_flops: float = 0.0
    tokens_per_frame: int = 0
    num_layers: int = 0

    @property
    def mean_cosine(self) -> float:
        return sum(f.mean_cosine for f in self.frames) / max(1, len(self.frames))

    @property
    def min_frame_cosine(self) -> float:
        return min((f.mean_cosine for f in self.frames), default=float("nan"))

    @property
    def worst_frame(self) -> int | None:
        return min(self.frames, key=lambda f: f.mean_cosine).index if self.frames else None

    @property
    def flop_fraction(self) -> float:
        return sum(f.flops for f in self.frames) / max(1e-30, self.dense_frame_flops * len(self.frames))

    @property
    def reference_fraction(self) -> float:
        return sum(f.reference for f in self.frames) / max(1, len(self.frames))

    def summary(self) -> dict:
        return {"mean_cosine": self.mean_cosine, "min_frame_cosine": self.min_frame_cosine,
                "worst_frame": self.worst_frame, "flop_fraction": self.flop_fraction,
                "reference_fraction": self.reference_fraction, "num_frames": len(self.frames),
                "tokens_per_frame": self.tokens_per_frame, "num_layers": self.num_layers,
                "dense_frame_gflops": self.dense_frame_flops / 1e9}

    def to_json(self) -> dict:
        return {**self.summary(), "config": self.config, "frames": [asdict(f) for f in self.frames]}


def _widths(handle) -> tuple[int, int]:
    """(d, MLP hidden width m) of the patched layers, read from the modules (any family)."""
    parts = handle.parts[0]
    width = (parts.k or parts.qkv).in_features
    linears = [m for m in parts.mlp.modules() if isinstance(m, nn.Linear)]
    return width, linears[0].out_features


def full_pass(encode, units: torch.Tensor, chunk: int) -> torch.Tensor:
    """Final hidden states of the plain tower, [F, T, D]."""
    with torch.no_grad():
        return torch.cat([encode(units[i : i + chunk]) for i in range(0, units.shape[0], chunk)])


def stc_pass(tower, units: torch.Tensor, config: CacherConfig, chunk: int):
    """(final hidden states [F, T, D] through attach_cacher, per-frame plan records)."""
    from stc.integrations.hf_vit import attach_cacher

    records = []
    outputs = []
    handle = attach_cacher(tower.module, config)
    try:
        width, mlp = _widths(handle)
        layers = len(handle.layers)
        with torch.no_grad():
            for start in range(0, units.shape[0], chunk):
                outputs.append(tower.encode(units[start : start + chunk]))
                plan = handle._plan
                tokens = dict(zip(plan.selective_rows, plan.selective_tokens))
                num_tokens = outputs[-1].shape[1]
                for row in range(len(plan.states)):
                    reference = row in plan.reference_rows
                    records.append((reference, [num_tokens if reference else tokens[row]] * layers, plan.changes[row]))
    finally:
        handle.detach()
    return torch.cat(outputs), records, (width, mlp, layers)


def audit(tower, units: torch.Tensor, times: list[float], config: CacherConfig, chunk: int = 8,
          full: torch.Tensor | None = None) -> AuditResult:
    """Audit one cacher config on preprocessed frames `units` [F, ...]; `full` reuses a full pass."""
    if full is None:
        full = full_pass(tower.encode, units, chunk)
    cached, records, (width, mlp, layers) = stc_pass(tower, units, config, chunk)
    num_tokens = full.shape[1]
    dense_layer = vit_layer_flops(width, mlp, num_tokens)
    decision = num_tokens * 2 * width * width if config.refresh != "fixed" else 0.0
    cosine = F.cosine_similarity(cached.double(), full.double(), dim=-1)  # [F, T]
    result = AuditResult(config=asdict(config), dense_frame_flops=dense_layer * layers, tokens_per_frame=num_tokens,
                         num_layers=layers)
    for i, (reference, per_layer, change) in enumerate(records):
        spent = sum(dense_layer if reference else vit_layer_flops(width, mlp, num_tokens, recomputed=k) for k in per_layer)
        result.frames.append(FrameRecord(
            index=i, time_s=times[i], mean_cosine=float(cosine[i].mean()), min_cosine=float(cosine[i].min()),
            reference=reference, recomputed_per_layer=per_layer, change=change, flops=spent + decision,
        ))
    return result
