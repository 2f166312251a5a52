"""Case (4): end-to-end ingest per frame through a registered host (default "rekv"): ViT + projector +
pool + pruner + pre-fill, baseline (no STC) vs STC (cacher N, r + pruner k).

The host is built twice through `frameworks.registry.build_host(name, host_config, stc)`; each repeat
does `host.reset()` then ingests the synthetic stream one frame per call. Besides the per-frame wall
time, the host's own `timings` (ViT / pruner / pre-fill ms, frames, tokens kept, reference/selective
frames) are recorded. If the host cannot be imported or built, the case is skipped with the reason.
"""

from __future__ import annotations

import torch

from frameworks.common.timing import EventTimer
from speed_benchmark import flops
from speed_benchmark.case_vit import vit_shape
from speed_benchmark.records import Row, RunContext, compare


def _stc_configs(ctx: RunContext):
    from stc import CacherConfig, PrunerConfig, STCConfig

    knobs = ctx.cfg.stc
    pruner = PrunerConfig(tokens_per_frame=knobs.tokens_per_frame, strategy=knobs.pruner_strategy)
    extra = {"fused": True} if knobs.fused else {}
    modes = ["eager"] + (["graph"] if ctx.cuda and ctx.cfg.e2e.cuda_graph else [])
    configs = {"baseline": STCConfig(cacher=None, pruner=None)}
    for mode in modes:
        cacher = CacherConfig(update_ratio=knobs.update_ratio, cache_interval=knobs.cache_interval,
                              cuda_graph=mode == "graph", **extra)
        configs[f"stc {mode}"] = STCConfig(cacher=cacher, pruner=pruner)
    return configs


# LLaVA-OV size presets the ReKV host knows (frameworks/common/model_sizes.py names -> ReKV `preset`)
_REKV_SIZES = {"llava_ov_7b": "7b", "llava_ov_0_5b": "0.5b", "llava_ov_tiny": "tiny"}


def _hosts(ctx: RunContext, chunk: int):
    """{"baseline": host, "stc": host} for this chunk size, or None (skip recorded) if unavailable."""
    cfg = ctx.cfg.e2e
    size = _REKV_SIZES.get(ctx.cfg.preset.model_config)
    if cfg.host == "rekv" and size is None and not ctx.cfg.model.path:
        ctx.skip("e2e", cfg.host, f"the ReKV host runs LLaVA-OneVision; preset {ctx.cfg.preset.name!r} is not one")
        return None
    host_config = {"device": str(ctx.device), "dtype": str(ctx.dtype).replace("torch.", ""),
                   "model_path": ctx.cfg.model.path, "preset": size, "frames_per_chunk": chunk,
                   "seed": ctx.cfg.seed}
    host_config.update(cfg.host_config)
    try:
        from frameworks.registry import build_host

        return {name: build_host(cfg.host, host_config, stc) for name, stc in _stc_configs(ctx).items()}
    except Exception as error:  # the host is optional for this harness: say why and go on
        ctx.skip("e2e", f"{cfg.host} c={chunk}", f"host {cfg.host!r} not available: {type(error).__name__}: {error}")
        return None


def _frames_uint8(ctx: RunContext) -> torch.Tensor:
    from speed_benchmark.models import synthetic_frames

    video = synthetic_frames(ctx.spec, ctx.cfg.frames, "cpu", torch.float32, ctx.cfg.seed)
    return ((video * 0.5 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _pass(host, frames: torch.Tensor, chunk: int, rec: EventTimer) -> tuple[float, dict]:
    """Ingest the stream `chunk` frames per call; returns ms per frame and the host's stage timings."""
    host.reset()
    for f in range(0, frames.shape[0], chunk):
        part = frames[f:f + chunk]
        rec.call(lambda: host.ingest(part, [float(t) for t in range(f, f + part.shape[0])]))
    ms = rec.finish()
    return sum(ms) / frames.shape[0], host.timings.to_dict()


def _close(hosts: dict) -> None:
    for host in hosts.values():
        if hasattr(host, "close"):
            host.close()


def run(ctx: RunContext, progress) -> list[Row]:
    rows = []
    for chunk in ctx.cfg.e2e.frames_per_chunk:
        hosts = _hosts(ctx, min(chunk, ctx.cfg.frames))
        if hosts is not None:
            try:
                rows += _run_chunk(ctx, hosts, min(chunk, ctx.cfg.frames))
            finally:
                _close(hosts)
                del hosts
        progress.update(1)
    return rows


def _run_chunk(ctx: RunContext, hosts: dict, chunk: int) -> list[Row]:
    frames, rec = _frames_uint8(ctx), EventTimer(ctx.device)
    samples = {name: [] for name in hosts}
    timings: dict[str, list] = {name: [] for name in hosts}
    with torch.no_grad():
        for host in hosts.values():
            for _ in range(max(1, ctx.cfg.warmup)):
                _pass(host, frames, chunk, rec)
        for _ in range(ctx.cfg.repeats):
            for name, host in hosts.items():
                ms, t = _pass(host, frames, chunk, rec)
                samples[name].append(ms)
                timings[name].append(t)
    knobs, host = ctx.cfg.stc, ctx.cfg.e2e.host
    common = {"frames": ctx.cfg.frames, "frames_per_chunk": chunk}
    base = Row("e2e", f"baseline {host} c={chunk}", "baseline", "eager", common, "ms/frame",
               samples["baseline"], extra={"host_timings": timings["baseline"]}).finalize()
    vit_frac = flops.vit_stream_fraction(vit_shape(ctx), knobs.cache_interval, knobs.update_ratio, ctx.cfg.frames)
    pre_frac = flops.prefill_fraction(flops.llm_shape_from_config(ctx.spec.text_config), ctx.cfg.frames,
                                      ctx.cfg.preset.llm_tokens_per_frame, knobs.tokens_per_frame, chunk,
                                      int(timings["baseline"][-1].get("extra", {}).get("init_tokens", 0)))
    theory = amdahl_theory(timings["baseline"], samples["baseline"], vit_frac, pre_frac)
    rows = [base]
    for name in (n for n in hosts if n != "baseline"):
        row = Row("e2e", f"{name} {host} c={chunk}", "stc", name.split()[1],
                  dict(common, N=knobs.cache_interval, r=knobs.update_ratio, k=knobs.tokens_per_frame),
                  "ms/frame", samples[name], extra={"host_timings": timings[name]}).finalize()
        compare(row, base, theory)
        row.extra.update(vit_theory_fraction=vit_frac, prefill_theory_fraction=pre_frac)
        rows.append(row)
    return rows


def amdahl_theory(base_timings: list[dict], base_ms_per_frame: list[float], vit_frac: float, pre_frac: float):
    """Whole-ingest theory from the BASELINE's own stage split: ViT scaled by F(N, r), pre-fill by its
    FLOP ratio, everything else (decode, projector, pooling, bookkeeping) unchanged. None if unknown."""
    import statistics

    if not base_timings or not base_timings[0].get("frames"):
        return None
    vit = statistics.median(t["vit_ms"] / t["frames"] for t in base_timings)
    pre = statistics.median(t["prefill_ms"] / t["frames"] for t in base_timings)
    total = statistics.median(base_ms_per_frame)
    rest = max(0.0, total - vit - pre)
    return (vit * vit_frac + pre * pre_frac + rest) / total if total > 0 else None
