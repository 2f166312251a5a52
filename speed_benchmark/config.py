"""Typed settings of the speed harness (also its Hydra/OmegaConf structured-config schema).

The Hydra entry point converts its DictConfig into `SpeedConfig` once (`from_mapping`); everything below
receives these dataclasses. `validate` rejects impossible settings with ONE `SpeedConfigError` naming the
knob, before any model is built (a 7B build takes a while; failing after it would waste the GPU slot).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

VISION_FAMILIES = ("siglip", "clip", "qwen2_vl")
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
CACHER_MODES = ("eager", "graph", "eager+fused", "graph+fused")
E2E_VARIANTS = ("baseline", "pruner", "cacher", "stc")


class SpeedConfigError(ValueError):
    """A speed-harness setting that cannot work (names the knob and the value)."""


@dataclass
class PresetConfig:
    """Which released model is timed. Sizes come from `frameworks.common.model_sizes` by name.

    Attributes:
        name: preset name (the yaml file name under configs/speed/preset/).
        model_config: a composite model-size preset (LLaVA-OV or Qwen2-VL) that provides both the vision
            tower and the LLM; empty when `vision`/`text` are given separately.
        vision: model-size preset of the vision tower (used when `model_config` is empty).
        text: model-size preset of the LLM that receives the visual tokens.
        vision_family: "siglip", "clip" or "qwen2_vl": how pixels are fed and which layers STC patches.
        llm_tokens_per_frame: visual tokens per frame that reach the LLM without pruning (196 for LLaVA-OV).
        frame_size: pixels per side fed to the tower; 0 = the vision config's image_size.
        description: one line for the table header.
    """

    name: str = "tiny"
    model_config: str = "llava_ov_tiny"
    vision: str = ""
    text: str = ""
    vision_family: str = "siglip"
    llm_tokens_per_frame: int = 25
    frame_size: int = 0
    description: str = ""


@dataclass
class ModelConfig:
    """How weights are obtained: random at the preset's sizes (default) or a local checkpoint."""

    path: Optional[str] = None  # local HF folder; loaded with from_pretrained instead of random weights
    dtype: str = "auto"  # auto = bfloat16 on CUDA, float32 on CPU
    attn_implementation: str = "sdpa"


@dataclass
class STCKnobs:
    """STC settings timed against the baseline (N, r, k)."""

    update_ratio: float = 0.25  # r: share of tokens recomputed per layer on selective frames
    cache_interval: int = 4  # N of the headline rows and targets; swept together with vit.intervals
    tokens_per_frame: int = 64  # k kept by STC-Pruner per frame
    pruner_strategy: str = "gaussian"
    fused: bool = False  # CacherConfig.fused in EVERY STC mode (multi-stream too); "+fused" modes add fused rows
    autotune: bool = False  # Inductor max_autotune for the fused layers' GEMMs (CUDA; compiling takes minutes)


@dataclass
class ViTCase:
    """(1) one stream, one frame per call: the baseline and STC in every mode, for each N in `intervals`.

    `modes` are STC-Cacher modes: "eager", "graph" (CacherConfig.cuda_graph), and "eager+fused" /
    "graph+fused" (CacherConfig.fused as well: the compiled selective layers). The baseline is timed in
    each base mode (eager, graph). Graph and fused modes need CUDA: skipped with a note on CPU.
    """

    enabled: bool = True
    intervals: List[int] = field(default_factory=lambda: [2, 4])
    modes: List[str] = field(default_factory=lambda: ["eager", "graph"])
    # consecutive frames of the stream per tower call (ReKV's encode chunk); rows of c > 1 are named
    # "... c=<c>" and compared with the dense tower at the same batch
    frames_per_call: List[int] = field(default_factory=lambda: [1])


@dataclass
class MultiStreamCase:
    """(2) S streams batched: one frame from each stream per call."""

    enabled: bool = True
    streams: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    frames: int = 8  # frames per stream in one timed repeat
    graph: bool = True
    stagger: bool = True  # also time streams with staggered refresh phases (flat per-call cost)
    fused: bool = False  # also time STC in mode graph+fused (fused batched layers; CUDA only)


@dataclass
class PrefillCase:
    """(3) LLM pre-fill of `frames` x k tokens in chunks of `frames_per_chunk` frames, + pruner cost."""

    enabled: bool = True
    frames_per_chunk: List[int] = field(default_factory=lambda: [1, 4, 8, 16])
    prompt_tokens: int = 16  # system-prompt tokens already in the cache (ReKV's init prompt)


@dataclass
class EndToEndCase:
    """(4) ingest through a registered host, one variant at a time (+ answer latency, long-stream answers).

    Variants: "baseline" (no compression), "pruner" (STC-Pruner k only), "cacher" (STC-Cacher N, r only),
    "stc" (both); cacher variants run in every mode of `modes` for every N of `intervals`. The host says
    which settings build the preset's model (`frameworks.speed`); hosts that cannot are skipped.
    """

    enabled: bool = True
    host: str = "rekv"
    variants: List[str] = field(default_factory=lambda: ["baseline", "pruner", "stc"])
    modes: List[str] = field(default_factory=lambda: ["eager", "graph"])  # as vit.modes; graph/fused on CUDA only
    intervals: List[int] = field(default_factory=list)  # N of cacher/stc variants; empty = [stc.cache_interval]
    frames_per_chunk: List[int] = field(default_factory=lambda: [1, 8])  # frames per ingest / pre-fill call
    repeats: int = 0  # timed ingest passes per variant; 0 = the run's `repeats` (a 7B pass is long)
    answer: bool = True  # time one answer (max_new_tokens) after every ingest pass
    max_new_tokens: int = 16
    long_frames: int = 0  # > 0: answer latency with this many frames in memory (1800 = 1 h at 0.5 fps)
    long_variants: List[str] = field(default_factory=lambda: ["baseline", "stc"])  # first mode/N, first chunk
    long_repeats: int = 3
    host_config: Dict[str, Any] = field(default_factory=dict)  # extra host settings (e.g. n_local)
    # host execution modes to sweep: {name: host settings}, e.g. for ReKV
    # {eager: {llm_step: eager, graph_token_stage: false}, graph: {}} (empty settings = the host's defaults).
    # Every variant runs once per mode (row label "host=<name>"); rows are compared with the FIRST mode's
    # baseline (e.g. eager = as users run HF code) and with the baseline of mode "graph" when it is swept
    # (column "x graph base"). Empty = one run with the host's defaults.
    host_modes: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class SpeedConfig:
    """Everything one harness run needs (the root of `configs/speed.yaml`)."""

    preset: PresetConfig = field(default_factory=PresetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stc: STCKnobs = field(default_factory=STCKnobs)
    vit: ViTCase = field(default_factory=ViTCase)
    multistream: MultiStreamCase = field(default_factory=MultiStreamCase)
    prefill: PrefillCase = field(default_factory=PrefillCase)
    e2e: EndToEndCase = field(default_factory=EndToEndCase)
    frames: int = 16  # F: frames per stream / per pre-fill
    repeats: int = 20
    warmup: int = 3
    device: str = "auto"
    seed: int = 0
    out_dir: str = "results/speed/run"
    plot: bool = True
    progress: bool = True
    cpu_threads: int = 0  # torch CPU threads, set by the entry points; 0 = torch's default
    profile: bool = False  # one torch.profiler pass per ViT variant -> <out_dir>/profile/ (explains misses)


def _build(cls, data: Mapping[str, Any], where: str):
    """Recursively build dataclass `cls` from a plain mapping, rejecting unknown keys by name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in dict(data).items():
        if key not in known:
            raise SpeedConfigError(f"unknown setting {where}{key}; known: {sorted(known)}")
        sub = known[key].type
        sub_cls = globals().get(sub) if isinstance(sub, str) else sub
        if dataclasses.is_dataclass(sub_cls) and isinstance(value, Mapping):
            value = _build(sub_cls, value, f"{where}{key}.")
        kwargs[key] = value
    return cls(**kwargs)


def from_mapping(data: Mapping[str, Any]) -> SpeedConfig:
    """Plain (resolved) mapping -> SpeedConfig; the one conversion point from Hydra's DictConfig."""
    return _build(SpeedConfig, data, "")


def _require(ok: bool, knob: str, value: Any, rule: str) -> None:
    if not ok:
        raise SpeedConfigError(f"invalid speed setting {knob}={value!r}: {rule}")


def validate(cfg: SpeedConfig, cuda_available: bool) -> None:
    """Reject impossible settings before building anything (model-dependent checks: `validate_sizes`)."""
    _require(cfg.preset.vision_family in VISION_FAMILIES, "preset.vision_family", cfg.preset.vision_family,
             f"must be one of {VISION_FAMILIES}")
    _require(cfg.frames >= 1, "frames", cfg.frames, "must be >= 1")
    _require(cfg.repeats >= 1, "repeats", cfg.repeats, "must be >= 1")
    _require(cfg.warmup >= 0, "warmup", cfg.warmup, "must be >= 0")
    _require(0.0 < cfg.stc.update_ratio <= 1.0, "stc.update_ratio", cfg.stc.update_ratio, "must be in (0, 1]")
    _require(cfg.stc.cache_interval >= 1, "stc.cache_interval", cfg.stc.cache_interval, "must be >= 1")
    _require(all(n >= 1 for n in cfg.vit.intervals), "vit.intervals", cfg.vit.intervals, "every N must be >= 1")
    _require(len(cfg.vit.frames_per_call) > 0 and all(c >= 1 for c in cfg.vit.frames_per_call), "vit.frames_per_call",
             cfg.vit.frames_per_call, "must list at least one chunk size >= 1")
    _require(cfg.stc.tokens_per_frame >= 1, "stc.tokens_per_frame", cfg.stc.tokens_per_frame, "must be >= 1")
    _require(cfg.stc.tokens_per_frame <= cfg.preset.llm_tokens_per_frame, "stc.tokens_per_frame",
             cfg.stc.tokens_per_frame,
             f"cannot keep more tokens than a frame has ({cfg.preset.llm_tokens_per_frame} for preset "
             f"{cfg.preset.name!r})")
    _require(all(s >= 1 for s in cfg.multistream.streams), "multistream.streams", cfg.multistream.streams,
             "every stream count must be >= 1")
    _require(cfg.multistream.frames >= 1, "multistream.frames", cfg.multistream.frames, "must be >= 1")
    _require(all(c >= 1 for c in cfg.prefill.frames_per_chunk), "prefill.frames_per_chunk",
             cfg.prefill.frames_per_chunk, "every chunk size must be >= 1")
    _validate_e2e(cfg)
    _require(all(m in CACHER_MODES for m in cfg.vit.modes), "vit.modes", cfg.vit.modes, f"each must be one of {CACHER_MODES}")
    fused = cfg.stc.fused or any(m.endswith("+fused") for m in cfg.vit.modes + cfg.e2e.modes)
    _require(not cfg.stc.autotune or fused, "stc.autotune", True,
             "tunes the fused layers only: set stc.fused=true or add a '+fused' mode to vit.modes / e2e.modes")
    _require(not cfg.stc.autotune or (cuda_available and cfg.device != "cpu"), "stc.autotune", True,
             "Inductor GEMM autotuning needs a CUDA device (this run is on CPU)")
    _require(cfg.prefill.prompt_tokens >= 0, "prefill.prompt_tokens", cfg.prefill.prompt_tokens, "must be >= 0")
    _require(cfg.cpu_threads >= 0, "cpu_threads", cfg.cpu_threads, "must be >= 0 (0 = torch default)")
    _require(cfg.device in DEVICES, "device", cfg.device, f"must be one of {DEVICES}")
    _require(cfg.device != "cuda" or cuda_available, "device", cfg.device,
             "CUDA was requested but torch.cuda.is_available() is False (use device=cpu or a small preset)")
    _require(cfg.model.dtype in DTYPES, "model.dtype", cfg.model.dtype, f"must be one of {DTYPES}")
    _require(bool(cfg.preset.model_config) or bool(cfg.preset.vision and cfg.preset.text), "preset",
             cfg.preset.name, "needs model_config, or both vision and text")


def _validate_e2e(cfg: SpeedConfig) -> None:
    e2e = cfg.e2e
    _require(all(c >= 1 for c in e2e.frames_per_chunk), "e2e.frames_per_chunk", e2e.frames_per_chunk,
             "every chunk size must be >= 1")
    _require(all(v in E2E_VARIANTS for v in e2e.variants), "e2e.variants", e2e.variants, f"each must be one of {E2E_VARIANTS}")
    _require(all(v in E2E_VARIANTS for v in e2e.long_variants), "e2e.long_variants", e2e.long_variants,
             f"each must be one of {E2E_VARIANTS}")
    _require(all(m in CACHER_MODES for m in e2e.modes), "e2e.modes", e2e.modes, f"each must be one of {CACHER_MODES}")
    _require(all(n >= 1 for n in e2e.intervals), "e2e.intervals", e2e.intervals, "every N must be >= 1")
    _require(e2e.repeats >= 0, "e2e.repeats", e2e.repeats, "must be >= 0 (0 = the run's repeats)")
    _require(e2e.max_new_tokens >= 1, "e2e.max_new_tokens", e2e.max_new_tokens, "must be >= 1")
    _require(e2e.long_frames >= 0, "e2e.long_frames", e2e.long_frames, "must be >= 0 (0 = no long-stream answers)")
    _require(e2e.long_repeats >= 1, "e2e.long_repeats", e2e.long_repeats, "must be >= 1")


def apply_process_settings(cfg: SpeedConfig) -> None:
    """Process-level settings, applied ONCE by the command-line entry points (never by library code):
    the CPU thread count. A toy model gains nothing from threads, and on a busy machine the OpenMP
    barriers of 2+ threads turn every op into a scheduler time slice (~100x slower, in 4 ms steps)."""
    if cfg.cpu_threads > 0:
        import torch

        torch.set_num_threads(cfg.cpu_threads)


def register_schemas() -> None:
    """Register the schema with Hydra's ConfigStore so yaml typos fail at composition time."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="speed_schema", node=SpeedConfig)
