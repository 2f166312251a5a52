"""StreamForest latency on one GPU: ViT in two modes, memory-manager cost, pre-fill per question, end to end.

    python scripts/gpu/streamforest_speed.py --out results/speed/streamforest            # H200, < 4 min
    python scripts/gpu/streamforest_speed.py --out /tmp/sf --preset tiny --device cpu --quick   # CPU check

The released-size model (SigLIP-so400m 26 layers @384 + Qwen2-7B, bf16) is built with random weights
(latency does not depend on weight values) through the StreamForest host. Measured, each against the
faster baseline of its mode (ms per frame, median over repeats, CUDA events):

  streaming  one new frame per tower call: baseline eager, baseline CUDA-graphed (a graph of the plain
             tower) vs STC-Cacher with `cuda_graph=True` (N=4, r=0.25 as the paper's StreamForest row).
  reread     the released protocol re-encodes frames 0..t per question: baseline batched encode (128
             frames per call as StreamForest, and the STC batch sizes) vs STC-Cacher with several frames
             per call (eager and graphed).
  memory     event-memory-forest cost per frame (insert + maintain) over a 30-minute stream at 1 fps, fed
             with synthetic drifting tower features (no ViT), and the memory size at 1/5/30 minutes.
  prefill    LLM pre-fill of one question (memory tokens + prompt) at 1/5/30 minutes of stream.
  end_to_end one streaming video through the host (ViT, memory, pre-fill, answer), baseline vs STC.

Writes <out>/streamforest_speed.json and <out>/streamforest_speed.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from frameworks.common.cuda_graphs import capture  # noqa: E402
from frameworks.common.llava_video import preprocess_frames, tower_features  # noqa: E402
from frameworks.protocol import Query  # noqa: E402
from frameworks.streamforest import StreamForestConfig, StreamForestHost, streamforest_sizes  # noqa: E402
from frameworks.streamforest.loading import build_random  # noqa: E402
from frameworks.streamforest.memory import EventMemoryForest  # noqa: E402
from frameworks.streamforest.prompt import prompt_halves  # noqa: E402


class Clock:
    """Times blocks on `device` (CUDA events, resolved at the end; perf_counter on CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending: list = []

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            self.pending.append((start, end))
        else:
            begin = time.perf_counter()
            out = fn()
            self.pending.append((time.perf_counter() - begin) * 1000.0)
        return out

    def read(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            values = [s.elapsed_time(e) for s, e in self.pending]
        else:
            values = list(self.pending)
        self.pending = []
        return values


def drifting_video(count: int, size: int, seed: int = 0, drift: float = 8.0) -> torch.Tensor:
    """uint8 [count, size, size, 3]: a random image drifting a little per frame (temporally redundant)."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (size, size, 3), generator=generator).float()
    frames = []
    for _ in range(count):
        frames.append(base.clamp(0, 255).to(torch.uint8))
        base = base + drift * (torch.rand(size, size, 3, generator=generator) * 2 - 1)
    return torch.stack(frames)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "min": min(values), "n": len(values)}


def reduction(new: float, old: float) -> float:
    return 100.0 * (new - old) / old


def host_for(loaded, compression=None, **settings) -> StreamForestHost:
    config = StreamForestConfig(**{"dtype": str(loaded.model.dtype).replace("torch.", ""), "device": str(loaded.model.device), **settings})
    return StreamForestHost(loaded, config, compression)


# ---- ViT ----------------------------------------------------------------------------------------------
def per_frame_ms(clock: Clock, call, pixels: torch.Tensor, warmup: int, batch: int = 1) -> float:
    """Median over calls of (ms per call / frames per call), after `warmup` calls; frames in stream order."""
    calls = [pixels[i:i + batch] for i in range(0, pixels.shape[0] - batch + 1, batch)]
    for chunk in calls[:warmup]:
        call(chunk)
    clock.read()
    for chunk in calls[warmup:]:
        clock(lambda chunk=chunk: call(chunk))
    return statistics.median(clock.read()) / batch


def graphed_tower(tower, example: torch.Tensor):
    """A CUDA graph of the plain tower call (the graphed baseline): returns call(pixels) -> features."""
    static = example.clone()
    graph, output = capture(lambda: tower_features(tower, static, -1, "full"), lambda: None, static.device, warmups=3)

    def call(pixels):
        static.copy_(pixels)
        graph.replay()
        return output.clone()

    return call


def streaming_mode(loaded, pixels, args, clock) -> dict:
    cuda = pixels.device.type == "cuda"
    tower = loaded.model.vision_tower
    out = {"frames_per_call": 1, "frames": pixels.shape[0] - args.warmup}
    out["baseline_eager_ms"] = per_frame_ms(clock, lambda p: tower_features(tower, p, -1, "full"), pixels, args.warmup)
    if cuda:
        graphed = guarded("baseline graph", lambda: {"ms": per_frame_ms(clock, graphed_tower(tower, pixels[:1]), pixels,
                                                                        args.warmup)})
        if "ms" in graphed:
            out["baseline_graphed_ms"] = graphed["ms"]
        else:
            out["baseline_graphed_error"] = graphed["error"]
    cacher = {"update_ratio": args.update_ratio, "cache_interval": args.cache_interval, "cuda_graph": cuda,
              "fused": bool(args.fused and cuda)}
    host = host_for(loaded, {"name": "stc_cacher", "cacher": cacher}, vit_batch=1)
    try:
        out["stc_ms"] = per_frame_ms(clock, lambda p: tower_features(host.tower, p, -1, "full"), pixels, args.warmup)
        out["stc_frames"] = dict(zip(("reference", "selective"), host.vision_compression.frame_kinds()))
        out["stc_graphed"] = cuda
    finally:
        host.close()
    baseline = min(v for k, v in out.items() if k.startswith("baseline_") and k.endswith("_ms"))
    out["baseline_best_ms"] = baseline
    out["vit_change_pct"] = reduction(out["stc_ms"], baseline)
    return out


def reread_mode(loaded, pixels, args, clock) -> dict:
    cuda = pixels.device.type == "cuda"
    tower = loaded.model.vision_tower
    frames = pixels.shape[0]
    out = {"frames_per_question": frames, "baseline": {}, "stc": {}}
    sizes = sorted({min(args.released_batch, frames), *[min(b, frames) for b in args.stc_batches]})
    for batch in sizes:
        times = []
        for _ in range(args.repeats + 1):   # first pass = warm-up
            for i in range(0, frames, batch):
                clock(lambda i=i: tower_features(tower, pixels[i:i + batch], -1, "full"))
            times.append(sum(clock.read()))
        out["baseline"][f"batch{batch}_ms_per_frame"] = statistics.median(times[1:]) / frames
    for graphed in ([False, True] if cuda else [False]):
        for batch in [min(b, frames) for b in args.stc_batches]:
            cacher = {"update_ratio": args.update_ratio, "cache_interval": args.cache_interval, "cuda_graph": graphed,
                      "fused": bool(args.fused and graphed)}
            host = host_for(loaded, {"name": "stc_cacher", "cacher": cacher}, vit_batch=batch)
            try:
                times = []
                for _ in range(args.repeats + 1):
                    host.vision_compression.reset()   # each question re-reads from frame 0
                    for i in range(0, frames, batch):
                        clock(lambda i=i: tower_features(host.tower, pixels[i:i + batch], -1, "full"))
                    times.append(sum(clock.read()))
                kinds = host.vision_compression.frame_kinds()
            finally:
                host.close()
            key = f"batch{batch}{'_graphed' if graphed else ''}_ms_per_frame"
            out["stc"][key] = statistics.median(times[1:]) / frames
            out["stc"][key.replace("_ms_per_frame", "_frames")] = dict(zip(("reference", "selective"), kinds))
    released = out["baseline"][f"batch{min(args.released_batch, frames)}_ms_per_frame"]
    best_base = min(out["baseline"].values())
    best_stc = min(v for k, v in out["stc"].items() if k.endswith("_ms_per_frame"))
    out.update(released_baseline_ms_per_frame=released, baseline_best_ms_per_frame=best_base,
               stc_best_ms_per_frame=best_stc, vit_change_pct=reduction(best_stc, best_base))
    return out


# ---- memory forest and pre-fill ---------------------------------------------------------------------------
def synthetic_features(host: StreamForestHost, count: int, seed: int = 0):
    """Drifting [T, C] tower features for `count` frames (generated per frame on the device)."""
    generator = torch.Generator(device=host.device).manual_seed(seed)
    channels = host.model.sizes.vision.hidden_size
    base = torch.randn(host.tokens_per_frame, channels, generator=generator, device=host.device)
    for _ in range(count):
        yield base.to(host.dtype)
        base = 0.9 * base + 0.45 * torch.randn(base.shape, generator=generator, device=host.device)


def _label(frames: int) -> str:
    return f"{frames / 60:g}min"


def memory_and_prefill(loaded, args, clock) -> dict:
    host = host_for(loaded)
    marks = sorted(int(m * 60) for m in args.minutes)
    memory = EventMemoryForest(host.memory_settings, host.heads)
    per_frame, snapshots = [], {}
    for index, features in enumerate(synthetic_features(host, marks[-1])):
        frame = host.positions(features[None], index)[0]
        if host.device.type == "cuda":
            torch.cuda.synchronize()
        begin = time.perf_counter()
        memory.insert(frame)
        memory.maintain()
        if host.device.type == "cuda":
            torch.cuda.synchronize()
        per_frame.append((time.perf_counter() - begin) * 1000.0)
        if index + 1 in marks:
            snapshots[index + 1] = (memory.tokens().clone(), memory.counts())
    out = {"memory": {}, "prefill": {}}
    previous = 0
    for mark in marks:
        window = per_frame[previous:mark]
        out["memory"][_label(mark)] = {"frames": mark, "ms_per_frame_in_window": summary(window),
                                            "counts": snapshots[mark][1]}
        previous = mark
    out["memory"]["all_frames_ms"] = summary(per_frame)
    query = Query(prompt="Question: What is the person doing now?\nOptions:\n(A) cooking\n(B) reading\n"
                  "(C) running\n(D) sleeping\nOnly give the best option.", answer_prefix="Best option: (")
    for mark in marks:
        tokens = snapshots[mark][0]
        stamps = [float(i) for i in range(mark)]
        before, after = prompt_halves(query.prompt, stamps, "short_online_v2", query.answer_prefix)

        def prefill():
            visual = host.model.projector(tokens)
            embeds = torch.cat([host._embed_text(before), visual, host._embed_text(after)])[None]
            return host.lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)

        with torch.no_grad():
            prefill()
            clock.read()
            for _ in range(args.repeats):
                clock(prefill)
        times = clock.read()
        out["prefill"][_label(mark)] = {"visual_tokens": tokens.shape[0],
                                             "sequence_tokens": tokens.shape[0] + len(host.codec.encode(before + after)),
                                             "ms": summary(times)}
    out["memory_token_bound"] = host.memory_settings.token_bound()
    return out


def end_to_end(loaded, frames, args) -> dict:
    out = {}
    cacher = {"update_ratio": args.update_ratio, "cache_interval": args.cache_interval,
              "cuda_graph": loaded.model.device.type == "cuda"}
    for label, compression in (("baseline", None), ("stc", {"name": "stc_cacher", "cacher": cacher})):
        host = host_for(loaded, compression, vit_batch=1)
        try:
            for _ in range(2):   # the second pass is the measured one (graphs captured, kernels warm)
                host.reset()
                for i in range(frames.shape[0]):
                    host.ingest(frames[i:i + 1], [float(i)])
                host.answer(Query(prompt="What is happening?", max_new_tokens=args.max_new_tokens))
            t = host.timings
            out[label] = {"vit_ms": t.vit_ms, "memory_ms": t.extra["memory_ms"], "prefill_ms": t.prefill_ms,
                          "decode_ms": t.decode_ms, "frames": t.frames, "llm_visual_tokens": t.extra["llm_visual_tokens"],
                          "reference_frames": t.vit_reference_frames, "selective_frames": t.vit_selective_frames}
        finally:
            host.close()
    out["vit_change_pct"] = reduction(out["stc"]["vit_ms"], out["baseline"]["vit_ms"])
    return out


# ---- report ---------------------------------------------------------------------------------------------
def _streaming_md(s: dict) -> list[str]:
    lines = ["| path | ms / frame |", "|---|---|"]
    for key in ("baseline_eager_ms", "baseline_graphed_ms", "stc_ms"):
        if key in s:
            lines.append(f"| {key.removesuffix('_ms')} | {s[key]:.3f} |")
    return lines + ["", f"STC vs the faster baseline: **{s['vit_change_pct']:+.1f}%** (frames {s['stc_frames']})"]


def _reread_md(r: dict) -> list[str]:
    lines = [f"{r['frames_per_question']} frames per question.", "", "| path | ms / frame |", "|---|---|"]
    for group in ("baseline", "stc"):
        for key, value in r[group].items():
            if key.endswith("_ms_per_frame"):
                lines.append(f"| {group} {key.removesuffix('_ms_per_frame')} | {value:.3f} |")
    return lines + ["", f"Best STC vs the faster baseline: **{r['vit_change_pct']:+.1f}%** "
                    f"(released batched baseline {r['released_baseline_ms_per_frame']:.3f} ms/frame)"]


def _memory_md(m: dict) -> list[str]:
    lines = ["| stream | frames | memory ms/frame (median in window) | visual tokens | pre-fill ms |", "|---|---|---|---|---|"]
    for key, mem in m["memory"].items():
        if key != "all_frames_ms":
            pre = m["prefill"][key]
            lines.append(f"| {key} | {mem['frames']} | {mem['ms_per_frame_in_window']['median']:.3f} | "
                         f"{pre['visual_tokens']} | {pre['ms']['median']:.1f} |")
    return lines + ["", f"Token bound: {m['memory_token_bound']} visual tokens."]


def _e2e_md(e: dict) -> list[str]:
    lines = ["| host | ViT ms | memory ms | pre-fill ms | decode ms | frames (ref/sel) |", "|---|---|---|---|---|---|"]
    for label in ("baseline", "stc"):
        x = e[label]
        lines.append(f"| {label} | {x['vit_ms']:.1f} | {x['memory_ms']:.1f} | {x['prefill_ms']:.1f} | "
                     f"{x['decode_ms']:.1f} | {x['frames']} ({x['reference_frames']}/{x['selective_frames']}) |")
    return lines + ["", f"ViT change end to end: {e['vit_change_pct']:+.1f}%"]


SECTIONS = (("streaming", "ViT, streaming mode (one new frame per call)", _streaming_md),
            ("reread", "ViT, reread protocol (frames 0..t re-encoded per question)", _reread_md),
            ("memory", "Memory forest and pre-fill per question", _memory_md),
            ("end_to_end", "End to end (one streaming video, one question)", _e2e_md))


def markdown(result: dict) -> str:
    lines = [f"# StreamForest latency ({result['device']}, {result['dtype']}, preset {result['preset']})", "",
             f"STC-Cacher N={result['cache_interval']}, r={result['update_ratio']} (paper StreamForest row: "
             "ViT -34.7%). Random weights at the released shapes; ms per frame, median.", ""]
    for key, title, render in SECTIONS:
        section = result.get(key, {"error": "not run"})
        lines += [f"## {title}", ""]
        lines += [f"FAILED: {section['error']}"] if "error" in section else render(section)
        lines.append("")
    return "\n".join(lines)


def guarded(name: str, fn) -> dict:
    """Run one section; a failure is recorded (and printed) instead of losing the other sections."""
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - reported in the output files
        import traceback

        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}"}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="7b", choices=["7b", "tiny"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--cache-interval", type=int, default=4)
    p.add_argument("--update-ratio", type=float, default=0.25)
    p.add_argument("--stream-frames", type=int, default=64, help="streaming mode: frames after warm-up")
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--reread-frames", type=int, default=128)
    p.add_argument("--released-batch", type=int, default=128)
    p.add_argument("--stc-batches", default="8,32,128")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--minutes", default="1,5,30")
    p.add_argument("--e2e-frames", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--fused", action="store_true", help="STC with fused (torch.compile) layers where graphed")
    p.add_argument("--quick", action="store_true", help="tiny counts (CPU check of the script)")
    args = p.parse_args(argv)
    args.stc_batches = [int(b) for b in args.stc_batches.split(",")]
    args.minutes = [float(m) for m in args.minutes.split(",")]
    if args.quick:
        args.stream_frames, args.warmup, args.reread_frames, args.stc_batches = 6, 2, 8, [4]
        args.repeats, args.e2e_frames, args.max_new_tokens, args.released_batch = 1, 4, 2, 8
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    start = time.time()
    sizes = streamforest_sizes(args.preset)
    loaded = build_random(sizes, args.dtype, args.device)
    image = sizes.vision.image_size
    clock = Clock(device)
    with torch.no_grad():
        video = drifting_video(max(args.stream_frames + args.warmup, args.reread_frames), image)
        pixels = preprocess_frames(video, loaded.pixels, device, loaded.model.dtype)
        result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  "dtype": args.dtype, "preset": args.preset, "cache_interval": args.cache_interval,
                  "update_ratio": args.update_ratio, "released_batch": args.released_batch}
        result["streaming"] = guarded("streaming", lambda: streaming_mode(
            loaded, pixels[:args.stream_frames + args.warmup], args, clock))
        result["reread"] = guarded("reread", lambda: reread_mode(loaded, pixels[:args.reread_frames], args, clock))
        del pixels
        result["memory"] = guarded("memory", lambda: memory_and_prefill(loaded, args, clock))
    result["end_to_end"] = guarded("end_to_end", lambda: end_to_end(loaded, video[:args.e2e_frames], args))
    result["wall_s"] = time.time() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "streamforest_speed.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "streamforest_speed.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
