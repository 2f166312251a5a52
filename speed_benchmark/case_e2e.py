"""Case (4): end-to-end ingest through a registered host (default "rekv"): ViT + projector + pool +
pruner + pre-fill per frame, then one answer, for each compression variant and chunk size.

Variants (`e2e.variants`, `e2e.modes`, `e2e.intervals`):
    baseline               no compression
    pruner                 STC-Pruner only (k = stc.tokens_per_frame)
    cacher <mode> N=n      STC-Cacher only (r = stc.update_ratio), mode as in vit.modes
    stc <mode> N=n         STC-Cacher + STC-Pruner (the paper's setting)

Which host settings build the preset's model is declared by the host (`frameworks.speed`), so this
module never names a host. Hosts are built through `frameworks.registry.build_host`, ONE AT A TIME
(a 7B host per variant would not fit beside the others), each: warm-up passes, then `repeats` passes of
reset + ingest of the synthetic stream `chunk` frames per call (+ one timed answer). Per pass: ms per
frame from CUDA events around each `ingest` call, the host's own stage timings, the answer's latency.
With `e2e.long_frames` the answer latency after a long stream is measured too (`case_long_stream`).
"""

from __future__ import annotations

import gc
import statistics
import time
import traceback
from dataclasses import dataclass
from typing import Optional

import torch

from frameworks.common.timing import EventTimer
from frameworks.protocol import Query
from speed_benchmark import case_long_stream, flops
from speed_benchmark.case_vit import cuda_modes, is_fused, vit_shape
from speed_benchmark.records import Row, RunContext, compare
from speed_benchmark.timing import summarize

QUESTION = Query(
    prompt="Question: What is the person in the video doing after picking up the red cup?\nOptions:\n"
           "(A) Drinking from it\n(B) Washing it\n(C) Putting it on the shelf\n(D) Handing it to someone\n"
           "Only give the best option.",
    retrieval_text="What is the person in the video doing after picking up the red cup?",
    answer_prefix="Best option: (", max_new_tokens=16)


@dataclass
class Variant:
    """One compression setting of the host. kind: baseline | pruner | cacher | stc."""

    kind: str
    mode: str  # cacher mode ("eager", "graph+fused", ...); "eager" for baseline and pruner
    interval: Optional[int]
    stc: object  # stc.STCConfig
    host_mode: Optional[str] = None  # key of `e2e.host_modes` (None = the host's defaults)

    @property
    def label(self) -> str:
        label = self.kind if self.interval is None else f"{self.kind} {self.mode} N={self.interval}"
        return label if self.host_mode is None else f"{label} host={self.host_mode}"


def variants(ctx: RunContext) -> list[Variant]:
    """Every variant of `e2e.variants` (cacher kinds x runnable modes x intervals), in config order."""
    from stc import CacherConfig, PrunerConfig, STCConfig

    cfg, knobs = ctx.cfg.e2e, ctx.cfg.stc
    pruner = PrunerConfig(tokens_per_frame=knobs.tokens_per_frame, strategy=knobs.pruner_strategy)
    modes = cuda_modes(ctx, "e2e", cfg.modes)
    out = []
    for kind in cfg.variants:
        if kind in ("baseline", "pruner"):
            out.append(Variant(kind, "eager", None, STCConfig(cacher=None, pruner=pruner if kind == "pruner" else None)))
            continue
        for mode in modes:
            for n in cfg.intervals or [knobs.cache_interval]:
                cacher = CacherConfig(update_ratio=knobs.update_ratio, cache_interval=n, cuda_graph=mode.startswith("graph"),
                                      **({"fused": True} if is_fused(ctx, mode) else {}))
                out.append(Variant(kind, mode, n, STCConfig(cacher=cacher, pruner=pruner if kind == "stc" else None)))
    if cfg.host_modes:
        out = [Variant(v.kind, v.mode, v.interval, v.stc, mode) for mode in cfg.host_modes for v in out]
    return out


def host_settings(ctx: RunContext, chunk: int) -> Optional[dict]:
    """The host's own settings for this run's model (its declared `speed_config`), or None + a skip."""
    from frameworks.registry import host_factory
    from frameworks.speed import SpeedRequest, speed_config_hook

    name, preset = ctx.cfg.e2e.host, ctx.cfg.preset
    try:
        hook = speed_config_hook(host_factory(name))
    except Exception as error:  # unknown host, or its module does not import here
        ctx.skip("e2e", name, f"host {name!r} not available: {type(error).__name__}: {error}")
        return None
    if hook is None:
        ctx.skip("e2e", name, f"host {name!r} declares no speed_config (frameworks/speed.py says how)")
        return None
    request = SpeedRequest(preset.model_config, preset.vision, preset.text, ctx.cfg.model.path, str(ctx.device),
                           str(ctx.dtype).replace("torch.", ""), ctx.cfg.seed, chunk)
    try:
        settings = dict(hook(request))
    except ValueError as error:
        ctx.skip("e2e", name, f"preset {preset.name!r}: {error}")
        return None
    return {**settings, **ctx.cfg.e2e.host_config}


def frames_uint8(ctx: RunContext) -> torch.Tensor:
    """The harness's synthetic stream as a host receives video: uint8 [F, H, W, 3]."""
    from speed_benchmark.models import synthetic_frames

    video = synthetic_frames(ctx.spec, ctx.cfg.frames, "cpu", torch.float32, ctx.cfg.seed)
    return ((video * 0.5 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _pass(ctx: RunContext, host, frames: torch.Tensor, chunk: int, timer: EventTimer) -> tuple[float, Optional[float], dict]:
    """reset + ingest `chunk` frames per call (+ one answer): ms per frame, answer ms, stage timings (with
    `host_ms_per_frame`: the host's wall time inside the ingest calls. Far below the ms per frame: the GPU
    is the bottleneck. Close to it: host-bound, OR a call synchronises and the host time includes the
    wait; only the graphed ReKV+STC host is checked sync-free, by
    tests/frameworks/test_rekv_graph_cuda.py::test_steady_state_ingest_never_makes_the_host_wait_for_the_gpu)."""
    host.reset()
    host_s = 0.0
    for f in range(0, frames.shape[0], chunk):
        part = frames[f:f + chunk]
        started = time.perf_counter()
        timer.call(lambda: host.ingest(part, [float(t) for t in range(f, f + part.shape[0])]))
        host_s += time.perf_counter() - started
    answer = None
    if ctx.cfg.e2e.answer:
        question = Query(**{**QUESTION.__dict__, "max_new_tokens": ctx.cfg.e2e.max_new_tokens})
        timer.call(lambda: host.answer(question), "answer")
        answer = timer.finish("answer")[0]
    ms = timer.finish()
    return sum(ms) / frames.shape[0], answer, {**host.timings.to_dict(), "host_ms_per_frame": host_s * 1e3 / frames.shape[0]}


def _measure(ctx: RunContext, host, v: Variant, chunk: int, frames: torch.Tensor) -> Row:
    timer, cfg = EventTimer(ctx.device), ctx.cfg
    samples, answers, timings = [], [], []
    with torch.no_grad():
        for _ in range(max(1, cfg.warmup)):
            _pass(ctx, host, frames, chunk, timer)
        for _ in range(cfg.e2e.repeats or cfg.repeats):
            ms, answer, stages = _pass(ctx, host, frames, chunk, timer)
            samples.append(ms)
            timings.append(stages)
            if answer is not None:
                answers.append(answer)
    params = {"frames": cfg.frames, "frames_per_chunk": chunk}
    if v.kind in ("pruner", "stc"):
        params["k"] = cfg.stc.tokens_per_frame
    if v.interval is not None:
        params.update(N=v.interval, r=cfg.stc.update_ratio, fused=is_fused(ctx, v.mode))
    if v.host_mode is not None:
        params["host_mode"] = v.host_mode
    extra = {"host_timings": timings, "answer_ms": summarize(answers).to_dict() if answers else None,
             "answer_samples_ms": answers}
    return Row("e2e", f"{v.label} {cfg.e2e.host} c={chunk}", "baseline" if v.kind == "baseline" else "stc",
               v.mode.split("+")[0], params, "ms/frame", samples, extra=extra).finalize()


def _run_variant(ctx: RunContext, settings: dict, v: Variant, chunk: int, frames: torch.Tensor, long: bool) -> list[Row]:
    """Build, measure, (long stream,) close one host. A failure (OOM, capture error ...) is recorded for
    this variant only: the other variants still run."""
    from frameworks.registry import build_host

    label = f"{v.label} c={chunk}"
    if v.host_mode is not None:
        settings = {**settings, **ctx.cfg.e2e.host_modes[v.host_mode]}
    try:
        host = build_host(ctx.cfg.e2e.host, settings, v.stc)
    except Exception as error:  # noqa: BLE001 - reported in the table
        ctx.skip("e2e", label, f"host {ctx.cfg.e2e.host!r} not built: {type(error).__name__}: {error}")
        return []
    rows = []
    try:
        rows.append(_measure(ctx, host, v, chunk, frames))
        if long:
            rows += case_long_stream.run(ctx, host, v.label, rows[0])
    except Exception as error:  # noqa: BLE001 - reported in results.json/table.md and on stderr
        traceback.print_exc()
        ctx.skip("e2e", label, f"FAILED: {type(error).__name__}: {error}")
        ctx.failures.append(f"e2e {label}")
    finally:  # free this host (weights, pinned KV pages, graph pools) before the next one is built
        if hasattr(host, "close"):
            host.close()
        del host
        gc.collect()
        if ctx.cuda:
            torch.cuda.empty_cache()
    return rows


def run(ctx: RunContext, progress) -> list[Row]:
    rows, frames = [], frames_uint8(ctx)
    todo = variants(ctx)
    modes = list(ctx.cfg.e2e.host_modes)
    last_mode = modes[-1] if modes else None  # the long stream runs the last host mode
    long_labels = {next((v.label for v in todo if v.kind == kind and v.host_mode == last_mode), None)
                   for kind in ctx.cfg.e2e.long_variants}
    for i, chunk in enumerate(dict.fromkeys(min(c, ctx.cfg.frames) for c in ctx.cfg.e2e.frames_per_chunk)):
        settings = host_settings(ctx, chunk)
        if settings is not None:
            chunk_rows = []
            for v in todo:
                long = ctx.cfg.e2e.long_frames > 0 and i == 0 and v.label in long_labels
                chunk_rows += _run_variant(ctx, settings, v, chunk, frames, long)
            _compare(ctx, [r for r in chunk_rows if r.case == "e2e"], todo)
            rows += chunk_rows
        progress.update(1)
    return rows


def _compare(ctx: RunContext, rows: list[Row], todo: list[Variant]) -> None:
    """Each compressed row against the chunk's baseline, with the Amdahl theory of its own components."""
    base = next((r for r in rows if r.method == "baseline"), None)
    if base is None:
        return
    graph_base = next((r for r in rows if r.method == "baseline" and r.params.get("host_mode") == "graph"), None)
    knobs, chunk = ctx.cfg.stc, base.params["frames_per_chunk"]
    init = int(base.extra["host_timings"][-1].get("extra", {}).get("init_tokens", 0))
    pre_frac = flops.prefill_fraction(flops.llm_shape_from_config(ctx.spec.text_config), ctx.cfg.frames,
                                      ctx.cfg.preset.llm_tokens_per_frame, knobs.tokens_per_frame, chunk, init)
    for row in rows:
        if row is base:
            continue
        kind = row.name.split()[0]
        vit = flops.vit_stream_fraction(vit_shape(ctx), row.params["N"], knobs.update_ratio, ctx.cfg.frames) \
            if "N" in row.params else 1.0
        pre = pre_frac if kind in ("pruner", "stc") else 1.0
        compare(row, base, amdahl_theory(base.extra["host_timings"], base.samples, vit, pre))
        row.extra.update(vit_theory_fraction=vit, prefill_theory_fraction=pre)
        if graph_base is not None:
            row.extra["fraction_vs_graph_baseline"] = row.stats["median"] / graph_base.stats["median"]


def amdahl_theory(base_timings: list[dict], base_ms_per_frame: list[float], vit_frac: float, pre_frac: float):
    """Whole-ingest theory from the BASELINE's own stage split: ViT scaled by F(N, r), pre-fill by its
    FLOP ratio, everything else (projector, pooling, bookkeeping) unchanged. None if unknown."""
    if not base_timings or not base_timings[0].get("frames"):
        return None
    vit = statistics.median(t["vit_ms"] / t["frames"] for t in base_timings)
    pre = statistics.median(t["prefill_ms"] / t["frames"] for t in base_timings)
    total = statistics.median(base_ms_per_frame)
    rest = max(0.0, total - vit - pre)
    return (vit * vit_frac + pre * pre_frac + rest) / total if total > 0 else None
