"""ReKV (+STC) latency on random weights at the released size: per-stage ingest times and answer latency.

    python -m frameworks.rekv.gpu_bench --out results/rekv_gpu --frames 64 --preset 7b --frames-per-chunk 1,8
    python -m frameworks.rekv.gpu_bench --out /tmp/smoke --preset tiny --device cpu --dtype float32 \
        --frames 4 --long-frames 20 --repeats 1 --tokens-per-frame 8 --n-local 100             # CPU smoke test

Two measurements, each for every variant (baseline = no compression; stc_pruner = k=64; stc_n2 / stc_n4 =
STC-Cacher r=0.25 with N=2 / 4 plus STC-Pruner k=64; the `_graph` variants replay selective ViT frames
from a CUDA graph):

1. Ingest: reset, ingest `--frames` frames of a synthetic temporally redundant 384x384 video (a random
   image drifting a little per frame, like the STC speed harness), answer one multiple-choice question.
   Reports per-stage totals (ViT, projector+pool, pruner, LLM pre-fill, retrieval, answer), ingest ms per
   frame (synchronised wall clock around `ingest`) and its ratio to the baseline.
2. Long stream (`--long-frames`, default 1800 = 1 hour at 0.5 fps): the block store is filled with random
   blocks of the variant's size (no encoding), the newest frames are really ingested until the local
   window (n_local) is full, then one question is answered. Reports time to the first answer token
   (retrieval + prompt pre-fill + first token) and per-token decode time.

Weights are random (latency does not depend on their values); the model is built once, directly on the
GPU in bf16, and shared by all variants (one host at a time; STC-Cacher is detached between variants).
Writes `rekv_gpu_bench.json` and `rekv_gpu_bench.md` to --out; prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from frameworks.common.llava_loading import build_random_llava_onevision
from frameworks.protocol import Query
from frameworks.rekv.config import ReKVConfig
from frameworks.rekv.host import ReKVHost
from stc import CacherConfig, PrunerConfig, STCConfig

QUESTION = Query(
    prompt="Question: What is the person in the video doing after picking up the red cup?\nOptions:\n"
           "(A) Drinking from it\n(B) Washing it\n(C) Putting it on the shelf\n(D) Handing it to someone\n"
           "Only give the best option.",
    retrieval_text="What is the person in the video doing after picking up the red cup?",
    answer_prefix="Best option: (", max_new_tokens=16)


def variants(k: int, ratio: float) -> dict[str, STCConfig]:
    pruner = PrunerConfig(tokens_per_frame=k)
    return {
        "baseline": STCConfig(),
        "stc_pruner": STCConfig(pruner=pruner),
        "stc_n2": STCConfig(cacher=CacherConfig(update_ratio=ratio, cache_interval=2), pruner=pruner),
        "stc_n4": STCConfig(cacher=CacherConfig(update_ratio=ratio, cache_interval=4), pruner=pruner),
        "stc_n2_graph": STCConfig(cacher=CacherConfig(update_ratio=ratio, cache_interval=2, cuda_graph=True), pruner=pruner),
        "stc_n4_graph": STCConfig(cacher=CacherConfig(update_ratio=ratio, cache_interval=4, cuda_graph=True), pruner=pruner),
        "stc_n4_fused": STCConfig(cacher=CacherConfig(update_ratio=ratio, cache_interval=4, cuda_graph=True, fused=True), pruner=pruner),
    }


def synthetic_video(count: int, size: int, seed: int = 0, drift: float = 8.0) -> torch.Tensor:
    """uint8 [count, size, size, 3]: a random image that drifts by ±drift per frame (redundant stream)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (size, size, 3), generator=generator).float()
    frames = torch.empty(count, size, size, 3, dtype=torch.uint8)
    for i in range(count):
        frames[i] = image.clamp(0, 255).to(torch.uint8)
        image += (torch.rand(size, size, 3, generator=generator) * 2 - 1) * drift
    return frames


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn) -> tuple[object, float]:
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return result, (time.perf_counter() - start) * 1000.0


def ingest_run(host: ReKVHost, frames: torch.Tensor) -> dict:
    """One video: reset, ingest all frames, answer QUESTION. Returns the measured numbers."""
    host.reset()
    _, ingest_ms = _timed(host.device, lambda: host.ingest(frames, [2.0 * i for i in range(frames.shape[0])]))
    _, answer_ms = _timed(host.device, lambda: host.answer(QUESTION))
    timings = host.timings.to_dict()
    extra = timings.pop("extra")
    return {**timings, **extra, "ingest_wall_ms": ingest_ms, "ingest_ms_per_frame": ingest_ms / frames.shape[0],
            "answer_wall_ms": answer_ms}


def long_stream_run(host: ReKVHost, total_frames: int, recent: torch.Tensor, repeats: int = 3) -> dict:
    """Answer latency with `total_frames` frame blocks stored: random old blocks + `recent` real frames.

    One untimed answer first (allocator and copy-engine warm-up: a serving host answers many
    questions), then medians of `repeats` one-token answers (time to first token) and full answers."""
    host.reset()
    old = max(0, total_frames - recent.shape[0])
    host.store.fill_random(old)
    host.ingest(recent)
    _sync(host.device)
    single = Query(**{**QUESTION.__dict__, "max_new_tokens": 1})
    host.answer(single)
    firsts, fulls, stage = [], [], []
    for _ in range(repeats):
        host.timer.reset()
        _, first_token_ms = _timed(host.device, lambda: host.answer(single))
        stage.append(host.timings.to_dict())
        firsts.append(first_token_ms)
        host.timer.reset()
        before = host.timings.extra["generated_tokens"]
        _, full_ms = _timed(host.device, lambda: host.answer(QUESTION))
        fulls.append(full_ms)
        tokens = host.timings.extra["generated_tokens"] - before
    first_token_ms, full_ms = statistics.median(firsts), statistics.median(fulls)
    return {"blocks": host.store.num_blocks, "block_tokens": host.block_tokens,
            "stored_gib": host.store.num_blocks * _block_bytes(host) / 2**30,
            "first_token_ms": first_token_ms, "first_token_ms_all": firsts,
            "retrieval_ms": statistics.median(t["retrieval_ms"] for t in stage),
            "answer_prefill_ms": statistics.median(t["extra"]["answer_prefill_ms"] for t in stage),
            "full_answer_ms": full_ms, "generated_tokens": tokens,
            "decode_ms_per_token": (full_ms - first_token_ms) / max(1, tokens - 1),
            "peak_memory_mb": host.timings.peak_memory_mb}


def _block_bytes(host: ReKVHost) -> int:
    store = host.store
    element = torch.empty((), dtype=store.dtype).element_size()
    return store.num_layers * 2 * store.kv_heads * store.block_tokens * store.head_dim * element


def _median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def markdown(report: dict) -> str:
    lines = [f"# ReKV{' + STC' if len(report['ingest']) > 1 else ''} latency ({report['env']['device_name']}, "
             f"preset {report['settings']['preset']}, {report['settings']['dtype']}, random weights)", "",
             f"Ingest: {report['settings']['frames']} frames of a synthetic redundant 384 px stream, "
             f"frames_per_chunk in {report['settings']['frames_per_chunk']} (variant@cN); medians of {report['settings']['repeats']} "
             "runs after warm-up. Stage times in ms for the whole video.", "",
             "| variant | ViT | projector+pool | pruner | LLM pre-fill | ingest / frame (wall) | vs baseline | "
             "retrieval | answer (wall, 16 tok) | ref/sel ViT frames | tokens kept / frame |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in report["ingest"].items():
        m = entry["median"]
        chunk = name.rsplit("@", 1)[-1]
        base = report["ingest"].get(f"baseline@{chunk}", {}).get("median", {}).get("ingest_ms_per_frame")
        ratio = f"{m['ingest_ms_per_frame'] / base:.2f}x" if base else "-"
        lines.append(f"| {name} | {m['vit_ms']:.1f} | {m['projector_ms']:.1f} | {m['pruner_ms']:.1f} | "
                     f"{m['prefill_ms']:.1f} | {m['ingest_ms_per_frame']:.2f} | {ratio} | {m['retrieval_ms']:.1f} | "
                     f"{m['answer_wall_ms']:.1f} | {entry['reference_frames']}/{entry['selective_frames']} | "
                     f"{entry['tokens_per_frame']} |")
    if report.get("long"):
        lines += ["", f"Answer latency after a long stream ({report['settings']['long_frames']} frame blocks "
                  f"= {report['settings']['long_frames'] / 1800:.2f} h at 0.5 fps; retrieve_size "
                  f"{report['settings']['retrieve_size']}, n_local {report['settings']['n_local']}):", "",
                  "| variant | tokens/block | stored (GiB, host) | retrieval | answer pre-fill | first token (wall) | "
                  "decode / token | 16-token answer (wall) |", "|---|---|---|---|---|---|---|---|"]
        for name, r in report["long"].items():
            lines.append(f"| {name} | {r['block_tokens']} | {r['stored_gib']:.1f} | {r['retrieval_ms']:.1f} | "
                         f"{r['answer_prefill_ms']:.1f} | {r['first_token_ms']:.1f} | {r['decode_ms_per_token']:.1f} | "
                         f"{r['full_answer_ms']:.1f} |")
    for name, error in report.get("errors", {}).items():
        lines.append(f"\n**{name} failed:** `{error}`")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder for JSON + markdown")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--preset", default="7b", choices=["7b", "0.5b", "tiny"])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--variants", default="baseline,stc_pruner,stc_n2,stc_n4,stc_n2_graph,stc_n4_graph")
    parser.add_argument("--tokens-per-frame", type=int, default=64, help="STC-Pruner k")
    parser.add_argument("--update-ratio", type=float, default=0.25, help="STC-Cacher r")
    parser.add_argument("--frames-per-chunk", default="1",
                        help="comma list of frames per ViT batch / LLM pre-fill call, e.g. 1,8")
    parser.add_argument("--n-local", type=int, default=15000)
    parser.add_argument("--retrieve-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-frames", type=int, default=0, help="frames of the warm-up run (0 = --frames)")
    parser.add_argument("--long-frames", type=int, default=1800, help="0 disables the long-stream measurement")
    parser.add_argument("--long-variants", default="baseline,stc_n2")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    from frameworks.common.model_sizes import llava_onevision_config

    table = variants(args.tokens_per_frame, args.update_ratio)
    chosen = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        raise SystemExit(f"unknown --variants {unknown}; choose from {sorted(table)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = llava_onevision_config(args.preset)
    loaded = build_random_llava_onevision(config, args.dtype, args.device)
    device = loaded.model.device
    size = config.vision_config.image_size
    frames = synthetic_video(args.frames, size)
    chunks = [int(c) for c in str(args.frames_per_chunk).split(",") if c]
    report = {"env": _environment(device), "settings": vars(args), "ingest": {}, "long": {}, "errors": {}}
    for chunk in chunks:
        settings = ReKVConfig(dtype=args.dtype, device=args.device, n_local=args.n_local,
                              retrieve_size=args.retrieve_size, frames_per_chunk=chunk)
        for name in chosen:
            label = f"{name}@c{chunk}"
            try:
                _measure_variant(label, ReKVHost(loaded, settings, table[name]), frames, size, args, report,
                                 long=chunk == chunks[0] and name in args.long_variants.split(","))
            except Exception as error:  # one failing variant (e.g. CUDA graphs) must not lose the others
                report["errors"][label] = f"{type(error).__name__}: {error}"
                print(f"[error] {label}: {report['errors'][label]}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    text = markdown(report)
    (out / "rekv_gpu_bench.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "rekv_gpu_bench.md").write_text(text)
    print(text)
    return report


def _measure_variant(name: str, host: ReKVHost, frames: torch.Tensor, size: int, args, report: dict,
                     long: bool) -> None:
    """Warm-up + repeated ingest runs (and the long-stream answer latency) of one variant; closes the host."""
    try:
        ingest_run(host, frames[:args.warmup_frames or args.frames])  # also allocates the pinned pages
        runs = [ingest_run(host, frames) for _ in range(args.repeats)]
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and v is not None]
        report["ingest"][name] = {
            "runs": runs, "median": {k: _median(runs, k) for k in keys},
            "reference_frames": runs[0]["vit_reference_frames"], "selective_frames": runs[0]["vit_selective_frames"],
            "tokens_per_frame": host.block_tokens}
        print(f"[ingest] {name}: {report['ingest'][name]['median']['ingest_ms_per_frame']:.2f} ms/frame", flush=True)
        if args.long_frames and long:
            window_frames = -(-args.n_local // host.block_tokens) + 1
            recent = synthetic_video(min(window_frames, args.long_frames), size, seed=1)
            report["long"][name] = long_stream_run(host, args.long_frames, recent)
            print(f"[long] {name}: first token {report['long'][name]['first_token_ms']:.1f} ms", flush=True)
    finally:
        host.close()


def _environment(device: torch.device) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": str(device), "device_name": name, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


if __name__ == "__main__":
    run(parse_args())
