"""`make demo` = `python -m speed_benchmark.demo`: the harness on its embedded default, then a per-frame
trace of STC-Cacher and STC-Pruner.

- GPU present: preset llava_ov_7b (random weights at the released sizes), ViT one-stream + pre-fill
  cases, 10 repeats (a few minutes including the 7B build).
- No GPU: the tiny CPU preset, every case, in seconds (a functional check, not a speed claim).

A newcomer reads the output without the docs: it opens by saying which kind of run this is (a CPU run
is not comparable with GPU numbers, and MISS on CPU is expected) and every table column is defined in
a legend after the tables (full definitions: docs/speed/README.md).

The trace runs one stream through an STC-patched copy of the tower, one frame per call, and prints
for each frame whether it was a reference or a selective frame, how many tokens every layer
recomputed, the tower time, and how many tokens STC-Pruner kept of the pooled frame.
Options: `--preset NAME`, `--out DIR`, and any `key=value` override of configs/speed/.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from speed_benchmark.compose import compose
from speed_benchmark.config import SpeedConfig
from speed_benchmark.timing import synchronize


def default_setup(cuda: bool) -> tuple[str, list[str]]:
    """The embedded default: (preset, overrides)."""
    if cuda:
        return "llava_ov_7b", ["multistream.enabled=false", "e2e.enabled=false", "repeats=10",
                               "vit.intervals=[2,4]", "prefill.frames_per_chunk=[1,8,16]"]
    return "tiny", []


def _pool2x(features: torch.Tensor) -> torch.Tensor:
    """LLaVA-OV style pooling of [B, T, D] square-grid tokens to ceil(side/2)^2 (bilinear)."""
    b, t, d = features.shape
    side = math.isqrt(t)
    grid = features[:, -side * side:].transpose(1, 2).reshape(b, d, side, side)
    pooled = torch.nn.functional.interpolate(grid.float(), size=(math.ceil(side / 2),) * 2, mode="bilinear")
    return pooled.flatten(2).transpose(1, 2).to(features.dtype)


def trace(cfg: SpeedConfig) -> list[dict]:
    """Per-frame cacher/pruner trace on the preset's tower (one frame per call)."""
    from stc import CacherConfig, PrunerConfig, STCPruner, attach_cacher

    from speed_benchmark.models import build_vision_tower, resolve_device_dtype, resolve_spec, synthetic_frames

    spec = resolve_spec(cfg.preset, cfg.model.path)
    device, dtype = resolve_device_dtype(cfg)
    tower = build_vision_tower(spec, cfg, device, dtype)
    handle = attach_cacher(tower, CacherConfig(update_ratio=cfg.stc.update_ratio, cache_interval=cfg.stc.cache_interval))
    frames = synthetic_frames(spec, cfg.frames, device, dtype, cfg.seed)
    pooled_tokens = math.ceil(math.isqrt(spec.vit_tokens) / 2) ** 2
    pruner = STCPruner(PrunerConfig(tokens_per_frame=min(cfg.stc.tokens_per_frame, pooled_tokens),
                                    strategy=cfg.stc.pruner_strategy))
    rows = []
    with torch.no_grad():
        tower(pixel_values=frames[:1])  # warm-up, then a fresh stream
        handle.stream.reset()
        for f in range(cfg.frames):
            synchronize(device)
            t0 = time.perf_counter()
            out = tower(pixel_values=frames[f:f + 1]).last_hidden_state
            synchronize(device)
            vit_ms = (time.perf_counter() - t0) * 1e3
            kept, _ = pruner.compress(_pool2x(out))
            s = handle.stream.stats
            rows.append({"frame": f, "kind": "reference" if s.last_frame_reference else "selective",
                         "recomputed": s.tokens_per_frame if s.last_frame_reference else s.tokens_recomputed,
                         "tokens": s.tokens_per_frame, "vit_ms": vit_ms, "kept": kept.shape[1], "pooled": pooled_tokens})
    handle.detach()
    return rows


INTRO_CPU = """\
# make demo (CPU run)
No GPU was found, so this runs the tiny model on the CPU. That checks that every stage works and shows
WHAT STC skips; it is NOT a speed measurement and is not comparable with the GPU numbers in the README.
On a CPU the skipped work is too small to pay for STC's bookkeeping, so "slower" rows and MISS in the
Targets table are expected here. Run `make demo` on a CUDA machine for the real comparison.
"""

INTRO_GPU = """\
# make demo (GPU run)
Random weights at the released LLaVA-OneVision-7B sizes (latency does not depend on weight values).
"""

LEGEND = """\
## How to read the tables (full definitions: docs/speed/README.md, section "Columns")

| column | meaning |
|---|---|
| N / r / k | STC settings: a full reference frame every N frames; share r of tokens recomputed on the others; k tokens kept per frame by the pruner |
| ms/frame median, min, p90 | time per frame over the repeats (median is the headline; p90 = 90th percentile) |
| reference ms / selective ms | time of a full (reference) frame / of a partly recomputed (selective) frame |
| x base | STC time / baseline time: below 1.00 is faster |
| red. | the same as a reduction in percent (negative = faster; "slower" = STC costs more) |
| theory F(N,r), theory | the fraction of the baseline's FLOPs STC still does: the best time ratio possible |
| eff. | theory / measured: 1.00 = the FLOP saving fully became time |
| refs/sel (k) | reference and selective frames in the run (tokens recomputed per layer / tokens per frame) |
| S, frames/s, speed-up | streams batched in one call, throughput, STC throughput / baseline throughput |
| frames/chunk, calls | frames per LLM pre-fill call, and how many calls |
| baseline ms (k), STC ms (k) | pre-fill time, with the tokens per frame in parentheses |
| pruner ms, STC+pruner ms | the pruner's own cost, and pre-fill plus pruner |
| token ratio | tokens kept / tokens in (k_STC / k_base) |
| Targets: goal / measured / status | the project's speed goals; MISS = not reached in THIS run (expected on CPU), n/a = this run cannot measure it |
"""


def intro(cuda: bool) -> str:
    """What a newcomer needs before the numbers: which run this is and how far to trust it."""
    return INTRO_GPU if cuda else INTRO_CPU


def print_trace(rows: list[dict], cfg: SpeedConfig) -> None:
    print(f"\nSTC per-frame trace (N={cfg.stc.cache_interval}, r={cfg.stc.update_ratio}, k={cfg.stc.tokens_per_frame}; "
          "eager, one frame per call)\n")
    print("| frame | kind | tokens recomputed per layer | ViT ms | pruner kept / pooled |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frame']} | {r['kind']} | {r['recomputed']}/{r['tokens']} | {r['vit_ms']:.2f} | {r['kept']}/{r['pooled']} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="override the embedded default preset")
    parser.add_argument("--out", default=None, help="output folder (default results/speed/demo-<preset>)")
    parser.add_argument("overrides", nargs="*", help="key=value settings (configs/speed/speed.yaml keys)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    preset, overrides = default_setup(cuda)
    preset = args.preset or preset
    print(intro(cuda))
    cfg = compose(preset, overrides + args.overrides, out_dir=args.out or f"results/speed/demo-{preset}")
    from speed_benchmark.config import apply_process_settings
    from speed_benchmark.runner import run

    apply_process_settings(cfg)
    result, paths = run(cfg, command="python -m speed_benchmark.demo " + " ".join(argv or []))
    print(paths["table"].read_text())
    print(LEGEND)
    print_trace(trace(cfg), cfg)
    if not cuda:
        print("\nReminder: CPU run. The numbers above are not comparable with GPU results; MISS on CPU is expected.")
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
