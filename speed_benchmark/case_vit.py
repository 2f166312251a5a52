"""Case (1): ViT encode of one stream, one frame per call (as streaming does), baseline vs STC.

Variants, timed interleaved (every repeat runs each variant once, so clock drift hits all equally):
    baseline eager         unpatched tower, B=1
    baseline graph         the unpatched tower captured once at B=1 (plain torch.cuda.CUDAGraph); CUDA only
    stc eager N=n          a copy of the tower with STC-Cacher (update_ratio r, cache_interval n)
    stc graph N=n          same with CacherConfig(cuda_graph=True): selective frames replayed from a graph
    stc eager+fused N=n    CacherConfig(fused=True): compiled selective layers (CUDA only), also graph+fused
`vit.modes` picks the STC modes; each base mode (eager, graph) they use also gets its baseline row.
`vit.frames_per_call` sweeps how many consecutive frames one call carries (default [1]); rows of c > 1
are named "... c=<c>", their baseline is the dense tower on the same c-frame batches, and their
reference/selective split is not reported (a call mixes both kinds).

Each STC variant owns its own deep copy of the tower (same weights), because a tower holds one patch.
Reported per variant: per-frame mean over the stream (one sample per repeat), and the per-frame times
of reference and selective frames separately (pooled over repeats).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from frameworks.common.timing import EventTimer
from speed_benchmark import flops
from speed_benchmark.models import PlainGraph, synthetic_frames, vision_call
from speed_benchmark.records import Row, RunContext, compare
from speed_benchmark.timing import peak_memory_mb, reset_peak_memory, summarize


@dataclass
class Variant:
    """A callable tower plus the STC handle it reads counters from (None for the baseline)."""

    name: str
    method: str
    mode: str  # base mode, "eager" or "graph": which baseline row this variant is compared with
    interval: Optional[int]
    fn: Callable[[torch.Tensor], Any]
    handle: Any = None
    fused: bool = False
    chunk: int = 1  # frames per call


def vit_shape(ctx: RunContext) -> flops.ViTShape:
    return flops.vit_shape_from_config(ctx.spec.vision_config, ctx.spec.vit_tokens)


def stc_handle(ctx: RunContext, mode: str, interval: int):
    """The (cached) STC tower copy + handle for (mode, N); mode is one of config.CACHER_MODES.
    Raises RuntimeError with the cause."""
    key = ("stc", mode, interval)
    if key not in ctx.shared:
        try:
            from stc import CacherConfig, attach_cacher
        except ImportError as error:
            raise RuntimeError(f"stc.attach_cacher is not importable: {error}") from error

        try:
            cfg = CacherConfig(update_ratio=ctx.cfg.stc.update_ratio, cache_interval=interval,
                               cuda_graph=mode.startswith("graph"), **({"fused": True} if is_fused(ctx, mode) else {}))
            ctx.shared[key] = attach_cacher(copy.deepcopy(ctx.shared["base_tower"]), cfg)
        except (ValueError, TypeError) as error:
            raise RuntimeError(f"STC-Cacher cannot attach to this tower: {error}") from error
    return ctx.shared[key]


def is_fused(ctx: RunContext, mode: str) -> bool:
    """Fused selective layers in this mode: a "+fused" mode, or stc.fused for every mode."""
    return ctx.cfg.stc.fused or mode.endswith("+fused")


def cuda_modes(ctx: RunContext, case: str, modes: list[str]) -> list[str]:
    """`modes` runnable here: on CPU graph and fused modes are skipped, with the reason recorded."""
    if ctx.cuda:
        return list(modes)
    for mode in (m for m in modes if m != "eager"):
        ctx.skip(case, mode, "CUDA graphs and fused layers need a CUDA device (this is a CPU run)")
    return [m for m in modes if m == "eager"]


def baseline_graph(ctx: RunContext, batch: int):
    """The plain CUDA graph of the unpatched tower at `batch` (cached per batch)."""
    key = ("base_graph", batch)
    if key not in ctx.shared:
        fn = vision_call(ctx.shared["base_tower"], ctx.spec, ctx.device)
        example = synthetic_frames(ctx.spec, batch, ctx.device, ctx.dtype, seed=1)
        with torch.no_grad():
            ctx.shared[key] = PlainGraph(fn, example)
    return ctx.shared[key]


def _variants(ctx: RunContext) -> list[Variant]:
    cfg, out = ctx.cfg, []
    base_fn = vision_call(ctx.shared["base_tower"], ctx.spec, ctx.device)
    modes = cuda_modes(ctx, "vit", cfg.vit.modes)
    intervals = sorted(set(cfg.vit.intervals) | {cfg.stc.cache_interval})
    for chunk in dict.fromkeys(min(c, cfg.frames) for c in cfg.vit.frames_per_call):
        tag = "" if chunk == 1 else f" c={chunk}"
        for mode in [m for m in ("eager", "graph") if any(x.split("+")[0] == m for x in modes)]:
            try:
                fn = base_fn if mode == "eager" else _graphed_baseline(ctx, chunk, cfg.frames)
            except Exception as error:  # capture failures are reported, never fatal
                ctx.skip("vit", f"baseline {mode}{tag}", f"capture failed: {error!r}")
                continue
            out.append(Variant(f"baseline {mode}{tag}", "baseline", mode, None, fn, chunk=chunk))
        for mode in modes:
            for n in intervals:
                try:
                    handle = stc_handle(ctx, mode, n)
                except RuntimeError as error:
                    ctx.skip("vit", f"stc {mode} N={n}{tag}", str(error))
                    continue
                out.append(Variant(f"stc {mode} N={n}{tag}", "stc", mode.split("+")[0], n,
                                   vision_call(handle.model, ctx.spec, ctx.device), handle, is_fused(ctx, mode), chunk))
    return out


def _graphed_baseline(ctx: RunContext, chunk: int, frames: int):
    """The plain graph at `chunk` frames (and at the shorter last call when chunk does not divide F)."""
    graphs = {size: baseline_graph(ctx, size) for size in {chunk, frames % chunk or chunk}}
    return lambda pixels: graphs[pixels.shape[0]](pixels)


def _run_stream(variant: Variant, frames: torch.Tensor, rec: EventTimer) -> tuple[list[float], list]:
    """One pass over the stream, `variant.chunk` frames per call; returns per-frame ms (a call's time
    split evenly over its frames) and whether each frame was a reference (None for chunked calls)."""
    if variant.handle is not None:
        variant.handle.stream.reset()
    kinds, sizes = [], []
    for f in range(0, frames.shape[0], variant.chunk):
        part = frames[f:f + variant.chunk]
        rec.call(lambda: variant.fn(part))
        sizes.append(part.shape[0])
        stats = variant.handle.stream.stats if variant.handle is not None else None
        kind = True if stats is None else bool(stats.last_frame_reference)
        kinds += [kind if variant.chunk == 1 else None] * part.shape[0]
    return [ms / n for ms, n in zip(rec.finish(), sizes) for _ in range(n)], kinds


def run(ctx: RunContext, progress) -> list[Row]:
    """Time every variant over `repeats` interleaved passes of an F-frame stream."""
    cfg = ctx.cfg
    frames = synthetic_frames(ctx.spec, cfg.frames, ctx.device, ctx.dtype, cfg.seed)
    variants = _variants(ctx)
    rec = EventTimer(ctx.device)
    per_frame = {v.name: [] for v in variants}
    kinds: dict[str, list[bool]] = {}
    with torch.no_grad():
        for v in variants:
            for _ in range(max(1, cfg.warmup)):
                _run_stream(v, frames, rec)
        reset_peak_memory(ctx.device)
        for _ in range(cfg.repeats):
            for v in variants:
                ms, kinds[v.name] = _run_stream(v, frames, rec)
                per_frame[v.name].append(ms)
            progress.update(1)
    peak = peak_memory_mb(ctx.device)
    rows = [_row(ctx, v, per_frame[v.name], kinds[v.name], peak) for v in variants]
    _compare_rows(ctx, rows)
    if cfg.profile:
        from pathlib import Path

        from speed_benchmark.profile import profile_variants

        summary = profile_variants(variants, frames, ctx.device, Path(cfg.out_dir) / "profile",
                                   lambda v: _run_stream(v, frames, rec))
        for row in rows:
            row.extra["profile"] = summary.get(row.name)
    return rows


def _row(ctx: RunContext, v: Variant, per_frame: list[list[float]], kinds: list[bool], peak) -> Row:
    ref = [ms for rep in per_frame for ms, k in zip(rep, kinds) if k]
    sel = [ms for rep in per_frame for ms, k in zip(rep, kinds) if k is False]
    extra = {"per_frame_ms": per_frame, "frame_is_reference": kinds, "peak_memory_mb": peak,
             "reference_ms": summarize(ref).to_dict() if ref else None,
             "selective_ms": summarize(sel).to_dict() if sel else None}
    if v.handle is not None:
        s = v.handle.stream.stats
        extra["cacher"] = {"reference_frames": s.reference_frames, "selective_frames": s.selective_frames,
                           "tokens_per_frame": s.tokens_per_frame, "tokens_recomputed": s.tokens_recomputed,
                           "graph_replays": getattr(v.handle.graph_runner, "replays", None),
                           "graph_captures": getattr(v.handle.graph_runner, "captures", None)}
    params = {"frames": ctx.cfg.frames, "tokens": ctx.spec.vit_tokens, "frames_per_call": v.chunk}
    if v.method == "stc":
        params.update(N=v.interval, r=ctx.cfg.stc.update_ratio, fused=v.fused)
    samples = [sum(rep) / len(rep) for rep in per_frame]
    return Row("vit", v.name, v.method, v.mode, params, "ms/frame", samples, extra=extra).finalize()


def _compare_rows(ctx: RunContext, rows: list[Row]) -> None:
    shape = vit_shape(ctx)
    for row in rows:  # against the dense tower at the same frames per call
        base = {r.mode: r for r in rows if r.method == "baseline"
                and r.params["frames_per_call"] == row.params["frames_per_call"]}
        for mode, dense in base.items():  # every row also against each dense tower (eager: the second target)
            row.extra[f"fraction_vs_{mode}_baseline"] = row.stats["median"] / dense.stats["median"]
        ref = base.get(row.mode) or base.get("eager")
        if row.method != "stc" or ref is None:
            continue
        theory = flops.vit_stream_fraction(shape, row.params["N"], row.params["r"], ctx.cfg.frames)
        compare(row, ref, theory)
