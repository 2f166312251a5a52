"""Typed configuration of an evaluation run, mirrored by the Hydra groups under `configs/`.

`EvalConfig` is registered with Hydra's ConfigStore as the schema of `configs/eval.yaml`, so a typo
(`benchmark.fsp=1`) or a wrong type fails at compose time. The `framework` group is a free-form
mapping with a required `name` because every host has its own knobs (model_path, n_local, ...); the
host validates them itself. `to_run_config` converts the composed DictConfig ONCE into plain frozen
dataclasses (`RunConfig`), which is all library code ever sees.

Compression: the `compression` group is a mapping of registered method names (`stc.compression`) to
their settings, plus a `name`; `to_run_config` turns it into a validated `CompressionSpec` (one error
naming `compression.<method>.<field>`). This module's own frozen configs have mutable mirrors for
Hydra, generated from the frozen classes' fields, so they can never drift.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from stc.compression import CompressionSpec

PROTOCOLS = ("streaming", "prefix")
FORMATS = ("auto", "official", "rekv")


def _mutable_mirror(cls: type) -> type:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, hints[f.name], field(default=f.default)) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__ + "Schema", fields)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Group `benchmark`: where the annotations are, how videos are sampled, how answers are scored.

    Attributes:
        name: registry key (ovobench, streamingbench, mlvu, egoschema, videomme).
        annotation: annotation file, relative to `data.root` unless absolute.
        format: "official", "rekv" (ReKV/STC-converted) or "auto" (detected from the first record).
        video_dir: folder holding the videos, relative to `data.root` ("" = data.root itself).
        precut_dir: optional folder of upstream pre-cut prefix clips (OVO-Bench `chunked_videos`,
            files `{id}.mp4` / `{id}_{i}.mp4`); used when the clip exists, else the source is cut.
        answers: EgoSchema `subset_answers.json` (relative to data.root); other benchmarks ignore it.
        fps: frames sampled per second of video (recorded in every result; upstream mixed 0.5 and 1).
        max_frames: keep at most this many frames per query (uniformly thinned); 0 = no cap.
        scoring: scoring variant; each benchmark lists its own (see docs/evaluation.md).
        prompt: prompt template name; each benchmark lists its own.
        chat_template: passed to the host as Query.use_chat_template (upstream STC: False for
            OVO-Bench/StreamingBench, whose prompts are fed raw; True for offline benchmarks).
        max_new_tokens: greedy decoding budget per answer.
        response_last_line: score only the last line of the response (STC's OVO-Bench wrapper).
        tasks: keep only these tasks (`Sample.task`, e.g. OVO-Bench ["EPM", "STU", "REC"], the subset
            upstream STC scripts and the paper's ablations use); empty = all. Unknown names are an error.
    """

    name: str = "ovobench"
    annotation: str = ""
    format: str = "auto"
    video_dir: str = ""
    precut_dir: Optional[str] = None
    answers: Optional[str] = None
    fps: float = 1.0
    max_frames: int = 0
    scoring: str = "official"
    prompt: str = "official"
    chat_template: bool = False
    max_new_tokens: int = 16
    response_last_line: bool = False
    tasks: Tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.fps <= 0:
            raise ValueError(f"invalid benchmark setting fps={self.fps!r}: must be > 0")
        if self.max_frames < 0:
            raise ValueError(f"invalid benchmark setting max_frames={self.max_frames!r}: must be >= 0")
        if self.format not in FORMATS:
            raise ValueError(f"invalid benchmark setting format={self.format!r}: must be one of {FORMATS}")


@dataclass(frozen=True)
class DataConfig:
    """`data.root`: the folder the benchmark's relative paths start from."""

    root: str = "data"


@dataclass(frozen=True)
class VideoConfig:
    """Decoding options. height/width 0 = native size (hosts resize anyway; 384 saves host RAM)."""

    height: int = 0
    width: int = 0
    num_threads: int = 0


BenchmarkSchema = _mutable_mirror(BenchmarkConfig)
DataSchema = _mutable_mirror(DataConfig)
VideoSchema = _mutable_mirror(VideoConfig)


@dataclass
class EvalSchema:
    """Hydra schema of `configs/eval.yaml` (mutable so Hydra can merge; see `to_run_config`)."""

    framework: Dict[str, Any] = field(default_factory=lambda: {"name": "toy"})
    benchmark: BenchmarkSchema = field(default_factory=BenchmarkSchema)  # type: ignore[valid-type]
    # group `compression`: {name, <method>: {settings} | null, ...}; validated by CompressionSpec
    compression: Dict[str, Any] = field(default_factory=dict)
    data: DataSchema = field(default_factory=DataSchema)  # type: ignore[valid-type]
    video: VideoSchema = field(default_factory=VideoSchema)  # type: ignore[valid-type]
    protocol: str = "streaming"
    limit: int = 0
    shard: str = "0/1"
    run_name: str = "run"
    output_dir: str = "results/eval/run"
    progress: bool = True
    retry_failed: bool = True
    prefetch: int = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything an evaluation run needs, as plain frozen dataclasses (built once at the entry point)."""

    framework_name: str
    framework: Dict[str, Any]
    benchmark: BenchmarkConfig
    compression: CompressionSpec = CompressionSpec()
    data: DataConfig = DataConfig()
    video: VideoConfig = VideoConfig()
    protocol: str = "streaming"
    limit: int = 0
    shard_index: int = 0
    num_shards: int = 1
    output_dir: str = "results/eval/run"
    progress: bool = True
    retry_failed: bool = True
    prefetch: int = 1

    def __post_init__(self):
        if self.prefetch < 0:
            raise ValueError(f"invalid setting prefetch={self.prefetch!r}: must be >= 0 (0 = decode in the main thread)")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"invalid setting protocol={self.protocol!r}: must be one of {PROTOCOLS}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"invalid setting shard={self.shard_index}/{self.num_shards}: need 0 <= i < n")
        if self.limit < 0:
            raise ValueError(f"invalid setting limit={self.limit!r}: must be >= 0 (0 = all)")

    def describe(self) -> dict:
        """The settings every report states: scoring variant, fps, protocol and STC (N, r, k)."""
        return {
            "framework": self.framework_name,
            "model": model_label(self.framework),
            "benchmark": self.benchmark.name,
            "scoring": self.benchmark.scoring,
            "prompt": self.benchmark.prompt,
            "fps": self.benchmark.fps,
            "max_frames": self.benchmark.max_frames,
            "protocol": self.protocol,
            "compression": self.compression_name,
            **stc_settings(self.compression),
            "compression_settings": self.compression.settings(),
        }

    @property
    def compression_name(self) -> str:
        return self.compression.label

RANDOM_WEIGHTS = "random weights"


def model_label(framework: typing.Mapping[str, Any]) -> str:
    """What answered: the checkpoint path, "random weights", or "n/a" for hosts without a model."""
    if "model_path" not in framework:
        return "n/a (host has no model_path)"
    return str(framework["model_path"]) if framework.get("model_path") else RANDOM_WEIGHTS


def check_model(framework: typing.Mapping[str, Any]) -> None:
    """Refuse to evaluate random weights by accident: any host config with a `model_path` key (rekv
    today; streamforest, dispider, livecc tomorrow) needs a path or an explicit `random_weights: true`.
    An accuracy table of random weights looks like any other, and the README commands once omitted it."""
    if "model_path" not in framework or framework.get("model_path"):
        return
    if not framework.get("random_weights"):
        name = framework.get("name", "?")
        raise ValueError(f"framework={name} has no framework.model_path: pass framework.model_path=<checkpoint folder>, "
                         "or framework.random_weights=true to run random weights on purpose (latency only)")


def host_settings(framework: typing.Mapping[str, Any]) -> dict:
    """The framework mapping as the host sees it. `random_weights` stays: hosts that build a model
    check it themselves too (a host built outside the evaluation runner gets the same guard)."""
    return dict(framework)


def stc_settings(spec: CompressionSpec) -> dict:
    """(N, r, k) in the paper's notation; None where that half of STC is off."""
    cacher, pruner = spec.get("cacher"), spec.get("pruner")
    return {
        "stc_N_cache_interval": cacher.cache_interval if cacher else None,
        "stc_r_update_ratio": cacher.update_ratio if cacher else None,
        "stc_k_tokens_per_frame": pruner.tokens_per_frame if pruner else None,
    }


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n); one clear error otherwise."""
    try:
        index, total = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"invalid setting shard={text!r}: expected 'i/n', e.g. shard=0/4") from None
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"invalid setting shard={text!r}: need n >= 1 and 0 <= i < n")
    return index, total


def to_run_config(cfg: Any, env: Optional[typing.Mapping[str, str]] = None) -> RunConfig:
    """Composed DictConfig (or plain mapping) -> RunConfig. Called once, at the entry point.

    `env` carries RANK/WORLD_SIZE/LOCAL_RANK from torchrun/accelerate: when shard is left at "0/1"
    and WORLD_SIZE > 1, each rank evaluates shard RANK/WORLD_SIZE, and a host configured with
    device "cuda" or "auto" gets "cuda:LOCAL_RANK".
    """
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg
    framework = dict(container.get("framework") or {})
    if not framework.get("name"):
        raise ValueError("framework config needs a 'name' (e.g. framework=toy or framework=rekv)")
    check_model(framework)
    shard_index, num_shards = parse_shard(container.get("shard", "0/1"))
    env = env or {}
    if num_shards == 1 and int(env.get("WORLD_SIZE", "1")) > 1:
        shard_index, num_shards = int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
        if framework.get("device") in ("cuda", "auto") and "LOCAL_RANK" in env:  # one GPU per rank
            framework["device"] = f"cuda:{int(env['LOCAL_RANK'])}"
    compression = container.get("compression") or {}
    return RunConfig(
        framework_name=str(framework["name"]),
        framework=framework,
        benchmark=BenchmarkConfig(**container["benchmark"]),
        compression=CompressionSpec.from_mapping(compression),
        data=DataConfig(**container.get("data", {})),
        video=VideoConfig(**container.get("video", {})),
        protocol=container.get("protocol", "streaming"),
        limit=int(container.get("limit", 0)),
        shard_index=shard_index,
        num_shards=num_shards,
        output_dir=str(container.get("output_dir", "results/eval/run")),
        progress=bool(container.get("progress", True)),
        retry_failed=bool(container.get("retry_failed", True)),
        prefetch=int(container.get("prefetch", 1)),
    )


def register_schemas() -> None:
    """Register the Hydra schema (idempotent; called by the entry points, never at import)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from stc.compression import label_of

    store = ConfigStore.instance()
    store.store(name="eval_schema", node=EvalSchema)
    from stc.compression import METHODS, method_class

    for name in METHODS:  # group files pull these in (`- /method@cacher: cacher`): every field typed
        store.store(group="method", name=name, node=_mutable_mirror(method_class(name).config_class))
    if not OmegaConf.has_resolver("compression_label"):  # run names: ${compression_label:${compression}}
        OmegaConf.register_new_resolver("compression_label", lambda node: label_of(OmegaConf.to_container(node)))
