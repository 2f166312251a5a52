"""Typed, validated knobs of STC-Cacher and STC-Pruner.

Frozen dataclasses with defaults on the fields (transformers style). `__post_init__` rejects bad values
with one `ValueError` that names the knob and prints the value. They are also valid OmegaConf
structured configs, so Hydra entry points register them as schemas and convert once, at the entry.

Upstream users drive STC with environment variables; `STCConfig.from_env()` honours them, and explicit
arguments always win over the environment:

    STC_PATCH_VISION        1/0     enable STC-Cacher
    STC_UPDATE_TOKEN_RATIO  float   r, share of tokens recomputed on non-reference frames
                                    (unset: 1.0 = recompute everything, the released env default)
    STC_CACHE_INTERVAL      int     N, one full reference frame every N frames
    STC_TOKEN_PER_FRAME     int     k, tokens kept per frame by STC-Pruner (enables the pruner)
    STC_CUDA_GRAPH          1/0     replay selective frames from a CUDA graph
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Tuple

SIMILARITY_METRICS = ("cosine", "dot", "l1", "l2")
SELECTION_FEATURES = ("key", "input")
REUSE_TARGETS = ("both", "attention", "mlp")
PRUNE_STRATEGIES = ("gaussian", "dual_anchor", "gaussian_released")
REFRESH_POLICIES = ("fixed", "adaptive")
TOKEN_LAYOUTS = ("flat", "grid_newline")
RELEASED_ENV_UPDATE_RATIO = 1.0  # released default of STC_UPDATE_TOKEN_RATIO when the variable is unset


def _fail(knob: str, value, rule: str):
    raise ValueError(f"invalid STC setting {knob}={value!r}: {rule}")


@dataclass(frozen=True)
class CacherConfig:
    """STC-Cacher: full reference frame every N frames, selective recompute of r·T tokens otherwise.

    Attributes:
        update_ratio: r in (0, 1]; share of tokens recomputed per layer on non-reference frames.
            The paper's "reuse rate" R_Cacher is 1 - r (default r=0.25, i.e. 75% reuse).
        cache_interval: N >= 1; frames 0, N, 2N, ... of a stream run the full tower and refresh the
            reference. N=1 means every frame is a reference (no reuse).
        metric: how a token's fresh feature is compared with the reference ("cosine", "dot", "l1",
            "l2"); the least similar tokens are recomputed.
        selection_feature: "key" (released design: fresh keys vs reference keys) or "input" (the
            LayerNorm-1 output).
        cuda_graph: on CUDA, replay tower calls from captured graphs (never used on CPU).
        fused: on CUDA, run all-selective layers through one torch.compile'd function (Triton fuses
            the small ops; first call compiles, ~1 min). Ignored on CPU and for unknown activations.
        reuse: what static tokens reuse on selective frames: "both" (the method: attention and MLP
            branch outputs), or the paper's reuse-target ablations (Table 4) "attention" (MLP
            recomputed for every token) and "mlp" (attention recomputed for every token). The
            ablations run the eager/graphed layers only (never the fused one).
        stagger_streams: give the streams of one handle refresh phases 0, 1, 2, ... (mod N), so a call
            that batches one frame of each of S streams holds about S/N reference rows every time
            instead of S rows every N-th call. Per-stream outputs are those of a single stream whose
            schedule is shifted (same fidelity, same FLOPs).
        recompute_prefix: always recompute the tower's prefix tokens (CLS, registers) on selective
            frames, within the k recomputed tokens. Off by default (as released): a prefix token's
            layer-0 key never changes between frames, so the cosine rule never selects it and its
            output stays the reference frame's.
        refresh: "fixed" (as released: reference when frame % cache_interval == 0) or "adaptive"
            (`stc/cacher/refresh.py`: reference when the share of tokens whose layer-0 key cosine to the
            reference falls below `change_tau` exceeds `refresh_threshold`, within
            [`min_interval`, `max_interval`] frames of the last reference). The knobs below are read by
            "adaptive" only; "fixed" ignores them (and adaptive ignores cache_interval).
        change_tau: tau in (-1, 1]; a token counts as changed when its layer-0 key cosine is below it.
        refresh_threshold: theta in (0, 1]; changed-token share above which a frame becomes a reference.
        min_interval / max_interval: 1 <= min <= max; frames between two references (a frame with no
            valid reference is always one).
        max_update_ratio: None keeps r fixed; else a selective frame recomputes
            r_t = clamp(ratio_gain x changed share, update_ratio, max_update_ratio), rounded up to 1/16.
        ratio_gain: > 0; how many tokens to recompute per changed token (adaptive ratio only).
    """

    update_ratio: float = 0.25
    cache_interval: int = 2
    metric: str = "cosine"
    selection_feature: str = "key"
    cuda_graph: bool = False
    fused: bool = False
    reuse: str = "both"
    stagger_streams: bool = False
    recompute_prefix: bool = False
    refresh: str = "fixed"
    change_tau: float = 0.9
    refresh_threshold: float = 0.5
    min_interval: int = 1
    max_interval: int = 8
    max_update_ratio: Optional[float] = None
    ratio_gain: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.update_ratio, (int, float)) and 0.0 < self.update_ratio <= 1.0):
            _fail("update_ratio", self.update_ratio, "must be in (0, 1]")
        if not (isinstance(self.cache_interval, int) and self.cache_interval >= 1):
            _fail("cache_interval", self.cache_interval, "must be an integer >= 1")
        if self.metric not in SIMILARITY_METRICS:
            _fail("metric", self.metric, f"must be one of {SIMILARITY_METRICS}")
        if self.selection_feature not in SELECTION_FEATURES:
            _fail("selection_feature", self.selection_feature, f"must be one of {SELECTION_FEATURES}")
        if self.reuse not in REUSE_TARGETS:
            _fail("reuse", self.reuse, f"must be one of {REUSE_TARGETS}")
        if self.refresh not in REFRESH_POLICIES:
            _fail("refresh", self.refresh, f"must be one of {REFRESH_POLICIES}")
        if not (isinstance(self.change_tau, (int, float)) and -1.0 < self.change_tau <= 1.0):
            _fail("change_tau", self.change_tau, "must be in (-1, 1]")
        if not (isinstance(self.refresh_threshold, (int, float)) and 0.0 < self.refresh_threshold <= 1.0):
            _fail("refresh_threshold", self.refresh_threshold, "must be in (0, 1]")
        if not (isinstance(self.min_interval, int) and self.min_interval >= 1):
            _fail("min_interval", self.min_interval, "must be an integer >= 1")
        if not (isinstance(self.max_interval, int) and self.max_interval >= self.min_interval):
            _fail("max_interval", self.max_interval, f"must be an integer >= min_interval ({self.min_interval})")
        if self.max_update_ratio is not None and not (
            isinstance(self.max_update_ratio, (int, float)) and self.update_ratio <= self.max_update_ratio <= 1.0
        ):
            _fail("max_update_ratio", self.max_update_ratio, f"must be null or in [update_ratio ({self.update_ratio}), 1]")

        if not (isinstance(self.ratio_gain, (int, float)) and self.ratio_gain > 0):
            _fail("ratio_gain", self.ratio_gain, "must be > 0")

    def tokens_to_update(self, num_tokens: int) -> int:
        """k = max(1, min(T, floor(T·r))): tokens recomputed per layer on a selective frame."""
        return max(1, min(num_tokens, math.floor(num_tokens * self.update_ratio)))


@dataclass(frozen=True)
class PrunerConfig:
    """STC-Pruner: keep the k most novel tokens of every frame before LLM pre-fill.

    Attributes:
        tokens_per_frame: k >= 1 tokens kept per frame (must not exceed the frame's token count).
        strategy: "gaussian" (as released: multi-bandwidth Gaussian similarity to the frame anchor and
            the history anchor, lowest kept, with the history fixes of stc/pruner/pruner.py),
            "gaussian_released" (the same score with the released history, bit for bit: unbounded, one
            entry per call, channel subset re-chosen per call; for paper reproduction) or "dual_anchor"
            (paper formula: alpha·(1-cos(z, temporal)) + (1-alpha)·(1-cos(z, spatial)), highest kept).
        alpha: weight of the temporal anchor in "dual_anchor".
        history_window: W >= 1 frames kept in the per-stream FIFO history.
        channel_keep_ratio: share of channels (lowest variance, chosen once per stream) used for
            scoring in "gaussian"; 1.0 uses all channels.
        bandwidths: Gaussian bandwidths of the "gaussian" kernel.
        layout: "flat" (tokens of a frame are a flat list) or "grid_newline" (a rows×cols grid where
            every row ends with a newline token that is always kept; `grid` gives rows, cols).
        grid: (rows, cols) for the "grid_newline" layout.
    """

    tokens_per_frame: int = 64
    strategy: str = "gaussian"
    alpha: float = 0.5
    history_window: int = 64
    channel_keep_ratio: float = 0.5
    bandwidths: Tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)
    layout: str = "flat"
    grid: Optional[Tuple[int, int]] = None

    def __post_init__(self):
        if not (isinstance(self.tokens_per_frame, int) and self.tokens_per_frame >= 1):
            _fail("tokens_per_frame", self.tokens_per_frame, "must be an integer >= 1")
        if self.strategy not in PRUNE_STRATEGIES:
            _fail("strategy", self.strategy, f"must be one of {PRUNE_STRATEGIES}")
        if not 0.0 <= self.alpha <= 1.0:
            _fail("alpha", self.alpha, "must be in [0, 1]")
        if not (isinstance(self.history_window, int) and self.history_window >= 1):
            _fail("history_window", self.history_window, "must be an integer >= 1")
        if not 0.0 < self.channel_keep_ratio <= 1.0:
            _fail("channel_keep_ratio", self.channel_keep_ratio, "must be in (0, 1]")
        if len(self.bandwidths) == 0 or any(b <= 0 for b in self.bandwidths):
            _fail("bandwidths", self.bandwidths, "must be a non-empty list of positive numbers")
        if self.layout not in TOKEN_LAYOUTS:
            _fail("layout", self.layout, f"must be one of {TOKEN_LAYOUTS}")
        if self.layout == "grid_newline" and (self.grid is None or len(self.grid) != 2 or min(self.grid) < 1):
            _fail("grid", self.grid, "layout 'grid_newline' needs grid=(rows, cols) with positive sizes")


@dataclass(frozen=True)
class STCConfig:
    """Both halves of STC; `None` switches a half off (then nothing is patched / pruned)."""

    cacher: Optional[CacherConfig] = None
    pruner: Optional[PrunerConfig] = None

    @classmethod
    def from_env(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        cacher: Optional[CacherConfig] = None,
        pruner: Optional[PrunerConfig] = None,
        **overrides,
    ) -> "STCConfig":
        """Build from the upstream `STC_*` variables; explicit `cacher`/`pruner`/field overrides win.

        `overrides` are field names of either half, e.g. ``update_ratio=0.5`` or ``tokens_per_frame=49``.
        """
        env = os.environ if environ is None else environ
        cacher_fields = {f for f in CacherConfig.__dataclass_fields__}
        pruner_fields = {f for f in PrunerConfig.__dataclass_fields__}
        unknown = set(overrides) - cacher_fields - pruner_fields
        if unknown:
            raise ValueError(f"unknown STC setting(s) {sorted(unknown)}; known: {sorted(cacher_fields | pruner_fields)}")

        if cacher is None and _env_flag(env, "STC_PATCH_VISION"):
            # an unset variable means what the released `initialize_from_env` makes of it (stc-method.md
            # §4.2): r = 1.0 (every token recomputed), N = 2; only explicit values or overrides change it
            kwargs = {"update_ratio": RELEASED_ENV_UPDATE_RATIO}
            if "STC_UPDATE_TOKEN_RATIO" in env:
                kwargs["update_ratio"] = _env_number(env, "STC_UPDATE_TOKEN_RATIO", float)
            if "STC_CACHE_INTERVAL" in env:
                kwargs["cache_interval"] = _env_number(env, "STC_CACHE_INTERVAL", int)
            if "STC_CUDA_GRAPH" in env:
                kwargs["cuda_graph"] = _env_flag(env, "STC_CUDA_GRAPH")
            cacher = CacherConfig(**kwargs)
        if pruner is None and "STC_TOKEN_PER_FRAME" in env:
            pruner = PrunerConfig(tokens_per_frame=_env_number(env, "STC_TOKEN_PER_FRAME", int))

        cacher_over = {k: v for k, v in overrides.items() if k in cacher_fields}
        pruner_over = {k: v for k, v in overrides.items() if k in pruner_fields}
        if cacher_over:
            cacher = replace(cacher or CacherConfig(), **cacher_over)
        if pruner_over:
            pruner = replace(pruner or PrunerConfig(), **pruner_over)
        return cls(cacher=cacher, pruner=pruner)


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"invalid STC setting {name}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _env_number(env: Mapping[str, str], name: str, kind):
    raw = env[name]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"invalid STC setting {name}={raw!r}: expected {kind.__name__}") from None


__all__ = ["CacherConfig", "PrunerConfig", "STCConfig", "SIMILARITY_METRICS", "PRUNE_STRATEGIES", "REFRESH_POLICIES"]
