"""GPU cost of STC-Cacher's adaptive refresh policy (stc/cacher/refresh.py), one frame per call.

For each tower (random weights at released size; latency does not depend on weight values):
  - decision_ms: the policy's own work per frame (layer-0 LayerNorm + keys of the frame, centred cosine
    against the stream's reference keys, the changed-token share read back to the host), CUDA events;
  - dense_ms: the unpatched tower, eager;
  - fixed_eager_ms / fixed_graph_ms: fixed N=4, r=0.25 eager and replayed from CUDA graphs;
  - adaptive_eager_ms: the adaptive policy (tau=0.7, theta=0.5, interval [1,4], r=0.25), eager (the graph
    runner runs adaptive calls eager: their frame kinds are only known once the decision has read the frame).
All per frame, medians over `--frames` frames after warm-up. Writes <out>/adaptive_refresh_speed.{json,md}.

    python scripts/gpu/adaptive_refresh_speed.py --out results/adaptive_refresh   # H200: < 2 min
    python scripts/gpu/adaptive_refresh_speed.py --out /tmp/x --device cpu --dtype float32 --tiny   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stc import CacherConfig, attach_cacher  # noqa: E402

ADAPTIVE = dict(refresh="adaptive", update_ratio=0.25, change_tau=0.7, refresh_threshold=0.5, min_interval=1,
                max_interval=4)


def towers(tiny: bool):
    from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

    if tiny:
        yield "siglip_tiny", SiglipVisionModel(SiglipVisionConfig(hidden_size=64, intermediate_size=128,
                                               num_hidden_layers=2, num_attention_heads=4, image_size=56,
                                               patch_size=14)), 56
        yield "dinov2_tiny", Dinov2Model(Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                      image_size=56, patch_size=14)), 56
        return
    yield "siglip_so400m_384", SiglipVisionModel(SiglipVisionConfig(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16, image_size=384,
        patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=False)), 384
    yield "dinov2_s14_224", Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                     image_size=518, patch_size=14, layer_norm_eps=1e-6)), 224


class Timer:
    """Per-call milliseconds: CUDA events on GPU, perf_counter on CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        begin = time.perf_counter()
        fn()
        return (time.perf_counter() - begin) * 1e3


def clip(count, size, device, dtype, seed=0):
    """Drifting random frames with a cut every 7 frames, so the policy sees both kinds of change."""
    generator = torch.Generator().manual_seed(seed)
    frames, current = [], torch.randn(3, size, size, generator=generator)
    for i in range(count):
        current = torch.randn(3, size, size, generator=generator) if i % 7 == 6 else current + 0.05 * torch.randn(
            3, size, size, generator=generator)
        frames.append(current)
    return torch.stack(frames).to(device=device, dtype=dtype)


def per_frame(timer, model, frames, warmup):
    times = []
    with torch.no_grad():
        for i in range(frames.shape[0]):
            ms = timer(lambda: model(pixel_values=frames[i : i + 1]))
            if i >= warmup:
                times.append(ms)
    return statistics.median(times)


def decision_cost(timer, model, frames, warmup):
    """Median ms of the policy's decision for one frame, isolated from the layers."""
    handle = attach_cacher(model, CacherConfig(**ADAPTIVE))
    try:
        policy, state = handle.refresh_policy, handle.stream
        embeddings = model.embeddings if hasattr(model, "embeddings") else model.vision_model.embeddings
        times = []
        with torch.no_grad():
            model(pixel_values=frames[:1])  # the stream's first reference
            for i in range(1, frames.shape[0]):
                hidden = embeddings(frames[i : i + 1])
                rows = handle.anatomy.to_rows(hidden, (), {})

                def decide():
                    policy.begin_call([state], rows.hidden, rows)
                    policy.decide(0, state, state.frame_idx, True, rows.hidden.shape[1])
                    policy.end_call()

                ms = timer(decide)
                if i >= warmup:
                    times.append(ms)
        return statistics.median(times)
    finally:
        handle.detach()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--tiny", action="store_true", help="tiny towers (CPU smoke test)")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    timer = Timer(device)
    rows = []
    for name, model, size in towers(args.tiny):
        torch.manual_seed(0)
        model = model.eval().to(device=device, dtype=dtype)
        frames = clip(args.frames, size, device, dtype)
        row = {"tower": name, "tokens": None, "device": str(device), "dtype": args.dtype}
        row["dense_ms"] = per_frame(timer, model, frames, args.warmup)
        row["decision_ms"] = decision_cost(timer, model, frames, args.warmup)
        for label, config in (("fixed_eager_ms", CacherConfig(update_ratio=0.25, cache_interval=4)),
                              ("fixed_graph_ms", CacherConfig(update_ratio=0.25, cache_interval=4, cuda_graph=True)),
                              ("adaptive_eager_ms", CacherConfig(**ADAPTIVE))):
            if label == "fixed_graph_ms" and device.type != "cuda":
                row[label] = None
                continue
            handle = attach_cacher(model, config)
            try:
                row[label] = per_frame(timer, model, frames, args.warmup)
                row["tokens"] = handle.stream.stats.tokens_per_frame
                if label == "adaptive_eager_ms":
                    stats = handle.stream.stats
                    row["adaptive_reference_share"] = stats.reference_frames / max(1, stats.reference_frames + stats.selective_frames)
            finally:
                handle.detach()
        row["decision_share_of_dense"] = row["decision_ms"] / row["dense_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adaptive_refresh_speed.json").write_text(json.dumps(rows, indent=1))
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| tower | T | decision ms | dense ms | fixed N=4 eager | fixed N=4 graph | adaptive eager | decision/dense |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tower']} | {r['tokens']} | {fmt(r['decision_ms'])} | {fmt(r['dense_ms'])} | "
                     f"{fmt(r['fixed_eager_ms'])} | {fmt(r['fixed_graph_ms'])} | {fmt(r['adaptive_eager_ms'])} | "
                     f"{r['decision_share_of_dense']:.3f} |")
    (out / "adaptive_refresh_speed.md").write_text(
        f"# Adaptive refresh: cost per frame ({args.device}, {args.dtype}, one frame per call, medians)\n\n"
        + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
