"""Per-frame latency of the SigLIP-so400m tower (26 layers @384, random weights), full vs STC-Cacher.

    python tests/gpu/cacher_latency.py --out DIR [--frames 32 --repeats 20 --dtype bfloat16]

One frame per call, as streaming does. For each setting the stream of F frames is replayed `repeats`
times (after warm-up); each call is timed with CUDA events. Reported: median reference-frame and
selective-frame times, and the mean per-frame time over the stream (median over repeats), beside the
FLOP model F(N, r). Writes cacher_latency.json and cacher_latency.md to --out.
This is the issue-2 GPU table; the full harness (`python -m speed_benchmark`) measures more cases.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from stc import CacherConfig, attach_cacher, cacher_flop_fraction, selective_fraction


def build_tower(dtype, layers=26):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=layers, num_attention_heads=16,
                                image_size=384, patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    config._attn_implementation = "sdpa"
    return SiglipVisionModel(config).eval().to("cuda", dtype)


def drifting_stream(count, dtype, drift=0.03):
    g = torch.Generator(device="cuda").manual_seed(0)
    frames = [torch.randn(1, 3, 384, 384, device="cuda", generator=g)]
    for _ in range(count - 1):
        frames.append(frames[-1] + drift * torch.randn(1, 3, 384, 384, device="cuda", generator=g))
    return torch.cat(frames).to(dtype)


def time_calls(fn, frames, repeats, reset):
    """Per-call CUDA-event times [repeats][F] in ms."""
    out = []
    for _ in range(repeats):
        reset()
        starts = [torch.cuda.Event(enable_timing=True) for _ in frames]
        ends = [torch.cuda.Event(enable_timing=True) for _ in frames]
        for i, frame in enumerate(frames):
            starts[i].record()
            fn(frame)
            ends[i].record()
        torch.cuda.synchronize()
        out.append([s.elapsed_time(e) for s, e in zip(starts, ends)])
    return out


def graphed_full(model, example):
    static = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model(pixel_values=static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = model(pixel_values=static)

    def run(frame):
        static.copy_(frame)
        graph.replay()
        return output.last_hidden_state

    return run


def summarise(name, times, reference_mask, theory=None):
    per_frame = [statistics.fmean(rep) for rep in times]
    ref = [t for rep in times for t, r in zip(rep, reference_mask) if r]
    sel = [t for rep in times for t, r in zip(rep, reference_mask) if not r]
    return {
        "setting": name,
        "per_frame_ms_median": statistics.median(per_frame),
        "per_frame_ms_min": min(per_frame),
        "reference_frame_ms": statistics.median(ref) if ref else None,
        "selective_frame_ms": statistics.median(sel) if sel else None,
        "flop_fraction": theory,
    }


def profile_selective(model, frames, args, out):
    """Kernel-level CUDA time of eager selective frames (graphs hide kernels from the profiler)."""
    from torch.profiler import ProfilerActivity, profile

    handle = attach_cacher(model, CacherConfig(update_ratio=args.ratio, cache_interval=len(frames)))
    model(pixel_values=frames[0])
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for frame in frames[1:9]:
            model(pixel_values=frame)
        torch.cuda.synchronize()
    handle.detach()
    with profile(activities=[ProfilerActivity.CUDA]) as full:
        for frame in frames[1:9]:
            model(pixel_values=frame)
        torch.cuda.synchronize()
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_selective.txt").write_text(
        "8 eager selective frames\n" + prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
        + "\n\n8 eager full frames\n" + full.key_averages().table(sort_by="cuda_time_total", row_limit=20)
    )


@torch.inference_mode()
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--profile", action="store_true", help="also write a kernel table of eager selective frames")
    parser.add_argument("--autotune", action="store_true", help="let Inductor autotune GEMMs of the fused layers")
    parser.add_argument("--only-fused", action="store_true")
    args = parser.parse_args()
    if args.autotune:
        import torch._inductor.config as inductor_config

        inductor_config.max_autotune = True
    dtype = getattr(torch, args.dtype)
    model = build_tower(dtype)
    frames = list(drifting_stream(args.frames, dtype).split(1))
    rows = []
    full_mask = [True] * len(frames)
    eager_full = lambda f: model(pixel_values=f)  # noqa: E731
    time_calls(eager_full, frames, 2, lambda: None)
    rows.append(summarise("full, eager", time_calls(eager_full, frames, args.repeats, lambda: None), full_mask, 1.0))
    graph_full = graphed_full(model, frames[0])
    time_calls(graph_full, frames, 2, lambda: None)
    rows.append(summarise("full, CUDA graph", time_calls(graph_full, frames, args.repeats, lambda: None), full_mask, 1.0))
    for interval in (2, 4):
        variants = ((True, True),) if args.only_fused else ((False, False), (True, False), (False, True), (True, True))
        for graph, fused in variants:
            config = CacherConfig(update_ratio=args.ratio, cache_interval=interval, cuda_graph=graph, fused=fused)
            handle = attach_cacher(model, config)
            mask = [i % interval == 0 for i in range(len(frames))]
            call = lambda f: model(pixel_values=f)  # noqa: E731
            time_calls(call, frames, 2, handle.stream.reset)
            times = time_calls(call, frames, args.repeats, handle.stream.reset)
            assert handle.stream.stats.selective_frames == len(frames) - sum(mask)
            theory = cacher_flop_fraction(interval, args.ratio, 1152, 4304, 729)
            label = ("CUDA graph" if graph else "eager") + (" + fused" if fused else "")
            row = summarise(f"STC N={interval} r={args.ratio}, {label}", times, mask, theory)
            row["graph_replays"] = handle.graph_runner.replays if handle.graph_runner else 0
            rows.append(row)
            handle.detach()
    if args.profile:
        profile_selective(model, frames, args, Path(args.out))
    graph_base = rows[1]["per_frame_ms_median"]
    eager_base = rows[0]["per_frame_ms_median"]
    for row in rows:
        row["vs_graphed_full"] = row["per_frame_ms_median"] / graph_base
        row["vs_eager_full"] = row["per_frame_ms_median"] / eager_base
    env = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "dtype": args.dtype,
        "frames": args.frames,
        "repeats": args.repeats,
        "f_sel": selective_fraction(args.ratio, 1152, 4304, 729),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env["autotune"] = args.autotune
    stem = "cacher_latency_autotune" if args.autotune else "cacher_latency"
    (out / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    lines = [
        f"SigLIP-so400m 26 layers @384, random weights, {args.dtype}, sdpa, one frame per call, {args.frames}-frame stream, "
        f"median of {args.repeats} repeats. GPU: {env['gpu']}; torch {env['torch']}; transformers {env['transformers']}.",
        "",
        "| setting | ms/frame (median) | ref frame ms | selective frame ms | × graphed full | × eager full | FLOP fraction F(N,r) |",
        "|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['setting']} | {fmt(r['per_frame_ms_median'])} | {fmt(r['reference_frame_ms'])} | {fmt(r['selective_frame_ms'])} "
            f"| {r['vs_graphed_full']:.3f} | {r['vs_eager_full']:.3f} | {fmt(r['flop_fraction'])} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
