#!/usr/bin/env python
"""LiveCC per-second turn latency at the released size (random weights), baseline vs STC, on one GPU.

    python scripts/gpu/livecc_speed.py --out results/speed/livecc          # H200: about 2 minutes
    python scripts/gpu/livecc_speed.py --out /tmp/x --preset tiny --device cpu --dtype float32 \
        --height 70 --width 100 --min-pixels 784 --max-pixels 10000 --groups 4 --cache-interval 2 \
        --tokens-per-group 3 --history-seconds 4 --turns 2 --commentary-tokens 3      # CPU smoke run

Why random weights: the work (shapes, kernels) does not depend on weight values; no checkpoint can be
brought to the GPU machine. The model is stock `Qwen2VLForConditionalGeneration` at Qwen2-VL-7B size
(frameworks/common/model_sizes.qwen2_vl_config("7b")), driven by the LiveCC host (frameworks/livecc).
Frames are 480x854 (16:9) with a slow drift, resized by smart_resize to the demo budget 384*28*28
(392x728 -> 1456 patches, 364 LLM tokens per 2-frame group).

Measured (torch.cuda.Event around each call, one synchronisation per call, medians / means over calls):
  vit      one 2-frame group per call (one per-second turn):
           livecc_eager   `visual(pixel_values, grid_thw=<cuda grid>)` as transformers/LiveCC call it
           eager          the host's sync-free call (precomputed cu_seqlens / rotary positions)
           graphed        the plain ViT replayed from a torch.cuda.CUDAGraph (sync-free call captured)
           stc_eager / stc_graphed   STC-Cacher N=cache_interval r=update_ratio on the 32 blocks, attached
                          through the host seam; mean over whole N-group cycles (1 reference + N-1 selective)
  prefill  LLM pre-fill of one 1-s turn (text + video tokens) after `history_seconds` of streamed turns,
           without and with STC-Pruner (k tokens per group; the history is pruned too); pruner time apart
  turn     end to end per-second turn on real frames: ViT + pruner + pre-fill + first token (time to first
           commentary token) and + greedy commentary of `commentary_tokens` tokens (the whole turn),
           baseline (eager ViT, no pruner) vs STC (graphed cacher + pruner)
Writes livecc_speed.json and livecc_speed.md under --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from frameworks.common.compression import HostCompression  # noqa: E402
from frameworks.common.cuda_graphs import capture  # noqa: E402
from frameworks.common.model_sizes import qwen2_vl_config  # noqa: E402
from frameworks.livecc import LiveCCConfig, LiveCCHost, build_random_livecc  # noqa: E402
from frameworks.livecc.mrope import VideoBlock  # noqa: E402
from frameworks.livecc.turns import TurnBuilder  # noqa: E402
from frameworks.livecc.video import patchify, resize_frames, smart_resize  # noqa: E402
from stc.compression import TokenSide  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="7b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--min-pixels", type=int, default=100 * 28 * 28)
    p.add_argument("--max-pixels", type=int, default=384 * 28 * 28)
    p.add_argument("--groups", type=int, default=16, help="measured 2-frame groups per ViT variant")
    p.add_argument("--cache-interval", type=int, default=4)
    p.add_argument("--update-ratio", type=float, default=0.25)
    p.add_argument("--tokens-per-group", type=int, default=96, help="STC-Pruner k per 2-frame group")
    p.add_argument("--history-seconds", type=int, default=60)
    p.add_argument("--turns", type=int, default=8, help="measured per-second turns")
    p.add_argument("--commentary-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class Clock:
    """Milliseconds of one call: CUDA events on the GPU (synchronised per call), perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = fn()
            end.record()
            end.synchronize()
            return result, start.elapsed_time(end)
        begin = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - begin) * 1000.0


def drifting_video(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (height, width, 3), generator=generator).float()
    frames = []
    for _ in range(count):
        frames.append(base.clamp(0, 255).to(torch.uint8))
        base = base + 4 * torch.randn(height, width, 3, generator=generator)
    return torch.stack(frames)


def summary(values: list[float]) -> dict:
    return {"median_ms": statistics.median(values), "mean_ms": statistics.fmean(values), "calls": len(values)}


def host_config(args, **settings) -> LiveCCConfig:
    return LiveCCConfig(random_weights=True, preset=args.preset, dtype=args.dtype, device=args.device, mode="streaming",
                        min_pixels=args.min_pixels, max_pixels=args.max_pixels, **settings)


def cacher_spec(args, graphed: bool) -> dict:
    return {"name": "stc_cacher", "cacher": {"update_ratio": args.update_ratio, "cache_interval": args.cache_interval,
                                             "cuda_graph": graphed}}


# ---------------------------------------------------------------------------------------------- ViT
def bench_vit(args, loaded, clock, device) -> dict:
    visual = loaded.model.model.visual
    spec = loaded.patches
    warm = 2 * args.cache_interval
    frames = drifting_video(2 * (warm + args.groups), args.height, args.width, args.seed)
    size = smart_resize(args.height, args.width, spec.factor, args.min_pixels, args.max_pixels)
    groups = []
    for g in range(warm + args.groups):
        pixels = resize_frames(frames[2 * g:2 * g + 2], size, spec, device, visual.dtype)
        values, (_, grid_h, grid_w) = patchify(pixels, spec)
        groups.append(values)
    host = LiveCCHost(loaded, host_config(args))
    sync_free = host.vit_args(1, grid_h, grid_w)
    cuda_grid = torch.tensor([[1, grid_h, grid_w]], device=device)
    result = {"frame_size": list(size), "patches_per_group": grid_h * grid_w,
              "llm_tokens_per_group": grid_h * grid_w // spec.merge_size ** 2}

    def run(call) -> list[float]:
        times = []
        for g, values in enumerate(groups):
            _, ms = clock(lambda: call(values))
            if g >= warm:
                times.append(ms)
        return times

    with torch.no_grad():
        result["livecc_eager"] = summary(run(lambda v: visual(v, grid_thw=cuda_grid).pooler_output))
        result["eager"] = summary(run(lambda v: visual(v, **sync_free).pooler_output))
        if device.type == "cuda":
            result["graphed"] = attempt(lambda: bench_graphed(visual, groups, sync_free, warm, clock))
        else:
            result["graphed"] = {"skipped": "CUDA graphs need a GPU"}
        for name, graphed in (("stc_eager", False), ("stc_graphed", True)):
            if graphed and device.type != "cuda":
                result[name] = {"skipped": "CUDA graphs need a GPU"}
                continue
            result[name] = attempt(lambda: bench_cacher(args, visual, graphed, run, sync_free))
    base, graph, stc = result["livecc_eager"]["mean_ms"], result["graphed"].get("mean_ms"), result["stc_graphed"].get("mean_ms")
    stc_eager = result["stc_eager"].get("mean_ms")
    result["ratios"] = {"stc_eager_vs_livecc_eager": (stc_eager / base) if stc_eager else None,
                        "stc_graphed_vs_livecc_eager": (stc / base) if stc else None,
                        "stc_graphed_vs_graphed": (stc / graph) if stc and graph else None}
    return result


def attempt(fn) -> dict:
    """One variant's result, or {"error": ...} so a failing variant never loses the others."""
    try:
        return fn()
    except Exception as error:  # report and go on: the lead gets every other number
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}


def bench_cacher(args, visual, graphed, run, call_args) -> dict:
    """STC-Cacher attached through the host seam; one call per 2-frame group (a per-second turn)."""
    compression = HostCompression(cacher_spec(args, graphed), None, host="livecc")
    compression.attach(visual)
    try:
        compression.reset()
        times = run(lambda v: visual(v, **call_args).pooler_output)
        stats = compression.stats()["cacher"]
        runner = getattr(compression.vision_methods[0].handle, "graph_runner", None)
        selective = [t for i, t in enumerate(times) if i % args.cache_interval]
        return {**summary(times), "reference_ms": statistics.fmean(times[::args.cache_interval]),
                "selective_ms": statistics.fmean(selective) if selective else None,
                "reference_groups": stats["reference_frames"], "selective_groups": stats["selective_frames"],
                "graph_captures": getattr(runner, "captures", 0) if runner else 0,
                "graph_enabled": bool(runner and runner.enabled)}
    finally:
        compression.close()


def bench_graphed(visual, groups, call_args, warm, clock) -> dict:
    """The plain ViT (no STC) captured once in a torch.cuda.CUDAGraph; per group: copy input + replay."""
    static = groups[0].clone()
    graph, static_out = capture(lambda: visual(static, **call_args).pooler_output, lambda: None, static.device,
                                warmups=3)
    times = []
    for g, values in enumerate(groups):
        def replay(v=values):
            static.copy_(v)
            graph.replay()
            return static_out
        _, ms = clock(replay)
        if g >= warm:
            times.append(ms)
    static.copy_(groups[-1])
    graph.replay()
    eager = visual(groups[-1], **call_args).pooler_output
    return {**summary(times), "max_abs_diff_vs_eager": float((static_out - eager).abs().max())}


# ---------------------------------------------------------------------------------------------- pre-fill
def bench_prefill(args, loaded, clock, device, rows, cols) -> dict:
    dim = loaded.model.config.text_config.hidden_size
    dtype = loaded.model.dtype
    generator = torch.Generator().manual_seed(args.seed)
    tokens = rows * cols
    k = min(args.tokens_per_group, tokens)
    result = {"history_seconds": args.history_seconds, "tokens_per_group": tokens, "kept_per_group": k}
    pruner = HostCompression({"name": "stc_pruner", "pruner": {"tokens_per_frame": k}}, None, host="livecc")
    with torch.no_grad():
        for name, keep in (("full", None), ("pruned", k)):
            host = LiveCCHost(loaded, host_config(args))

            def block(groups=1):
                features = torch.randn(groups * tokens, dim, generator=generator).to(device, dtype)
                full = VideoBlock.full(features, groups, rows, cols)
                if keep is None:
                    return full
                picks = torch.cat([torch.randperm(tokens, generator=generator)[:keep].sort().values + g * tokens
                                   for g in range(groups)])
                return full.select(picks)

            def turn(second, groups=1):
                head = host._turn_head() + f"Time={second:.1f}-{second + groups:.1f}s"
                return host._user_turn(head, block(groups), "<|im_end|>\n<|im_start|>assistant\n")

            host.prefill(turn(0.0, groups=3))
            for second in range(3, args.history_seconds):
                host.prefill(turn(float(second)))
            times = []
            for repeat in range(args.turns + 2):
                pieces = turn(float(args.history_seconds))
                mark = host._mark()
                _, ms = clock(lambda: host.prefill(pieces))
                host._rewind(mark)
                if repeat >= 2:
                    times.append(ms)
            result[name] = {**summary(times), "cache_tokens": host.cache.get_seq_length()}
            del host
        pruner_times = []
        for repeat in range(args.turns + 2):
            features = torch.randn(1, tokens, dim, generator=generator).to(device, dtype)
            _, ms = clock(lambda: pruner.compress_tokens(features, TokenSide(grid=(rows, cols), frame_offset=repeat)))
            if repeat >= 2:
                pruner_times.append(ms)
        result["pruner"] = summary(pruner_times)
    result["ratio_pruned_vs_full"] = result["pruned"]["mean_ms"] / result["full"]["mean_ms"]
    return result


# ---------------------------------------------------------------------------------------------- turns
def bench_turns(args, loaded, clock, device) -> dict:
    seconds = args.history_seconds + args.turns
    frames = drifting_video(2 * seconds, args.height, args.width, args.seed + 1)
    stamps = [0.5 * i for i in range(frames.shape[0])]
    turns = TurnBuilder(6, 2, 0.5).push(frames, stamps)
    prime, measured = turns[:-args.turns], turns[-args.turns:]
    k = args.tokens_per_group
    variants = {"baseline": None}
    stc = {"name": "stc", **cacher_spec(args, device.type == "cuda"), "pruner": {"tokens_per_frame": k}}
    variants["stc"] = stc
    result = {"history_seconds": args.history_seconds, "commentary_tokens": args.commentary_tokens}
    with torch.no_grad():
        for name, spec in variants.items():
            host = LiveCCHost(loaded, host_config(args, commentary=True, commentary_max_new_tokens=args.commentary_tokens), spec)
            try:
                for turn in prime:
                    host.prefill_turn(turn)
                first, whole, generated = [], [], []
                for turn in measured:
                    def to_first_token(turn=turn):
                        logits = host.prefill_turn(turn)
                        int(torch.argmax(logits))  # the first commentary token is known (host sync)
                        return logits

                    logits, ttft = clock(to_first_token)
                    before = host.timings.extra["commentary_tokens"]
                    _, rest = clock(lambda: host.comment(turn, logits))
                    first.append(ttft)
                    whole.append(ttft + rest)
                    generated.append(host.timings.extra["commentary_tokens"] - before)
                timings = host.timings
                result[name] = {"first_token": summary(first), "turn": summary(whole),
                                "tokens_generated_mean": statistics.fmean(generated),
                                "vit_reference_groups": timings.vit_reference_frames,
                                "vit_selective_groups": timings.vit_selective_frames,
                                "visual_tokens_kept_per_second": timings.visual_tokens_kept / seconds}
            finally:
                host.close()
    for name in variants:
        result[name]["real_time_factor"] = result[name]["turn"]["mean_ms"] / 1000.0
    return result


def main(argv=None) -> dict:
    return run(parse_args(argv))


def run(args) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    loaded = build_random_livecc(qwen2_vl_config(args.preset), args.dtype, args.device, args.seed)
    clock = Clock(device)
    report = {"settings": vars(args), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__}
    partial = out / "livecc_speed.json"
    report["vit"] = bench_vit(args, loaded, clock, device)
    partial.write_text(json.dumps(report, indent=2) + "\n")  # each section is saved as soon as it is done
    rows, cols = (side // loaded.patches.factor for side in report["vit"]["frame_size"])  # merged token grid
    report["prefill"] = bench_prefill(args, loaded, clock, device, rows, cols)
    partial.write_text(json.dumps(report, indent=2) + "\n")
    report["turn"] = bench_turns(args, loaded, clock, device)
    report["wall_s"] = time.perf_counter() - begin
    partial.write_text(json.dumps(report, indent=2) + "\n")
    (out / "livecc_speed.md").write_text(render(report))
    print(render(report))
    return report


def _ms(entry) -> str:
    if entry and "mean_ms" in entry:
        return f"{entry['mean_ms']:.2f}"
    return entry.get("skipped") or entry.get("error") or "n/a"


def render(report: dict) -> str:
    vit, prefill, turn = report["vit"], report["prefill"], report["turn"]
    ratios = vit["ratios"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines = [
        f"# LiveCC speed ({report['device']}, {report['settings']['preset']}, {report['settings']['dtype']}, random weights)",
        "",
        f"Frames {report['settings']['height']}x{report['settings']['width']} -> {vit['frame_size'][0]}x{vit['frame_size'][1]}: "
        f"{vit['patches_per_group']} patches, {vit['llm_tokens_per_group']} LLM tokens per 2-frame group (1 s).",
        "",
        "## ViT per 2-frame group (ms, mean over whole cacher cycles)",
        "",
        "| variant | ms | notes |",
        "|---|---|---|",
        f"| LiveCC eager (`visual(x, grid_thw)`) | {_ms(vit['livecc_eager'])} | baseline as LiveCC runs it |",
        f"| eager, sync-free call | {_ms(vit['eager'])} | precomputed cu_seqlens / rotary positions |",
        f"| graphed (CUDAGraph) | {_ms(vit['graphed'])} | plain ViT replayed |",
        f"| STC-Cacher eager N={report['settings']['cache_interval']} r={report['settings']['update_ratio']} | {_ms(vit['stc_eager'])} | "
        f"ref {fmt(vit['stc_eager'].get('reference_ms'))} / sel {fmt(vit['stc_eager'].get('selective_ms'))} |",
        f"| STC-Cacher graphed | {_ms(vit['stc_graphed'])} | captures {vit['stc_graphed'].get('graph_captures', 'n/a')} |",
        "",
        f"STC graphed vs LiveCC eager: {fmt(ratios['stc_graphed_vs_livecc_eager'])} (goal <= 0.60); "
        f"vs graphed baseline: {fmt(ratios['stc_graphed_vs_graphed'])} (goal <= 0.65); "
        f"STC eager vs LiveCC eager: {fmt(ratios['stc_eager_vs_livecc_eager'])}.",
        "",
        f"## LLM pre-fill of one 1-s turn after {prefill['history_seconds']} s of history (ms)",
        "",
        "| variant | ms | cache tokens |",
        "|---|---|---|",
        f"| all {prefill['tokens_per_group']} tokens | {_ms(prefill['full'])} | {prefill['full']['cache_tokens']} |",
        f"| STC-Pruner k={prefill['kept_per_group']} | {_ms(prefill['pruned'])} | {prefill['pruned']['cache_tokens']} |",
        f"| (pruner itself) | {_ms(prefill['pruner'])} | |",
        "",
        f"## Per-second turn, end to end ({turn['history_seconds']} s of history, {turn['commentary_tokens']} commentary tokens)",
        "",
        "| variant | first commentary token (ms) | whole turn (ms) | turn / 1 s real time |",
        "|---|---|---|---|",
    ]
    for name in ("baseline", "stc"):
        row = turn[name]
        lines.append(f"| {name} | {_ms(row['first_token'])} | {_ms(row['turn'])} | {row['real_time_factor']:.3f} |")
    lines += ["", f"Wall time {report['wall_s']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
