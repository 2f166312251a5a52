"""Case (2): S concurrent streams batched, one frame from each stream per call; frames/s.

Baseline: the unpatched tower on a [S, 3, H, W] batch (eager, and a plain CUDA graph per S on CUDA).
STC: the N = stc.cache_interval tower copies from case (1) with S fresh streams routed by
`handle.use([s1..sS])`. In lockstep (phase 0 for all) every N-th call is a reference call for all S
streams; with `multistream.stagger` the streams get refresh phases 0..S-1 (mod N), so every call holds
about S/N reference rows (flat per-call cost: compare `call_ms_p90_steady`, the p90 without each pass's
first call, in which every stream refreshes whatever its phase, with `call_ms_median`).
One sample per repeat = S·frames / time of the `frames` calls. `multistream.fused` adds STC rows in
mode "graph+fused" (CacherConfig fused=True and cuda_graph=True), compared with the graphed baseline.
"""

from __future__ import annotations

import torch

from frameworks.common.timing import EventTimer
from speed_benchmark import flops
from speed_benchmark.case_vit import baseline_graph, cuda_modes, stc_handle, vit_shape
from speed_benchmark.models import synthetic_frames, vision_call
from speed_benchmark.records import Row, RunContext, compare
from speed_benchmark.timing import summarize


def _videos(ctx: RunContext, streams: int, frames: int) -> torch.Tensor:
    """[frames, S, 3, H, W]: S different synthetic videos, indexed by time first."""
    vids = [synthetic_frames(ctx.spec, frames, ctx.device, ctx.dtype, seed=ctx.cfg.seed + 100 + s)
            for s in range(streams)]
    return torch.stack(vids, dim=1)


def _modes(ctx: RunContext) -> list[str]:
    wanted = ["eager"] + ["graph"] * ctx.cfg.multistream.graph + ["graph+fused"] * ctx.cfg.multistream.fused
    return cuda_modes(ctx, "multistream", wanted)


def _callables(ctx: RunContext, streams: int, mode: str) -> list[tuple[str, str, object, list]]:
    """(name, method, fn, stc_streams) for the baseline and the STC variant of this mode."""
    out = []
    n = ctx.cfg.stc.cache_interval
    try:
        if "+" not in mode:  # a "+fused" mode is compared with its base mode's baseline row
            base = (vision_call(ctx.shared["base_tower"], ctx.spec, ctx.device) if mode == "eager"
                    else baseline_graph(ctx, streams))
            out.append((f"baseline {mode} S={streams}", "baseline", base, []))
    except Exception as error:
        ctx.skip("multistream", f"baseline {mode} S={streams}", f"capture failed: {error!r}")
    try:
        handle = stc_handle(ctx, mode, n)
    except RuntimeError as error:
        ctx.skip("multistream", f"stc {mode} S={streams}", str(error))
        return out
    call = vision_call(handle.model, ctx.spec, ctx.device)
    for stagger in sorted({False, bool(ctx.cfg.multistream.stagger)}):
        states = [handle.new_stream(phase=i if stagger else 0) for i in range(streams)]

        def fn(pixels, handle=handle, states=states, call=call):
            with handle.use(states):
                return call(pixels)

        out.append((f"stc {mode} N={n} S={streams}" + (" staggered" if stagger else ""), "stc", fn, states))
    return out


def _pass(fn, states, video: torch.Tensor, rec: EventTimer) -> tuple[float, list[float]]:
    """(frames/s, per-call ms) of one pass over the video."""
    for s in states:
        s.reset()
    for t in range(video.shape[0]):
        rec.call(lambda: fn(video[t]))
    ms = rec.finish()
    return video.shape[0] * video.shape[1] / (sum(ms) / 1e3), ms


def run(ctx: RunContext, progress) -> list[Row]:
    cfg, rows = ctx.cfg, []
    rec = EventTimer(ctx.device)
    shape = vit_shape(ctx)
    n, r, frames = cfg.stc.cache_interval, cfg.stc.update_ratio, cfg.multistream.frames
    for streams in cfg.multistream.streams:
        video = _videos(ctx, streams, frames)
        for mode in _modes(ctx):
            variants = _callables(ctx, streams, mode)
            samples = {name: [] for name, *_ in variants}
            calls = {name: [] for name, *_ in variants}
            steady = {name: [] for name, *_ in variants}  # without each pass's first (all-reference) call
            with torch.no_grad():
                for name, _, fn, states in variants:
                    for _ in range(max(1, cfg.warmup)):
                        _pass(fn, states, video, rec)
                for _ in range(cfg.repeats):
                    for name, _, fn, states in variants:
                        fps, ms = _pass(fn, states, video, rec)
                        samples[name].append(fps)
                        calls[name] += ms
                        steady[name] += ms[1:]
            case_rows = []
            for name, method, _, states in variants:
                params = {"S": streams, "frames": frames}
                if method == "stc":
                    params.update(N=n, r=r, stagger=name.endswith("staggered"))
                row = Row("multistream", name, method, mode, params, "frames/s", samples[name],
                          higher_is_better=True)
                if states:
                    row.extra["cacher"] = {"reference_frames": sum(s.stats.reference_frames for s in states),
                                           "selective_frames": sum(s.stats.selective_frames for s in states)}
                if calls[name]:
                    per_call = summarize(calls[name])
                    row.extra.update(call_ms_median=per_call.median, call_ms_p90=per_call.p90)
                    if steady[name]:
                        row.extra["call_ms_p90_steady"] = summarize(steady[name]).p90
                case_rows.append(row.finalize())
            base = next((row for row in case_rows + rows if row.method == "baseline" and row.params["S"] == streams
                         and row.mode == mode.split("+")[0]), None)
            for row in case_rows:
                if base is not None and row.method == "stc":
                    compare(row, base, flops.vit_stream_fraction(shape, n, r, frames))
            rows += case_rows
        progress.update(1)
    return rows
